//! Deployment planning: what deploying an application creates.
//!
//! [`plan`] turns an application and the [`Catalog`] into one
//! [`ClusterPlan`] per cartridge alias (cluster id `APP.ALIAS.TYPE.domain`,
//! as Stratos's `STClusterInformation` names them), the startup order as
//! stages of cluster ids, the group instances, the sets of clusters and
//! groups that scale together ([`ScalingSet`]), the network partitions the
//! application instances use, and where the first `cartridgeMin` members
//! of each cluster go.
//!
//! Placement follows the deployment policy: the application policy's
//! network partitions in its order (one-after-another uses the first and
//! bursts to the next; all-at-once starts `cartridgeMin` in each), and inside
//! a network partition its `partitionAlgo` with each partition's
//! `partitionMax`.

use crate::quantity::{self, Resources};
use crate::{
    Application, Cartridge, CartridgeGroup, CartridgeRef, Catalog, GroupRef, Kind, ModelError,
    NetworkPartitionAlgorithm, PartitionAlgorithm, PortMapping, TerminationBehaviour,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Everything deploying one application creates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub application_id: String,
    pub application_policy: String,
    /// The application policy's network partitions, in its order: each
    /// one in use holds one application instance (Stratos 4.1).
    #[serde(default)]
    pub network_partitions: Vec<String>,
    /// How many of them are in use from the deploy on and never given
    /// up: the first (`one-after-another`, the others are burst into
    /// when the application is at its maximum) or all (`all-at-once`).
    #[serde(default)]
    pub default_network_partitions: usize,
    pub clusters: Vec<ClusterPlan>,
    pub groups: Vec<GroupPlan>,
    /// Startup order: the clusters of a stage wait only for clusters of
    /// earlier stages (see [`ClusterPlan::waits_for`] for the exact edges).
    pub stages: Vec<Vec<String>>,
    /// Sets of clusters and groups that scale together (`scalingDependents`).
    pub scaling_sets: Vec<ScalingSet>,
    /// The application's own `terminationBehaviour` (for its top-level
    /// components; groups carry theirs).
    pub termination_behaviour: TerminationBehaviour,
}

impl Plan {
    /// The cluster with this id.
    pub fn cluster(&self, cluster_id: &str) -> Option<&ClusterPlan> {
        self.clusters.iter().find(|c| c.cluster_id == cluster_id)
    }

    /// Undeploy order: the startup stages reversed, so nothing stops
    /// before what waits for it.
    pub fn shutdown_stages(&self) -> Vec<Vec<String>> {
        self.stages.iter().rev().cloned().collect()
    }

    /// The other clusters to terminate when `cluster_id` terminates, by the
    /// `terminationBehaviour` of its innermost group (or the application's):
    /// none; those that wait for it, directly or not, in that group; or
    /// every other cluster of that group.
    pub fn terminate_with(&self, cluster_id: &str) -> Vec<String> {
        let Some(cluster) = self.cluster(cluster_id) else {
            return Vec::new();
        };
        let (behaviour, scope): (TerminationBehaviour, Vec<&str>) = match cluster
            .groups
            .last()
            .and_then(|a| self.groups.iter().find(|g| &g.alias == a))
        {
            Some(g) => (
                g.termination_behaviour,
                g.clusters.iter().map(String::as_str).collect(),
            ),
            None => (
                self.termination_behaviour,
                self.clusters
                    .iter()
                    .map(|c| c.cluster_id.as_str())
                    .collect(),
            ),
        };
        match behaviour {
            TerminationBehaviour::TerminateNone => Vec::new(),
            TerminationBehaviour::TerminateAll => scope
                .into_iter()
                .filter(|c| *c != cluster_id)
                .map(str::to_owned)
                .collect(),
            TerminationBehaviour::TerminateDependents => {
                // Everything that waits for it, transitively, within scope.
                let mut hit: BTreeSet<&str> = BTreeSet::new();
                let mut frontier = vec![cluster_id];
                while let Some(done) = frontier.pop() {
                    for c in &self.clusters {
                        if scope.contains(&c.cluster_id.as_str())
                            && c.waits_for.iter().any(|w| w == done)
                            && hit.insert(&c.cluster_id)
                        {
                            frontier.push(&c.cluster_id);
                        }
                    }
                }
                self.clusters
                    .iter()
                    .filter(|c| hit.contains(c.cluster_id.as_str()))
                    .map(|c| c.cluster_id.clone())
                    .collect()
            }
        }
    }

    /// The cluster of a cartridge alias.
    pub fn cluster_by_alias(&self, alias: &str) -> Option<&ClusterPlan> {
        self.clusters.iter().find(|c| c.alias == alias)
    }
}

