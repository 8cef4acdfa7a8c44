//! The catalog of all definitions and its whole-or-nothing changes.
//!
//! [`Catalog::apply`] works on a copy: it applies every change, refuses
//! removals of what is still used, then checks every reference of the
//! resulting catalog. Only if all of that passes does the caller get the new
//! catalog; the old one is untouched either way.

use crate::validate::{self, Ctx, Res};
use crate::{
    Application, ApplicationPolicy, AutoscalePolicy, Cartridge, CartridgeGroup, CartridgeRef,
    Definition, DeploymentPolicy, GroupRef, Kind, KubernetesCluster, ModelError, NetworkPartition,
};
use std::collections::{BTreeMap, BTreeSet};

/// Partition property that names the Kubernetes cluster backing it (Stratos).
pub const CLUSTER_PROPERTY: &str = "cluster";

/// Every registered definition, by kind and id, plus which applications are
/// deployed under which application policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub cartridges: BTreeMap<String, Cartridge>,
    pub groups: BTreeMap<String, CartridgeGroup>,
    pub applications: BTreeMap<String, Application>,
    pub network_partitions: BTreeMap<String, NetworkPartition>,
    pub deployment_policies: BTreeMap<String, DeploymentPolicy>,
    pub application_policies: BTreeMap<String, ApplicationPolicy>,
    pub autoscaling_policies: BTreeMap<String, AutoscalePolicy>,
    pub kubernetes_clusters: BTreeMap<String, KubernetesCluster>,
    /// Deployed application id → the application policy it was deployed with.
    pub deployments: BTreeMap<String, String>,
}

/// One change to the catalog.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Add a definition whose id is new.
    Add(Box<Definition>),
    /// Replace an existing definition.
    Update(Box<Definition>),
    /// Remove a definition nothing uses.
    Remove(Kind, String),
    /// Mark an application deployed under an application policy.
    Deploy {
        application_id: String,
        application_policy: String,
    },
    /// Mark an application undeployed.
    Undeploy { application_id: String },
}

impl Change {
    /// `Add` of a definition.
    pub fn add(def: Definition) -> Change {
        Change::Add(Box::new(def))
    }

    /// `Update` of a definition.
    pub fn update(def: Definition) -> Change {
        Change::Update(Box::new(def))
    }
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Looks a definition up.
    pub fn get(&self, kind: Kind, id: &str) -> Option<Definition> {
        Some(match kind {
            Kind::Cartridge => Definition::Cartridge(self.cartridges.get(id)?.clone()),
            Kind::CartridgeGroup => Definition::CartridgeGroup(self.groups.get(id)?.clone()),
            Kind::Application => Definition::Application(self.applications.get(id)?.clone()),
            Kind::NetworkPartition => {
                Definition::NetworkPartition(self.network_partitions.get(id)?.clone())
            }
            Kind::DeploymentPolicy => {
                Definition::DeploymentPolicy(self.deployment_policies.get(id)?.clone())
            }
            Kind::ApplicationPolicy => {
                Definition::ApplicationPolicy(self.application_policies.get(id)?.clone())
            }
            Kind::AutoscalingPolicy => {
                Definition::AutoscalingPolicy(self.autoscaling_policies.get(id)?.clone())
            }
            Kind::KubernetesCluster => {
                Definition::KubernetesCluster(self.kubernetes_clusters.get(id)?.clone())
            }
        })
    }

    /// The ids of every definition of `kind`, sorted.
    pub fn ids(&self, kind: Kind) -> Vec<String> {
        fn keys<T>(m: &BTreeMap<String, T>) -> Vec<String> {
            m.keys().cloned().collect()
        }
        match kind {
            Kind::Cartridge => keys(&self.cartridges),
            Kind::CartridgeGroup => keys(&self.groups),
            Kind::Application => keys(&self.applications),
            Kind::NetworkPartition => keys(&self.network_partitions),
            Kind::DeploymentPolicy => keys(&self.deployment_policies),
            Kind::ApplicationPolicy => keys(&self.application_policies),
            Kind::AutoscalingPolicy => keys(&self.autoscaling_policies),
            Kind::KubernetesCluster => keys(&self.kubernetes_clusters),
        }
    }

    fn contains(&self, kind: Kind, id: &str) -> bool {
        match kind {
            Kind::Cartridge => self.cartridges.contains_key(id),
            Kind::CartridgeGroup => self.groups.contains_key(id),
            Kind::Application => self.applications.contains_key(id),
            Kind::NetworkPartition => self.network_partitions.contains_key(id),
            Kind::DeploymentPolicy => self.deployment_policies.contains_key(id),
            Kind::ApplicationPolicy => self.application_policies.contains_key(id),
            Kind::AutoscalingPolicy => self.autoscaling_policies.contains_key(id),
            Kind::KubernetesCluster => self.kubernetes_clusters.contains_key(id),
        }
    }