/// One cluster: the members of one cartridge alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPlan {
    pub cluster_id: String,
    pub alias: String,
    pub cartridge_type: String,
    /// Host name members are reached by: `APP.ALIAS.HOST` (Stratos's rule),
    /// or `ALIAS.APP` when the cartridge has no host.
    pub hostname: String,
    /// Aliases of the enclosing group instances, outermost first.
    pub groups: Vec<String>,
    /// `cartridgeMin`: members each cluster instance keeps at least.
    pub min: u32,
    /// `cartridgeMax`: members of one cluster instance in one network
    /// partition at most (bursting into the next network partition adds
    /// another instance there, as Stratos's application bursting does).
    pub max: u32,
    pub autoscaling_policy: String,
    pub deployment_policy: String,
    pub port_mappings: Vec<PortMapping>,
    /// Per-member limits from the cartridge's cpu/memory properties.
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// Network partitions the cluster may use, in the order it uses them.
    pub network_partitions: Vec<NetworkPartitionPlan>,
    /// Clusters that must be Active before this one starts.
    pub waits_for: Vec<String>,
    /// Cluster instances to start: one per instance of each enclosing group
    /// (the product of their `groupMinInstances`); each instance holds
    /// `min..=max` members, and `initial_members` is for one instance.
    pub group_instances: u32,
    /// Whether it is in a scaling set (then it scales with its peers).
    pub has_scaling_dependents: bool,
    /// Whether an enclosing group instance has group scaling enabled.
    pub in_group_scaling_subtree: bool,
    /// Where the first members go: one entry per member.
    pub initial_members: Vec<Placement>,
}

/// A network partition as one cluster uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPartitionPlan {
    pub id: String,
    pub provider: Option<String>,
    pub algorithm: PartitionAlgorithm,
    pub partitions: Vec<PartitionSlot>,
    /// Members this cluster may have here: min(cartridgeMax, Σ partitionMax).
    pub max: u32,
    /// The image members run here (the iaasProvider matching the network
    /// partition's provider, else the first).
    pub image: String,
}

/// A partition with its member cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionSlot {
    pub id: String,
    pub max: u32,
}

/// Where one member goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    pub network_partition: String,
    pub partition: String,
}

/// Components of one parent that scale together (Stratos's
/// `dependencies.scalingDependents`): a factor one of them asks for in an
/// instance of the parent moves all of them in that instance: a cluster to
/// `cartridgeMin · factor` members, a group to `groupMinInstances ·
/// factor` instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingSet {
    /// Alias of the group whose definition declares it (`None`: the
    /// application's).
    pub scope: Option<String>,
    /// Clusters it names (`cartridge.ALIAS`).
    pub clusters: Vec<String>,
    /// Aliases of the groups it names (`group.ALIAS`).
    pub groups: Vec<String>,
}

/// A group instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupPlan {
    pub alias: String,
    pub name: String,
    /// Alias of the enclosing group instance.
    pub parent: Option<String>,
    pub min_instances: u32,
    pub max_instances: u32,
    pub group_scaling_enabled: bool,
    /// Whether it is in a scaling set: then what its monitor decides
    /// goes to the set as a factor (`(n ± 1) / groupMinInstances`).
    #[serde(default)]
    pub has_scaling_dependents: bool,
    pub termination_behaviour: TerminationBehaviour,
    /// Every cluster under this group, nested ones included.
    pub clusters: Vec<String>,
}

/// Stratos's cluster id for an alias of a cartridge type in an application.
pub fn cluster_id(application_id: &str, alias: &str, cartridge_type: &str) -> String {
    format!("{application_id}.{alias}.{cartridge_type}.domain")
}

/// Picks the partition for one more member, or `None` when every partition
/// is at its `partitionMax`. `counts[i]` is partition i's current members.
///
/// Round-robin takes the partition with the fewest members (the first of
/// equals) among those with room. (Stratos looked only at the fewest and
/// gave up if that one was full, which strands capacity when partitionMax
/// differ.) One-after-another takes the first partition with room.
pub fn scale_up_partition(
    algorithm: PartitionAlgorithm,
    slots: &[PartitionSlot],
    counts: &[u32],
) -> Option<usize> {
    let open = |i: &usize| counts.get(*i).copied().unwrap_or(0) < slots[*i].max;
    match algorithm {
        PartitionAlgorithm::OneAfterAnother => (0..slots.len()).find(open),
        PartitionAlgorithm::RoundRobin => (0..slots.len())
            .filter(open)
            .min_by_key(|i| (counts.get(*i).copied().unwrap_or(0), *i)),
    }
}

/// Picks the partition to remove a member from, or `None` when all are
/// empty. Round-robin: the fullest (the last of equals); one-after-another:
/// the last partition that has members, undoing the fill order.
pub fn scale_down_partition(algorithm: PartitionAlgorithm, counts: &[u32]) -> Option<usize> {
    let used = |i: &usize| counts[*i] > 0;
    match algorithm {
        PartitionAlgorithm::OneAfterAnother => (0..counts.len()).rev().find(used),
        PartitionAlgorithm::RoundRobin => (0..counts.len())
            .filter(used)
            .max_by_key(|i| (counts[*i], *i)),
    }
}

/// Places `n` more members over `slots` that already hold `counts`; returns
/// the partition index of each, fewer than `n` if the partitions fill up.
pub fn place(
    algorithm: PartitionAlgorithm,
    slots: &[PartitionSlot],
    counts: &mut [u32],
    n: u32,
) -> Vec<usize> {
    let mut out = Vec::new();
    for _ in 0..n {
        match scale_up_partition(algorithm, slots, counts) {
            Some(i) => {
                counts[i] += 1;
                out.push(i);
            }
            None => break,
        }
    }
    out
}

struct Builder<'a> {
    catalog: &'a Catalog,
    app: &'a Application,
    policy: &'a crate::ApplicationPolicy,
    clusters: Vec<ClusterPlan>,
    groups: Vec<GroupPlan>,
    /// (before, after) cluster-id edges.
    edges: BTreeSet<(String, String)>,
    scaling_sets: Vec<ScalingSet>,
}