    fn insert(&mut self, def: Definition) {
        let id = def.id().to_owned();
        match def {
            Definition::Cartridge(c) => drop(self.cartridges.insert(id, c)),
            Definition::CartridgeGroup(g) => drop(self.groups.insert(id, g)),
            Definition::Application(a) => drop(self.applications.insert(id, a)),
            Definition::NetworkPartition(n) => drop(self.network_partitions.insert(id, n)),
            Definition::DeploymentPolicy(p) => drop(self.deployment_policies.insert(id, p)),
            Definition::ApplicationPolicy(p) => drop(self.application_policies.insert(id, p)),
            Definition::AutoscalingPolicy(p) => drop(self.autoscaling_policies.insert(id, p)),
            Definition::KubernetesCluster(k) => drop(self.kubernetes_clusters.insert(id, k)),
        }
    }

    fn remove(&mut self, kind: Kind, id: &str) -> bool {
        match kind {
            Kind::Cartridge => self.cartridges.remove(id).is_some(),
            Kind::CartridgeGroup => self.groups.remove(id).is_some(),
            Kind::Application => self.applications.remove(id).is_some(),
            Kind::NetworkPartition => self.network_partitions.remove(id).is_some(),
            Kind::DeploymentPolicy => self.deployment_policies.remove(id).is_some(),
            Kind::ApplicationPolicy => self.application_policies.remove(id).is_some(),
            Kind::AutoscalingPolicy => self.autoscaling_policies.remove(id).is_some(),
            Kind::KubernetesCluster => self.kubernetes_clusters.remove(id).is_some(),
        }
    }

    /// Applies `changes` in order to a copy of this catalog and checks the
    /// result as a whole. Returns the new catalog, or the first fault; `self`
    /// never changes.
    pub fn apply(&self, changes: &[Change]) -> Result<Catalog, ModelError> {
        let mut next = self.clone();
        let mut removed: Vec<(Kind, String)> = Vec::new();
        for change in changes {
            match change {
                Change::Add(def) | Change::Update(def) => {
                    def.validate()?;
                    let (kind, id) = (def.kind(), def.id().to_owned());
                    let exists = next.contains(kind, &id);
                    if matches!(change, Change::Add(_)) && exists {
                        return Err(ModelError::Exists { kind, id });
                    }
                    if matches!(change, Change::Update(_)) && !exists {
                        return Err(ModelError::NotFound { kind, id });
                    }
                    if kind == Kind::Application && next.deployments.contains_key(&id) {
                        return Err(ModelError::Deployed { id });
                    }
                    next.insert(def.as_ref().clone());
                }
                Change::Remove(kind, id) => {
                    if *kind == Kind::Application && next.deployments.contains_key(id) {
                        return Err(ModelError::Deployed { id: id.clone() });
                    }
                    if !next.remove(*kind, id) {
                        return Err(ModelError::NotFound {
                            kind: *kind,
                            id: id.clone(),
                        });
                    }
                    removed.push((*kind, id.clone()));
                }
                Change::Deploy {
                    application_id,
                    application_policy,
                } => {
                    if !next.applications.contains_key(application_id) {
                        return Err(ModelError::NotFound {
                            kind: Kind::Application,
                            id: application_id.clone(),
                        });
                    }
                    if next.deployments.contains_key(application_id) {
                        return Err(ModelError::Deployed {
                            id: application_id.clone(),
                        });
                    }
                    if !next.application_policies.contains_key(application_policy) {
                        return Err(ModelError::NotFound {
                            kind: Kind::ApplicationPolicy,
                            id: application_policy.clone(),
                        });
                    }
                    next.deployments
                        .insert(application_id.clone(), application_policy.clone());
                }
                Change::Undeploy { application_id } => {
                    if next.deployments.remove(application_id).is_none() {
                        return Err(ModelError::NotFound {
                            kind: Kind::Application,
                            id: format!("{application_id} (deployed)"),
                        });
                    }
                }
            }
        }
        for (kind, id) in &removed {
            if next.contains(*kind, id) {
                continue; // removed and added back in the same batch
            }
            if let Some((user_kind, user_id, path)) = next.first_user(*kind, id) {
                return Err(ModelError::InUse {
                    kind: *kind,
                    id: id.clone(),
                    user_kind,
                    user_id,
                    path,
                });
            }
        }
        next.check()?;
        Ok(next)
    }

    /// Checks every reference in the catalog.
    pub fn check(&self) -> Result<(), ModelError> {
        for np in self.network_partitions.values() {
            self.check_network_partition(np)?;
        }
        for d in self.deployment_policies.values() {
            self.check_deployment_policy(d)?;
        }
        for a in self.application_policies.values() {
            let ctx = Ctx::new(Kind::ApplicationPolicy, &a.id);
            for (i, np) in a.network_partitions.iter().enumerate() {
                if !self.network_partitions.contains_key(np) {
                    return ctx.fail(
                        format!("networkPartitions[{i}]"),
                        format!("no network partition {np:?} is registered"),
                    );
                }
            }
        }
        for g in self.groups.values() {
            let ctx = Ctx::new(Kind::CartridgeGroup, &g.name);
            self.check_group_cartridges(&ctx, "", g)?;
        }
        for a in self.applications.values() {
            self.check_application(a)?;
        }
        for (app, policy) in &self.deployments {
            if let Some(a) = self.applications.get(app) {
                self.check_deployment(a, policy)?;
            }
        }
        Ok(())
    }

    fn check_network_partition(&self, np: &NetworkPartition) -> Res {
        let ctx = Ctx::new(Kind::NetworkPartition, &np.id);
        for (i, p) in np.partitions.iter().enumerate() {
            for (j, prop) in p.property.iter().enumerate() {
                if prop.name == CLUSTER_PROPERTY
                    && !self.kubernetes_clusters.contains_key(&prop.value)
                {
                    return ctx.fail(
                        format!("partitions[{i}].property[{j}].value"),
                        format!("no kubernetes cluster {:?} is registered", prop.value),
                    );
                }
            }
        }
        Ok(())
    }