fn invalid(app: &str, path: String, message: String) -> ModelError {
    ModelError::Invalid {
        kind: Kind::Application,
        id: app.to_owned(),
        path,
        message,
    }
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// Plans the deployment of `application_id` under `application_policy`.
/// The catalog is assumed checked ([`Catalog::apply`] returned it).
pub fn plan(
    catalog: &Catalog,
    application_id: &str,
    application_policy: &str,
) -> Result<Plan, ModelError> {
    let app = catalog
        .applications
        .get(application_id)
        .ok_or_else(|| ModelError::NotFound {
            kind: Kind::Application,
            id: application_id.to_owned(),
        })?;
    let policy = catalog
        .application_policies
        .get(application_policy)
        .ok_or_else(|| ModelError::NotFound {
            kind: Kind::ApplicationPolicy,
            id: application_policy.to_owned(),
        })?;
    let mut b = Builder {
        catalog,
        app,
        policy,
        clusters: Vec::new(),
        groups: Vec::new(),
        edges: BTreeSet::new(),
        scaling_sets: Vec::new(),
    };
    let c = &app.components;
    b.children(
        "components",
        &c.cartridges,
        &c.groups,
        None,
        &[],
        None,
        false,
        c.dependencies.as_ref(),
        1,
    )?;
    let stages = b.stages()?;
    let mut waits: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (before, after) in &b.edges {
        waits
            .entry(after.as_str())
            .or_default()
            .push(before.clone());
    }
    let waits: BTreeMap<String, Vec<String>> =
        waits.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    for cl in &mut b.clusters {
        cl.waits_for = waits.get(&cl.cluster_id).cloned().unwrap_or_default();
        cl.has_scaling_dependents = b
            .scaling_sets
            .iter()
            .any(|s| s.clusters.contains(&cl.cluster_id));
    }
    for g in &mut b.groups {
        g.has_scaling_dependents = b.scaling_sets.iter().any(|s| s.groups.contains(&g.alias));
    }
    Ok(Plan {
        application_id: app.application_id.clone(),
        application_policy: policy.id.clone(),
        network_partitions: policy.network_partitions.clone(),
        default_network_partitions: match policy.algorithm {
            NetworkPartitionAlgorithm::OneAfterAnother => 1,
            NetworkPartitionAlgorithm::AllAtOnce => policy.network_partitions.len(),
        }
        .min(policy.network_partitions.len()),
        clusters: b.clusters,
        groups: b.groups,
        stages,
        scaling_sets: b.scaling_sets,
        termination_behaviour: c
            .dependencies
            .as_ref()
            .and_then(|d| d.termination_behaviour)
            .unwrap_or(TerminationBehaviour::TerminateNone),
    })
}

impl Builder<'_> {
    /// Plans the children of one parent and returns, for each child
    /// (`cartridge.A` / `group.G`), the clusters under it.
    #[allow(clippy::too_many_arguments)]
    fn children(
        &mut self,
        prefix: &str,
        cartridges: &[CartridgeRef],
        groups: &[GroupRef],
        def: Option<&CartridgeGroup>,
        parents: &[String],
        inherited_policy: Option<&str>,
        group_scaling: bool,
        deps: Option<&crate::Dependencies>,
        instances: u32,
    ) -> Result<BTreeMap<String, Vec<String>>, ModelError> {
        let mut under: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (i, c) in cartridges.iter().enumerate() {
            let id = self.cluster(
                &format!("{prefix}.cartridges[{i}]"),
                c,
                parents,
                inherited_policy,
                group_scaling,
                instances,
            )?;
            under.insert(format!("cartridge.{}", c.subscribable_info.alias), vec![id]);
        }
        for (i, g) in groups.iter().enumerate() {
            let p = format!("{prefix}.groups[{i}]");
            let gdef = match def {
                None => self.catalog.groups.get(&g.name),
                Some(parent) => parent.groups.iter().find(|s| s.name == g.name),
            }
            .ok_or_else(|| {
                invalid(
                    &self.app.application_id,
                    format!("{p}.name"),
                    format!("no cartridge group {:?} is known here", g.name),
                )
            })?;
            let scaling = group_scaling || g.group_scaling_enabled || gdef.group_scaling_enabled;
            let mut inner_parents = parents.to_vec();
            inner_parents.push(g.alias.clone());
            let policy = g.deployment_policy.as_deref().or(inherited_policy);
            let inner = self.children(
                &p,
                &g.cartridges,
                &g.groups,
                Some(gdef),
                &inner_parents,
                policy,
                scaling,
                gdef.dependencies.as_ref(),
                instances.saturating_mul(to_u32(g.group_min_instances)),
            )?;
            let clusters: Vec<String> = inner.into_values().flatten().collect();
            self.groups.push(GroupPlan {
                alias: g.alias.clone(),
                name: g.name.clone(),
                parent: parents.last().cloned(),
                min_instances: to_u32(g.group_min_instances),
                max_instances: to_u32(g.group_max_instances),
                group_scaling_enabled: g.group_scaling_enabled || gdef.group_scaling_enabled,
                has_scaling_dependents: false,
                termination_behaviour: gdef
                    .dependencies
                    .as_ref()
                    .and_then(|d| d.termination_behaviour)
                    .unwrap_or(TerminationBehaviour::TerminateNone),
                clusters: clusters.clone(),
            });
            under.insert(format!("group.{}", g.alias), clusters);
        }
        if let Some(d) = deps {
            let expand = |a: &str| under.get(a).cloned().unwrap_or_default();
            for order in &d.startup_orders {
                for w in order.aliases.windows(2) {
                    for before in expand(&w[0]) {
                        for after in expand(&w[1]) {
                            self.edges.insert((before.clone(), after));
                        }
                    }
                }
            }
            for set in &d.scaling_dependents {
                let mut s = ScalingSet {
                    scope: parents.last().cloned(),
                    clusters: Vec::new(),
                    groups: Vec::new(),
                };
                for a in &set.aliases {
                    match a.strip_prefix("group.") {
                        Some(g) => s.groups.push(g.to_owned()),
                        None => s.clusters.extend(expand(a)),
                    }
                }
                if s.clusters.len() + s.groups.len() > 1 {
                    self.scaling_sets.push(s);
                }
            }
        }
        Ok(under)
    }

    fn cluster(
        &mut self,
        path: &str,
        c: &CartridgeRef,
        parents: &[String],
        inherited_policy: Option<&str>,
        group_scaling: bool,
        group_instances: u32,
    ) -> Result<String, ModelError> {
        let app_id = &self.app.application_id;
        let s = &c.subscribable_info;
        let cartridge: &Cartridge =
            self.catalog
                .cartridges
                .get(&c.cartridge_type)
                .ok_or_else(|| {
                    invalid(
                        app_id,
                        format!("{path}.type"),
                        format!("no cartridge of type {:?} is registered", c.cartridge_type),
                    )
                })?;
        let dp_id = s
            .deployment_policy
            .as_deref()
            .or(inherited_policy)
            .ok_or_else(|| {
                invalid(
                    app_id,
                    format!("{path}.subscribableInfo.deploymentPolicy"),
                    "is missing".into(),
                )
            })?;
        let dp = self.catalog.deployment_policies.get(dp_id).ok_or_else(|| {
            invalid(
                app_id,
                format!("{path}.subscribableInfo.deploymentPolicy"),
                format!("no deployment policy {dp_id:?} is registered"),
            )
        })?;
        let (min, cartridge_max) = (to_u32(c.cartridge_min), to_u32(c.cartridge_max));
        // The application policy's order decides which network partition is
        // first; the deployment policy says how each is used.
        let mut nps = Vec::new();
        for np_id in &self.policy.network_partitions {
            let Some(npr) = dp.network_partitions.iter().find(|n| &n.id == np_id) else {
                continue;
            };
            let provider = npr.provider.clone().or_else(|| {
                self.catalog
                    .network_partitions
                    .get(np_id)
                    .and_then(|n| n.provider.clone())
            });
            let partitions: Vec<PartitionSlot> = npr
                .partitions
                .iter()
                .map(|p| PartitionSlot {
                    id: p.id.clone(),
                    max: to_u32(p.partition_max),
                })
                .collect();
            let capacity: u32 = partitions
                .iter()
                .map(|p| p.max)
                .fold(0, u32::saturating_add);
            let image = cartridge
                .iaas_provider
                .iter()
                .find(|ip| Some(&ip.provider_type) == provider.as_ref())
                .or_else(|| cartridge.iaas_provider.first())
                .map(|ip| ip.image_id.clone())
                .unwrap_or_default();
            nps.push(NetworkPartitionPlan {
                id: np_id.clone(),
                provider,
                algorithm: npr.partition_algo,
                partitions,
                max: cartridge_max.min(capacity),
                image,
            });
        }
        if nps.is_empty() {
            return Err(invalid(
                app_id,
                format!("{path}.subscribableInfo.deploymentPolicy"),
                format!(
                    "deployment policy {dp_id:?} uses none of the network partitions of application policy {:?} ({})",
                    self.policy.id,
                    self.policy.network_partitions.join(", ")
                ),
            ));
        }
        let starting: &[NetworkPartitionPlan] = match self.policy.algorithm {
            NetworkPartitionAlgorithm::OneAfterAnother => &nps[..1],
            NetworkPartitionAlgorithm::AllAtOnce => &nps,
        };
        let mut initial = Vec::new();
        for np in starting {
            if np.max < min {
                return Err(invalid(
                    app_id,
                    format!("{path}.cartridgeMin"),
                    format!(
                        "is {min}, but deployment policy {dp_id:?} allows only {} members in network partition {:?} (the sum of its partitionMax)",
                        np.max, np.id
                    ),
                ));
            }
            let mut counts = vec![0; np.partitions.len()];
            for i in place(np.algorithm, &np.partitions, &mut counts, min) {
                initial.push(Placement {
                    network_partition: np.id.clone(),
                    partition: np.partitions[i].id.clone(),
                });
            }
        }
        let res: Resources = quantity::resources(&cartridge.property).unwrap_or_default();
        let id = cluster_id(app_id, &s.alias, &c.cartridge_type);
        let hostname = match &cartridge.host {
            Some(h) if !h.is_empty() => format!("{app_id}.{}.{h}", s.alias),
            _ => format!("{}.{app_id}", s.alias),
        };
        self.clusters.push(ClusterPlan {
            cluster_id: id.clone(),
            alias: s.alias.clone(),
            cartridge_type: c.cartridge_type.clone(),
            hostname,
            groups: parents.to_vec(),
            min,
            max: cartridge_max,
            autoscaling_policy: s.autoscaling_policy.clone().unwrap_or_default(),
            deployment_policy: dp_id.to_owned(),
            port_mappings: cartridge.port_mapping.clone(),
            cpu_millis: res.cpu_millis,
            memory_bytes: res.memory_bytes,
            network_partitions: nps,
            waits_for: Vec::new(),
            group_instances,
            has_scaling_dependents: false,
            in_group_scaling_subtree: group_scaling,
            initial_members: initial,
        });
        Ok(id)
    }

    /// Kahn's algorithm in levels, clusters in declaration order in each;
    /// O(clusters + edges).
    fn stages(&self) -> Result<Vec<Vec<String>>, ModelError> {
        let index: BTreeMap<&str, usize> = self
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| (c.cluster_id.as_str(), i))
            .collect();
        let mut indegree = vec![0usize; self.clusters.len()];
        let mut after: Vec<Vec<usize>> = vec![Vec::new(); self.clusters.len()];
        for (before, then) in &self.edges {
            if let (Some(&b), Some(&t)) = (index.get(before.as_str()), index.get(then.as_str())) {
                after[b].push(t);
                indegree[t] += 1;
            }
        }
        let mut ready: Vec<usize> = (0..self.clusters.len())
            .filter(|i| indegree[*i] == 0)
            .collect();
        let mut placed = 0;
        let mut stages = Vec::new();
        while !ready.is_empty() {
            ready.sort_unstable();
            let mut next = Vec::new();
            for &i in &ready {
                for &t in &after[i] {
                    indegree[t] -= 1;
                    if indegree[t] == 0 {
                        next.push(t);
                    }
                }
            }
            placed += ready.len();
            stages.push(
                ready
                    .iter()
                    .map(|i| self.clusters[*i].cluster_id.clone())
                    .collect(),
            );
            ready = next;
        }
        if placed < self.clusters.len() {
            // Each parent's orders were checked acyclic; edges only join
            // disjoint sibling subtrees, so this cannot happen. Refuse
            // rather than plan half if it ever does.
            let stuck: Vec<&str> = (0..self.clusters.len())
                .filter(|i| indegree[*i] > 0)
                .map(|i| self.clusters[i].cluster_id.as_str())
                .collect();
            return Err(invalid(
                &self.app.application_id,
                "components.dependencies.startupOrders".into(),
                format!("startup orders form a cycle among: {}", stuck.join(", ")),
            ));
        }
        Ok(stages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self as fx};
    use crate::Change;
    use serde_json::json;

    const FRONT: &str = "app1.front.web.domain";
    const D: &str = "app1.d.db.domain";
    const W: &str = "app1.w.web.domain";
    const W2: &str = "app1.w2.web.domain";

    fn slots(maxes: &[u32]) -> Vec<PartitionSlot> {
        maxes
            .iter()
            .enumerate()
            .map(|(i, m)| PartitionSlot {
                id: format!("p{i}"),
                max: *m,
            })
            .collect()
    }

    #[test]
    fn round_robin_spreads_and_looks_past_full_partitions() {
        let s = slots(&[2, 3]);
        let mut counts = vec![0, 0];
        assert_eq!(
            place(PartitionAlgorithm::RoundRobin, &s, &mut counts, 6),
            [0, 1, 0, 1, 1]
        );
        assert_eq!(counts, [2, 3]);
        // Stratos would stop here: the emptiest partition is full.
        let s = slots(&[1, 5]);
        assert_eq!(
            scale_up_partition(PartitionAlgorithm::RoundRobin, &s, &[1, 2]),
            Some(1)
        );
        assert_eq!(
            scale_up_partition(PartitionAlgorithm::RoundRobin, &s, &[1, 5]),
            None
        );
    }

    #[test]
    fn one_after_another_fills_in_order() {
        let s = slots(&[2, 1, 2]);
        let mut counts = vec![0, 0, 0];
        assert_eq!(
            place(PartitionAlgorithm::OneAfterAnother, &s, &mut counts, 4),
            [0, 0, 1, 2]
        );
        assert_eq!(
            scale_down_partition(PartitionAlgorithm::OneAfterAnother, &counts),
            Some(2)
        );
        assert_eq!(
            scale_down_partition(PartitionAlgorithm::OneAfterAnother, &[1, 0, 0]),
            Some(0)
        );
        assert_eq!(
            scale_down_partition(PartitionAlgorithm::OneAfterAnother, &[0, 0]),
            None
        );
    }

    #[test]
    fn round_robin_scale_down_takes_the_fullest_last_first() {
        assert_eq!(
            scale_down_partition(PartitionAlgorithm::RoundRobin, &[2, 3, 3]),
            Some(2)
        );
        assert_eq!(
            scale_down_partition(PartitionAlgorithm::RoundRobin, &[4, 3, 0]),
            Some(0)
        );
        assert_eq!(
            scale_down_partition(PartitionAlgorithm::RoundRobin, &[0, 0]),
            None
        );
    }

    #[test]
    fn clusters_order_and_placement_of_the_fixture_application() {
        let cat = fx::catalog();
        let p = plan(&cat, "app1", "ap1").unwrap();
        let ids: Vec<&str> = p.clusters.iter().map(|c| c.cluster_id.as_str()).collect();
        assert_eq!(ids, [FRONT, D, W, W2]);
        // Group "stack" orders d → i → w; the application orders s → front.
        assert_eq!(
            p.stages,
            vec![
                vec![D.to_owned()],
                vec![W2.to_owned()],
                vec![W.to_owned()],
                vec![FRONT.to_owned()]
            ]
        );
        let front = p.cluster(FRONT).unwrap();
        assert_eq!(front.waits_for, [D, W, W2]);
        assert_eq!(p.cluster(W).unwrap().waits_for, [W2]);
        assert!(p.cluster(D).unwrap().waits_for.is_empty());
        assert_eq!(front.hostname, "app1.front.example.org");
        assert_eq!(front.groups, Vec::<String>::new());
        assert_eq!(p.cluster(W2).unwrap().groups, ["s", "i"]);
        assert_eq!(front.group_instances, 1);
        // The group's deployment policy reaches the nested cartridges.
        assert_eq!(p.cluster(W2).unwrap().deployment_policy, "dp1");
        // np1 holds 2+3 members, np2 2; cartridgeMax 10 is above both.
        let nps: Vec<(&str, u32)> = front
            .network_partitions
            .iter()
            .map(|n| (n.id.as_str(), n.max))
            .collect();
        assert_eq!(nps, [("np1", 5), ("np2", 2)]);
        assert_eq!(front.network_partitions[0].image, "web:1");
        assert_eq!(
            (front.cpu_millis, front.memory_bytes),
            (Some(250), Some(64 << 20))
        );
        // w2 starts 2 members, round-robin over np1's partitions.
        let w2: Vec<(&str, &str)> = p
            .cluster(W2)
            .unwrap()
            .initial_members
            .iter()
            .map(|m| (m.network_partition.as_str(), m.partition.as_str()))
            .collect();
        assert_eq!(w2, [("np1", "p1"), ("np1", "p2")]);
        let groups: Vec<(&str, Option<&str>, usize)> = p
            .groups
            .iter()
            .map(|g| (g.alias.as_str(), g.parent.as_deref(), g.clusters.len()))
            .collect();
        assert_eq!(
            groups,
            [("i", Some("s")), ("s", None)].map(|(a, b)| (a, b, if a == "i" { 1 } else { 3 }))
        );
        let s = p.groups.iter().find(|g| g.alias == "s").unwrap();
        assert_eq!(
            s.termination_behaviour,
            TerminationBehaviour::TerminateDependents
        );
        assert_eq!((s.min_instances, s.max_instances), (1, 2));
        assert!(p.scaling_sets.is_empty());
    }

    #[test]
    fn all_at_once_starts_in_every_network_partition() {
        let cat = fx::catalog();
        let ap =
            json!({"id": "ap2", "algorithm": "all-at-once", "networkPartitions": ["np2", "np1"]});
        let cat = cat
            .apply(&[Change::add(fx::def(Kind::ApplicationPolicy, &ap))])
            .unwrap();
        let p = plan(&cat, "app1", "ap2").unwrap();
        let w2 = p.cluster(W2).unwrap();
        // The application policy's order: np2 first.
        let nps: Vec<&str> = w2
            .network_partitions
            .iter()
            .map(|n| n.id.as_str())
            .collect();
        assert_eq!(nps, ["np2", "np1"]);
        let placed: Vec<(&str, &str)> = w2
            .initial_members
            .iter()
            .map(|m| (m.network_partition.as_str(), m.partition.as_str()))
            .collect();
        assert_eq!(
            placed,
            [("np2", "q1"), ("np2", "q1"), ("np1", "p1"), ("np1", "p2")]
        );
        // Both are in use from the start, np2 first.
        assert_eq!(p.network_partitions, ["np2", "np1"]);
        assert_eq!(p.default_network_partitions, 2);
    }

    #[test]
    fn scaling_dependents_form_sets_of_clusters() {
        let cat = fx::catalog();
        let mut app = fx::application();
        app["components"]["dependencies"]["scalingDependents"] =
            json!([{"aliases": ["group.s", "cartridge.front"]}]);
        let cat = cat
            .apply(&[Change::update(fx::def(Kind::Application, &app))])
            .unwrap();
        let p = plan(&cat, "app1", "ap1").unwrap();
        // The group scales by its instances, the cartridge by its members
        // (Stratos's dependent scaling): the group's clusters are not in
        // the set themselves.
        assert_eq!(
            p.scaling_sets,
            vec![ScalingSet {
                scope: None,
                clusters: vec![FRONT.to_owned()],
                groups: vec!["s".to_owned()],
            }]
        );
        let with: Vec<&str> = p
            .clusters
            .iter()
            .filter(|c| c.has_scaling_dependents)
            .map(|c| c.cluster_id.as_str())
            .collect();
        assert_eq!(with, [FRONT]);
        let groups: Vec<(&str, bool)> = p
            .groups
            .iter()
            .map(|g| (g.alias.as_str(), g.has_scaling_dependents))
            .collect();
        assert_eq!(groups, [("i", false), ("s", true)]);
    }

    #[test]
    fn group_instances_multiply_down_the_tree() {
        let mut app = fx::application();
        app["components"]["groups"][0]["groupMinInstances"] = json!(2);
        app["components"]["groups"][0]["groupMaxInstances"] = json!(3);
        app["components"]["groups"][0]["groups"][0]["groupMinInstances"] = json!(2);
        app["components"]["groups"][0]["groups"][0]["groupMaxInstances"] = json!(2);
        let cat = fx::catalog()
            .apply(&[Change::update(fx::def(Kind::Application, &app))])
            .unwrap();
        let p = plan(&cat, "app1", "ap1").unwrap();
        let n = |id| p.cluster(id).unwrap().group_instances;
        assert_eq!((n(FRONT), n(D), n(W), n(W2)), (1, 2, 2, 4));
    }

    #[test]
    fn termination_follows_the_behaviour_of_the_innermost_group() {
        let cat = fx::catalog();
        let p = plan(&cat, "app1", "ap1").unwrap();
        // Group "stack" (s) terminates dependents: d ← i(w2) ← w.
        assert_eq!(p.terminate_with(D), [W, W2]);
        assert_eq!(p.terminate_with(W), Vec::<String>::new());
        // w2 sits in group "inner" (terminate-none); front in the application (none).
        assert!(p.terminate_with(W2).is_empty());
        assert!(p.terminate_with(FRONT).is_empty());
        assert!(p.terminate_with("nope").is_empty());
        // terminate-all at the application level takes every other cluster.
        let mut app = fx::application();
        app["components"]["dependencies"]["terminationBehaviour"] = json!("terminate-all");
        let cat = cat
            .apply(&[Change::update(fx::def(Kind::Application, &app))])
            .unwrap();
        let p = plan(&cat, "app1", "ap1").unwrap();
        assert_eq!(p.terminate_with(FRONT), [D, W, W2]);
        assert_eq!(p.shutdown_stages()[0], [FRONT]);
        assert_eq!(p.shutdown_stages().last().unwrap(), &[D]);
    }

    #[test]
    fn a_large_ordered_application_plans() {
        // Two group instances of 400 clusters each, one before the other:
        // 160000 edges between them.
        let sub = |alias: String| {
            json!({"type": "web", "cartridgeMin": 1, "cartridgeMax": 1,
                   "subscribableInfo": {"alias": alias, "autoscalingPolicy": "asp1"}})
        };
        let group = |alias: &str| {
            let cs: Vec<_> = (0..400).map(|i| sub(format!("{alias}-{i}"))).collect();
            json!({"name": "big", "alias": alias, "deploymentPolicy": "dp1", "cartridges": cs})
        };
        let app = json!({"applicationId": "large", "components": {
            "groups": [group("g1"), group("g2")],
            "dependencies": {"startupOrders": [{"aliases": ["group.g1", "group.g2"]}]}}});
        let big = json!({"name": "big", "cartridges": ["web"]});
        let cat = fx::catalog()
            .apply(&[
                Change::add(fx::def(Kind::CartridgeGroup, &big)),
                Change::add(fx::def(Kind::Application, &app)),
            ])
            .unwrap();
        let p = plan(&cat, "large", "ap1").unwrap();
        assert_eq!(p.clusters.len(), 800);
        assert_eq!(
            p.stages.iter().map(Vec::len).collect::<Vec<_>>(),
            [400, 400]
        );
        assert_eq!(
            p.cluster("large.g2-7.web.domain").unwrap().waits_for.len(),
            400
        );
    }

    #[test]
    fn planning_faults() {
        let cat = fx::catalog();
        assert_eq!(
            plan(&cat, "ghost", "ap1").unwrap_err(),
            ModelError::NotFound {
                kind: Kind::Application,
                id: "ghost".into()
            }
        );
        assert_eq!(
            plan(&cat, "app1", "ghost").unwrap_err(),
            ModelError::NotFound {
                kind: Kind::ApplicationPolicy,
                id: "ghost".into()
            }
        );
        // More members at the start than the partitions hold.
        let mut app = fx::application();
        app["components"]["groups"][0]["groups"][0]["cartridges"][0]["cartridgeMin"] = json!(6);
        app["components"]["groups"][0]["groups"][0]["cartridges"][0]["cartridgeMax"] = json!(8);
        let big = cat
            .apply(&[Change::update(fx::def(Kind::Application, &app))])
            .unwrap();
        let e = plan(&big, "app1", "ap1").unwrap_err();
        assert_eq!(
            e.path(),
            Some("components.groups[0].groups[0].cartridges[0].cartridgeMin")
        );
        assert!(
            e.to_string()
                .contains("allows only 5 members in network partition \"np1\""),
            "{e}"
        );
        // A policy sharing no network partition with the deployment policy.
        let other = cat
            .apply(&[
                Change::add(fx::def(
                    Kind::NetworkPartition,
                    &fx::network_partition("np3", &["r1"]),
                )),
                Change::add(fx::def(
                    Kind::ApplicationPolicy,
                    &json!({"id": "ap3", "networkPartitions": ["np3"]}),
                )),
            ])
            .unwrap();
        let e = plan(&other, "app1", "ap3").unwrap_err();
        assert_eq!(
            e.path(),
            Some("components.cartridges[0].subscribableInfo.deploymentPolicy")
        );
    }
}