    fn check_deployment_policy(&self, d: &DeploymentPolicy) -> Res {
        let ctx = Ctx::new(Kind::DeploymentPolicy, &d.id);
        for (i, npr) in d.network_partitions.iter().enumerate() {
            let Some(np) = self.network_partitions.get(&npr.id) else {
                return ctx.fail(
                    format!("networkPartitions[{i}].id"),
                    format!("no network partition {:?} is registered", npr.id),
                );
            };
            for (j, pr) in npr.partitions.iter().enumerate() {
                if !np.partitions.iter().any(|p| p.id == pr.id) {
                    let known: Vec<&str> = np.partitions.iter().map(|p| p.id.as_str()).collect();
                    return ctx.fail(
                        format!("networkPartitions[{i}].partitions[{j}].id"),
                        format!(
                            "network partition {:?} has no partition {:?} (it has: {})",
                            np.id,
                            pr.id,
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    fn check_group_cartridges(&self, ctx: &Ctx, prefix: &str, g: &CartridgeGroup) -> Res {
        for (i, c) in g.cartridges.iter().enumerate() {
            if !self.cartridges.contains_key(c) {
                return ctx.fail(
                    format!("{prefix}cartridges[{i}]"),
                    format!("no cartridge of type {c:?} is registered"),
                );
            }
        }
        for (i, sub) in g.groups.iter().enumerate() {
            self.check_group_cartridges(ctx, &format!("{prefix}groups[{i}]."), sub)?;
        }
        Ok(())
    }

    fn check_application(&self, a: &Application) -> Res {
        let ctx = Ctx::new(Kind::Application, &a.application_id);
        let c = &a.components;
        self.check_components(&ctx, "components", &c.cartridges, &c.groups, None)
    }

    /// Checks the references of the children of one parent; `def` is the
    /// group definition the parent instantiates (None at the top).
    fn check_components(
        &self,
        ctx: &Ctx,
        prefix: &str,
        cartridges: &[CartridgeRef],
        groups: &[GroupRef],
        def: Option<&CartridgeGroup>,
    ) -> Res {
        for (i, c) in cartridges.iter().enumerate() {
            let p = format!("{prefix}.cartridges[{i}]");
            if !self.cartridges.contains_key(&c.cartridge_type) {
                return ctx.fail(
                    format!("{p}.type"),
                    format!("no cartridge of type {:?} is registered", c.cartridge_type),
                );
            }
            if let Some(def) = def {
                if !def.cartridges.contains(&c.cartridge_type) {
                    return ctx.fail(
                        format!("{p}.type"),
                        format!(
                            "cartridge group {:?} has no cartridge type {:?} (it has: {})",
                            def.name,
                            c.cartridge_type,
                            def.cartridges.join(", ")
                        ),
                    );
                }
            }
            let s = &c.subscribable_info;
            if let Some(id) = &s.autoscaling_policy {
                if !self.autoscaling_policies.contains_key(id) {
                    return ctx.fail(
                        format!("{p}.subscribableInfo.autoscalingPolicy"),
                        format!("no autoscaling policy {id:?} is registered"),
                    );
                }
            }
            if let Some(id) = &s.deployment_policy {
                if !self.deployment_policies.contains_key(id) {
                    return ctx.fail(
                        format!("{p}.subscribableInfo.deploymentPolicy"),
                        format!("no deployment policy {id:?} is registered"),
                    );
                }
            }
        }
        for (i, g) in groups.iter().enumerate() {
            let p = format!("{prefix}.groups[{i}]");
            // Top-level group instances name registered groups; nested ones
            // name groups nested in their parent's definition.
            let gdef = match def {
                None => self.groups.get(&g.name).ok_or(()).or_else(|()| {
                    ctx.fail(
                        format!("{p}.name"),
                        format!("no cartridge group {:?} is registered", g.name),
                    )
                })?,
                Some(parent) => parent
                    .groups
                    .iter()
                    .find(|s| s.name == g.name)
                    .ok_or(())
                    .or_else(|()| {
                        ctx.fail(
                            format!("{p}.name"),
                            format!(
                                "cartridge group {:?} has no nested group {:?}",
                                parent.name, g.name
                            ),
                        )
                    })?,
            };
            if let Some(id) = &g.deployment_policy {
                if !self.deployment_policies.contains_key(id) {
                    return ctx.fail(
                        format!("{p}.deploymentPolicy"),
                        format!("no deployment policy {id:?} is registered"),
                    );
                }
            }
            if let Some(d) = &gdef.dependencies {
                let children: BTreeSet<String> = g
                    .cartridges
                    .iter()
                    .map(|c| format!("cartridge.{}", c.subscribable_info.alias))
                    .chain(g.groups.iter().map(|s| format!("group.{}", s.alias)))
                    .collect();
                // The group definition's dependencies name aliases the
                // application gives; report the fault at the group instance,
                // saying where in the group definition the name is.
                let gctx = Ctx::new(Kind::CartridgeGroup, &gdef.name);
                if let Err(ModelError::Invalid {
                    path: gpath,
                    message,
                    ..
                }) = validate::dependencies(&gctx, "dependencies", d, Some(&children))
                {
                    return ctx.fail(
                        p,
                        format!("cartridge group {:?}, {gpath}: {message}", gdef.name),
                    );
                }
            }
            self.check_components(ctx, &p, &g.cartridges, &g.groups, Some(gdef))?;
        }
        Ok(())
    }

    /// A deployed application's deployment policies must use only network
    /// partitions its application policy lists.
    fn check_deployment(&self, a: &Application, policy: &str) -> Res {
        let ctx = Ctx::new(Kind::Application, &a.application_id);
        let Some(ap) = self.application_policies.get(policy) else {
            return ctx.fail(
                "",
                format!("is deployed with application policy {policy:?}, which is not registered"),
            );
        };
        for (path, dp) in deployment_policies_of(a) {
            if let Some(d) = self.deployment_policies.get(&dp) {
                if !d
                    .network_partitions
                    .iter()
                    .any(|np| ap.network_partitions.contains(&np.id))
                {
                    return ctx.fail(
                        path,
                        format!(
                            "deployment policy {dp:?} uses none of the network partitions of application policy {policy:?} ({})",
                            ap.network_partitions.join(", ")
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// The first definition that uses `(kind, id)`, with the JSON path of the use.
    pub fn first_user(&self, kind: Kind, id: &str) -> Option<(Kind, String, String)> {
        match kind {
            Kind::Cartridge => {
                for g in self.groups.values() {
                    if let Some(p) = group_uses_cartridge(g, id, "") {
                        return Some((Kind::CartridgeGroup, g.name.clone(), p));
                    }
                }
                self.application_user(
                    |c, p| (c.cartridge_type == id).then(|| format!("{p}.type")),
                    |_, _| None,
                )
            }
            Kind::CartridgeGroup => self.application_user(
                |_, _| None,
                // Only top-level group instances name registered groups.
                |g, p| {
                    (g.name == id && p.matches(".groups[").count() == 1)
                        .then(|| format!("{p}.name"))
                },
            ),
            Kind::AutoscalingPolicy => self.application_user(
                |c, p| {
                    (c.subscribable_info.autoscaling_policy.as_deref() == Some(id))
                        .then(|| format!("{p}.subscribableInfo.autoscalingPolicy"))
                },
                |_, _| None,
            ),
            Kind::DeploymentPolicy => self.application_user(
                |c, p| {
                    (c.subscribable_info.deployment_policy.as_deref() == Some(id))
                        .then(|| format!("{p}.subscribableInfo.deploymentPolicy"))
                },
                |g, p| {
                    (g.deployment_policy.as_deref() == Some(id))
                        .then(|| format!("{p}.deploymentPolicy"))
                },
            ),
            Kind::NetworkPartition => {
                for d in self.deployment_policies.values() {
                    if let Some(i) = d.network_partitions.iter().position(|np| np.id == id) {
                        return Some((
                            Kind::DeploymentPolicy,
                            d.id.clone(),
                            format!("networkPartitions[{i}].id"),
                        ));
                    }
                }
                for a in self.application_policies.values() {
                    if let Some(i) = a.network_partitions.iter().position(|np| np == id) {
                        return Some((
                            Kind::ApplicationPolicy,
                            a.id.clone(),
                            format!("networkPartitions[{i}]"),
                        ));
                    }
                }
                None
            }
            Kind::ApplicationPolicy => self
                .deployments
                .iter()
                .find(|(_, p)| *p == id)
                .map(|(app, _)| (Kind::Application, app.clone(), "(deployment)".to_owned())),
            Kind::KubernetesCluster => {
                for np in self.network_partitions.values() {
                    for (i, p) in np.partitions.iter().enumerate() {
                        for (j, prop) in p.property.iter().enumerate() {
                            if prop.name == CLUSTER_PROPERTY && prop.value == id {
                                return Some((
                                    Kind::NetworkPartition,
                                    np.id.clone(),
                                    format!("partitions[{i}].property[{j}].value"),
                                ));
                            }
                        }
                    }
                }
                None
            }
            Kind::Application => None,
        }
    }

    fn application_user(
        &self,
        cart: impl Fn(&CartridgeRef, &str) -> Option<String>,
        group: impl Fn(&GroupRef, &str) -> Option<String>,
    ) -> Option<(Kind, String, String)> {
        for a in self.applications.values() {
            let c = &a.components;
            if let Some(p) = walk(&c.cartridges, &c.groups, "components", &cart, &group) {
                return Some((Kind::Application, a.application_id.clone(), p));
            }
        }
        None
    }
}

fn walk(
    cartridges: &[CartridgeRef],
    groups: &[GroupRef],
    prefix: &str,
    cart: &impl Fn(&CartridgeRef, &str) -> Option<String>,
    group: &impl Fn(&GroupRef, &str) -> Option<String>,
) -> Option<String> {
    for (i, c) in cartridges.iter().enumerate() {
        if let Some(p) = cart(c, &format!("{prefix}.cartridges[{i}]")) {
            return Some(p);
        }
    }
    for (i, g) in groups.iter().enumerate() {
        let p = format!("{prefix}.groups[{i}]");
        if let Some(found) = group(g, &p) {
            return Some(found);
        }
        if let Some(found) = walk(&g.cartridges, &g.groups, &p, cart, group) {
            return Some(found);
        }
    }
    None
}

fn group_uses_cartridge(g: &CartridgeGroup, ty: &str, prefix: &str) -> Option<String> {
    if let Some(i) = g.cartridges.iter().position(|c| c == ty) {
        return Some(format!("{prefix}cartridges[{i}]"));
    }
    g.groups
        .iter()
        .enumerate()
        .find_map(|(i, s)| group_uses_cartridge(s, ty, &format!("{prefix}groups[{i}].")))
}

/// Every deployment policy an application uses, with the path of the use
/// (a cartridge without its own takes its nearest group's).
pub(crate) fn deployment_policies_of(a: &Application) -> Vec<(String, String)> {
    fn go(cs: &[CartridgeRef], gs: &[GroupRef], prefix: &str, out: &mut Vec<(String, String)>) {
        for (i, c) in cs.iter().enumerate() {
            if let Some(d) = &c.subscribable_info.deployment_policy {
                out.push((
                    format!("{prefix}.cartridges[{i}].subscribableInfo.deploymentPolicy"),
                    d.clone(),
                ));
            }
        }
        for (i, g) in gs.iter().enumerate() {
            let p = format!("{prefix}.groups[{i}]");
            if let Some(d) = &g.deployment_policy {
                out.push((format!("{p}.deploymentPolicy"), d.clone()));
            }
            go(&g.cartridges, &g.groups, &p, out);
        }
    }
    let mut out = Vec::new();
    go(
        &a.components.cartridges,
        &a.components.groups,
        "components",
        &mut out,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self as fx, set};
    use serde_json::json;

    fn add(kind: Kind, v: serde_json::Value) -> Change {
        Change::add(fx::def(kind, &v))
    }

    fn update(kind: Kind, v: serde_json::Value) -> Change {
        Change::update(fx::def(kind, &v))
    }

    fn rm(kind: Kind, id: &str) -> Change {
        Change::Remove(kind, id.into())
    }

    /// Applies `changes`, expects an `Invalid` fault of `(kind, id)` at `path`.
    #[track_caller]
    fn refused(cat: &Catalog, changes: &[Change], kind: Kind, id: &str, path: &str, msg: &str) {
        match cat.apply(changes) {
            Err(ModelError::Invalid {
                kind: k,
                id: i,
                path: p,
                message,
            }) => {
                assert_eq!((k, i.as_str(), p.as_str()), (kind, id, path), "{message}");
                assert!(message.contains(msg), "{message:?} lacks {msg:?}");
            }
            other => panic!("expected a fault, got {other:?}"),
        }
    }

    #[track_caller]
    fn in_use(cat: &Catalog, kind: Kind, id: &str, user: (Kind, &str, &str)) {
        match cat.apply(&[rm(kind, id)]) {
            Err(e @ ModelError::InUse { .. }) => {
                let ModelError::InUse {
                    user_kind,
                    user_id,
                    path,
                    ..
                } = &e
                else {
                    unreachable!()
                };
                assert_eq!((*user_kind, user_id.as_str(), path.as_str()), user, "{e}");
                assert!(
                    e.to_string()
                        .starts_with(&format!("cannot remove {kind} {id:?}: ")),
                    "{e}"
                );
            }
            other => panic!("expected in use, got {other:?}"),
        }
    }

    #[test]
    fn definitions_in_any_order_of_one_batch_but_references_must_resolve() {
        // Reversed order in one batch is fine: the result is what is checked.
        let mut changes: Vec<Change> = fx::all().into_iter().map(|(k, v)| add(k, v)).collect();
        changes.reverse();
        let cat = Catalog::new().apply(&changes).unwrap();
        assert_eq!(cat.ids(Kind::Cartridge), ["db", "web"]);
        assert!(cat.get(Kind::Application, "app1").is_some());
        // The application alone refers to nothing registered.
        refused(
            &Catalog::new(),
            &[add(Kind::Application, fx::application())],
            Kind::Application,
            "app1",
            "components.cartridges[0].type",
            "no cartridge of type \"web\" is registered",
        );
    }

    #[test]
    fn add_update_remove_conflicts() {
        let cat = fx::catalog();
        let e = cat
            .apply(&[add(Kind::Cartridge, fx::cartridge("web", 80, 8080))])
            .unwrap_err();
        assert_eq!(
            e,
            ModelError::Exists {
                kind: Kind::Cartridge,
                id: "web".into()
            }
        );
        assert!(e.to_string().contains("already exists"));
        let e = cat
            .apply(&[update(Kind::Cartridge, fx::cartridge("new", 80, 8080))])
            .unwrap_err();
        assert_eq!(
            e,
            ModelError::NotFound {
                kind: Kind::Cartridge,
                id: "new".into()
            }
        );
        let e = cat
            .apply(&[rm(Kind::AutoscalingPolicy, "nope")])
            .unwrap_err();
        assert_eq!(e.to_string(), "autoscaling policy \"nope\" does not exist");
        // Updates replace.
        let next = cat
            .apply(&[update(Kind::Cartridge, fx::cartridge("web", 81, 8081))])
            .unwrap();
        assert_eq!(next.cartridges["web"].port_mapping[0].port, 81);
        // An invalid definition inside a batch is reported as parse would.
        let bad = Change::add(crate::Definition::Cartridge(crate::Cartridge {
            port_mapping: vec![],
            iaas_provider: vec![],
            ..next.cartridges["web"].clone()
        }));
        let e = cat.apply(&[bad]).unwrap_err();
        assert_eq!(e.path(), Some("iaasProvider"));
    }

    #[test]
    fn a_refused_batch_changes_nothing() {
        let cat = fx::catalog();
        let before = cat.clone();
        let e = cat
            .apply(&[
                add(Kind::Cartridge, fx::cartridge("extra", 1, 0)),
                rm(Kind::Cartridge, "web"), // used
            ])
            .unwrap_err();
        assert!(matches!(e, ModelError::InUse { .. }), "{e}");
        assert_eq!(cat, before);
        // Removing the user and the used together is fine, in any order.
        let next = cat
            .apply(&[
                rm(Kind::AutoscalingPolicy, "asp1"),
                rm(Kind::Application, "app1"),
            ])
            .unwrap();
        assert!(next.autoscaling_policies.is_empty());
        // Removed and re-added in one batch is fine too.
        cat.apply(&[
            rm(Kind::Cartridge, "web"),
            add(Kind::Cartridge, fx::cartridge("web", 80, 8080)),
        ])
        .unwrap();
    }

    #[test]
    fn removing_what_is_used_names_the_user() {
        let cat = fx::catalog();
        in_use(
            &cat,
            Kind::Cartridge,
            "db",
            (Kind::CartridgeGroup, "stack", "cartridges[0]"),
        );
        in_use(
            &cat,
            Kind::Cartridge,
            "web",
            (Kind::CartridgeGroup, "stack", "cartridges[1]"),
        );
        let no_group = cat
            .apply(&[
                rm(Kind::Application, "app1"),
                rm(Kind::CartridgeGroup, "stack"),
            ])
            .unwrap();
        let app = json!({"applicationId": "solo", "components": {"cartridges": [
            {"type": "web", "cartridgeMin": 1, "cartridgeMax": 1,
             "subscribableInfo": {"alias": "w", "autoscalingPolicy": "asp1", "deploymentPolicy": "dp1"}}]}});
        let solo = no_group.apply(&[add(Kind::Application, app)]).unwrap();
        in_use(
            &solo,
            Kind::Cartridge,
            "web",
            (Kind::Application, "solo", "components.cartridges[0].type"),
        );
        in_use(
            &cat,
            Kind::CartridgeGroup,
            "stack",
            (Kind::Application, "app1", "components.groups[0].name"),
        );
        in_use(
            &cat,
            Kind::AutoscalingPolicy,
            "asp1",
            (
                Kind::Application,
                "app1",
                "components.cartridges[0].subscribableInfo.autoscalingPolicy",
            ),
        );
        in_use(
            &cat,
            Kind::DeploymentPolicy,
            "dp1",
            (
                Kind::Application,
                "app1",
                "components.cartridges[0].subscribableInfo.deploymentPolicy",
            ),
        );
        in_use(
            &cat,
            Kind::NetworkPartition,
            "np2",
            (Kind::DeploymentPolicy, "dp1", "networkPartitions[1].id"),
        );
        let no_dp = cat
            .apply(&[
                rm(Kind::Application, "app1"),
                rm(Kind::DeploymentPolicy, "dp1"),
            ])
            .unwrap();
        in_use(
            &no_dp,
            Kind::NetworkPartition,
            "np2",
            (Kind::ApplicationPolicy, "ap1", "networkPartitions[1]"),
        );
        in_use(
            &cat,
            Kind::KubernetesCluster,
            "k1",
            (
                Kind::NetworkPartition,
                "np1",
                "partitions[0].property[0].value",
            ),
        );
        let deployed = cat
            .apply(&[Change::Deploy {
                application_id: "app1".into(),
                application_policy: "ap1".into(),
            }])
            .unwrap();
        in_use(
            &deployed,
            Kind::ApplicationPolicy,
            "ap1",
            (Kind::Application, "app1", "(deployment)"),
        );
    }

    #[test]
    fn group_level_deployment_policy_use_is_found() {
        let cat = fx::catalog();
        let mut app = fx::application();
        app["components"]["cartridges"][0]["subscribableInfo"]["deploymentPolicy"] = json!(null);
        app["components"]["cartridges"] = json!([]);
        app["components"]["dependencies"] = json!(null);
        let next = cat.apply(&[update(Kind::Application, app)]).unwrap();
        in_use(
            &next,
            Kind::DeploymentPolicy,
            "dp1",
            (
                Kind::Application,
                "app1",
                "components.groups[0].deploymentPolicy",
            ),
        );
    }

    #[test]
    fn deploy_and_undeploy() {
        let cat = fx::catalog();
        let dep = |a: &str, p: &str| Change::Deploy {
            application_id: a.into(),
            application_policy: p.into(),
        };
        let e = cat.apply(&[dep("ghost", "ap1")]).unwrap_err();
        assert_eq!(
            e,
            ModelError::NotFound {
                kind: Kind::Application,
                id: "ghost".into()
            }
        );
        let e = cat.apply(&[dep("app1", "ghost")]).unwrap_err();
        assert_eq!(
            e,
            ModelError::NotFound {
                kind: Kind::ApplicationPolicy,
                id: "ghost".into()
            }
        );
        let deployed = cat.apply(&[dep("app1", "ap1")]).unwrap();
        assert_eq!(deployed.deployments["app1"], "ap1");
        assert_eq!(
            deployed.apply(&[dep("app1", "ap1")]).unwrap_err(),
            ModelError::Deployed { id: "app1".into() }
        );
        let e = deployed
            .apply(&[update(Kind::Application, fx::application())])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "application \"app1\" is deployed; undeploy it first"
        );
        assert_eq!(
            deployed
                .apply(&[rm(Kind::Application, "app1")])
                .unwrap_err(),
            ModelError::Deployed { id: "app1".into() }
        );
        let undeployed = deployed
            .apply(&[Change::Undeploy {
                application_id: "app1".into(),
            }])
            .unwrap();
        assert!(undeployed.deployments.is_empty());
        assert!(matches!(
            undeployed.apply(&[Change::Undeploy {
                application_id: "app1".into()
            }]),
            Err(ModelError::NotFound { .. })
        ));
        // Deploying under a policy whose network partitions the application's
        // deployment policies do not use is refused.
        let other = cat
            .apply(&[
                add(
                    Kind::NetworkPartition,
                    fx::network_partition("np3", &["r1"]),
                ),
                add(
                    Kind::ApplicationPolicy,
                    json!({"id": "ap3", "networkPartitions": ["np3"]}),
                ),
            ])
            .unwrap();
        refused(
            &other,
            &[dep("app1", "ap3")],
            Kind::Application,
            "app1",
            "components.cartridges[0].subscribableInfo.deploymentPolicy",
            "deployment policy \"dp1\" uses none of the network partitions of application policy \"ap3\" (np3)",
        );
    }

    #[test]
    fn broken_references_are_refused_with_their_path() {
        let cat = fx::catalog();
        let app = fx::application;
        let k = Kind::Application;
        let up = |v| [update(k, v)];
        refused(
            &cat,
            &up(set(app(), "/components/cartridges/0/type", json!("php"))),
            k,
            "app1",
            "components.cartridges[0].type",
            "no cartridge of type \"php\" is registered",
        );
        refused(
            &cat,
            &up(set(app(), "/components/groups/0/name", json!("other"))),
            k,
            "app1",
            "components.groups[0].name",
            "no cartridge group \"other\" is registered",
        );
        refused(
            &cat,
            &up(set(
                app(),
                "/components/groups/0/groups/0/name",
                json!("outer"),
            )),
            k,
            "app1",
            "components.groups[0].groups[0].name",
            "cartridge group \"stack\" has no nested group \"outer\"",
        );
        refused(
            &cat,
            &up(set(
                app(),
                "/components/groups/0/groups/0/cartridges/0/type",
                json!("db"),
            )),
            k,
            "app1",
            "components.groups[0].groups[0].cartridges[0].type",
            "cartridge group \"inner\" has no cartridge type \"db\" (it has: web)",
        );
        refused(
            &cat,
            &up(set(
                app(),
                "/components/cartridges/0/subscribableInfo/autoscalingPolicy",
                json!("asp9"),
            )),
            k,
            "app1",
            "components.cartridges[0].subscribableInfo.autoscalingPolicy",
            "no autoscaling policy \"asp9\" is registered",
        );
        refused(
            &cat,
            &up(set(
                app(),
                "/components/cartridges/0/subscribableInfo/deploymentPolicy",
                json!("dp9"),
            )),
            k,
            "app1",
            "components.cartridges[0].subscribableInfo.deploymentPolicy",
            "no deployment policy \"dp9\" is registered",
        );
        refused(
            &cat,
            &up(set(
                app(),
                "/components/groups/0/deploymentPolicy",
                json!("dp9"),
            )),
            k,
            "app1",
            "components.groups[0].deploymentPolicy",
            "no deployment policy \"dp9\" is registered",
        );
        // The group definition orders aliases the application does not give.
        refused(&cat, &up(set(app(), "/components/groups/0/cartridges/0/subscribableInfo/alias", json!("database"))), k, "app1",
            "components.groups[0]",
            "cartridge group \"stack\", dependencies.startupOrders[0].aliases[0]: \"cartridge.d\" is not a component here (components: cartridge.database, cartridge.w, group.i)");

        refused(
            &cat,
            &[update(
                Kind::CartridgeGroup,
                set(fx::group(), "/groups/0/cartridges/0", json!("php")),
            )],
            Kind::CartridgeGroup,
            "stack",
            "groups[0].cartridges[0]",
            "no cartridge of type \"php\" is registered",
        );
        refused(
            &cat,
            &[update(
                Kind::DeploymentPolicy,
                set(
                    fx::deployment_policy(),
                    "/networkPartitions/1/id",
                    json!("np9"),
                ),
            )],
            Kind::DeploymentPolicy,
            "dp1",
            "networkPartitions[1].id",
            "no network partition \"np9\" is registered",
        );
        refused(
            &cat,
            &[update(
                Kind::DeploymentPolicy,
                set(
                    fx::deployment_policy(),
                    "/networkPartitions/0/partitions/1/id",
                    json!("p9"),
                ),
            )],
            Kind::DeploymentPolicy,
            "dp1",
            "networkPartitions[0].partitions[1].id",
            "network partition \"np1\" has no partition \"p9\" (it has: p1, p2)",
        );
        refused(
            &cat,
            &[update(
                Kind::ApplicationPolicy,
                set(
                    fx::application_policy(),
                    "/networkPartitions/1",
                    json!("np9"),
                ),
            )],
            Kind::ApplicationPolicy,
            "ap1",
            "networkPartitions[1]",
            "no network partition \"np9\" is registered",
        );
        let np = set(
            fx::network_partition("np2", &["q1"]),
            "/partitions/0/property",
            json!([{"name": "cluster", "value": "k9"}]),
        );
        refused(
            &cat,
            &[update(Kind::NetworkPartition, np)],
            Kind::NetworkPartition,
            "np2",
            "partitions[0].property[0].value",
            "no kubernetes cluster \"k9\" is registered",
        );
    }
}
