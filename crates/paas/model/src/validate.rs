//! Checks of one definition on its own: ids, bounds, duplicates, and cycles
//! among the dependencies a document declares. Each fault names its JSON path.

use crate::quantity;
use crate::{
    Application, ApplicationPolicy, AutoscalePolicy, Cartridge, CartridgeGroup, CartridgeRef,
    Definition, Dependencies, DeploymentPolicy, GroupRef, Kind, KubernetesCluster, KubernetesHost,
    ModelError, NetworkPartition, Property,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Longest id accepted (ids end up in container names and labels).
pub const MAX_ID_LEN: usize = 128;
/// Longest alias accepted (an alias is a DNS label in host names).
pub const MAX_ALIAS_LEN: usize = 63;
/// Deepest group nesting accepted.
pub const MAX_NESTING: usize = 16;
/// Most members one cluster, group or partition may be given (a bound on
/// the work a definition can ask for).
pub const MAX_MEMBERS: i64 = 10_000;
/// Most components (cartridge and group aliases) one application may have,
/// and most aliases one dependency list may name.
pub const MAX_COMPONENTS: usize = 1000;
/// Protocols a port mapping may name.
pub const PROTOCOLS: [&str; 4] = ["http", "https", "tcp", "udp"];

pub(crate) type Res<T = ()> = Result<T, ModelError>;

/// Who is being checked, for error messages.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub kind: Kind,
    pub id: String,
}

impl Ctx {
    pub fn new(kind: Kind, id: &str) -> Ctx {
        Ctx {
            kind,
            id: id.to_owned(),
        }
    }

    pub fn fail<T>(&self, path: impl Into<String>, message: impl Into<String>) -> Res<T> {
        Err(ModelError::Invalid {
            kind: self.kind,
            id: self.id.clone(),
            path: path.into(),
            message: message.into(),
        })
    }
}

pub(crate) fn definition(def: &Definition) -> Res {
    match def {
        Definition::Cartridge(c) => cartridge(c),
        Definition::CartridgeGroup(g) => cartridge_group(g),
        Definition::Application(a) => application(a),
        Definition::NetworkPartition(n) => network_partition(n),
        Definition::DeploymentPolicy(p) => deployment_policy(p),
        Definition::ApplicationPolicy(p) => application_policy(p),
        Definition::AutoscalingPolicy(p) => autoscale_policy(p),
        Definition::KubernetesCluster(k) => kubernetes_cluster(k),
    }
}

fn id_chars_ok(v: &str, dots: bool) -> bool {
    let mut chars = v.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || (dots && c == '.'))
}

/// An id: letters, digits, `.`, `_`, `-`, starting with a letter or digit.
pub(crate) fn check_id(ctx: &Ctx, path: &str, v: &str, dots: bool) -> Res {
    if v.is_empty() {
        return ctx.fail(path, "is missing or empty");
    }
    if v.len() > MAX_ID_LEN || !id_chars_ok(v, dots) {
        let allowed = if dots {
            "'.', '_' and '-'"
        } else {
            "'_' and '-'"
        };
        return ctx.fail(
            path,
            format!(
                "{v:?} is not a valid id: use letters, digits, {allowed}, start with a letter or digit, at most {MAX_ID_LEN} characters"
            ),
        );
    }
    Ok(())
}

/// Stratos's alias rule (`([a-z0-9]+([-][a-z0-9])*)+`): lowercase letters,
/// digits and single hyphens inside.
pub(crate) fn check_alias(ctx: &Ctx, path: &str, v: &str) -> Res {
    if v.is_empty() {
        return ctx.fail(path, "is missing or empty");
    }
    let ok = v.len() <= MAX_ALIAS_LEN
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !v.starts_with('-')
        && !v.ends_with('-')
        && !v.contains("--");
    if !ok {
        return ctx.fail(
            path,
            format!("{v:?} is not a valid alias: use lowercase letters, digits and single hyphens inside, at most {MAX_ALIAS_LEN} characters"),
        );
    }
    Ok(())
}

fn check_properties(ctx: &Ctx, path: &str, props: &[Property]) -> Res {
    for (i, p) in props.iter().enumerate() {
        if p.name.trim().is_empty() {
            return ctx.fail(format!("{path}[{i}].name"), "is missing or empty");
        }
    }
    Ok(())
}

fn check_resources(ctx: &Ctx, path: &str, props: &[Property]) -> Res {
    quantity::resources(props)
        .map(|_| ())
        .or_else(|(i, m)| ctx.fail(format!("{path}[{i}].value"), m))
}

fn check_unique<'a>(
    ctx: &Ctx,
    items: impl IntoIterator<Item = (String, &'a str)>,
    what: &str,
) -> Res {
    let mut seen: HashMap<&str, String> = HashMap::new();
    for (path, v) in items {
        if let Some(first) = seen.get(v) {
            return ctx.fail(path, format!("{what} {v:?} is already used at {first}"));
        }
        seen.insert(v, path);
    }
    Ok(())
}

/// A path a member may see: absolute, no `..`, no NUL.
fn check_member_path(ctx: &Ctx, path: &str, v: &str) -> Res {
    if !v.starts_with('/') || v.split('/').any(|c| c == "..") || v.contains('\0') {
        return ctx.fail(
            path,
            format!("{v:?} must be an absolute path without '..' components"),
        );
    }
    Ok(())
}

pub(crate) fn cartridge(c: &Cartridge) -> Res {
    let ctx = Ctx::new(Kind::Cartridge, &c.cartridge_type);
    check_id(&ctx, "type", &c.cartridge_type, false)?;
    for (i, pm) in c.port_mapping.iter().enumerate() {
        let p = format!("portMapping[{i}]");
        if !PROTOCOLS.contains(&pm.protocol.as_str()) {
            return ctx.fail(
                format!("{p}.protocol"),
                format!(
                    "{:?} is not a supported protocol (one of {})",
                    pm.protocol,
                    PROTOCOLS.join(", ")
                ),
            );
        }
        if !(1..=65535).contains(&pm.port) {
            return ctx.fail(
                format!("{p}.port"),
                format!("{} is not a port (1-65535)", pm.port),
            );
        }
        if !(0..=65535).contains(&pm.proxy_port) {
            return ctx.fail(
                format!("{p}.proxyPort"),
                format!("{} is not a port (1-65535, or 0 for none)", pm.proxy_port),
            );
        }
    }
    let ports: Vec<(String, String)> = c
        .port_mapping
        .iter()
        .enumerate()
        .map(|(i, pm)| {
            // The same number on tcp and udp is two ports.
            let transport = if pm.protocol == "udp" { "udp" } else { "tcp" };
            (
                format!("portMapping[{i}].port"),
                format!("{}/{transport}", pm.port),
            )
        })
        .collect();
    check_unique(
        &ctx,
        ports.iter().map(|(p, v)| (p.clone(), v.as_str())),
        "port",
    )?;
    let exposed: Vec<(String, String)> = c
        .port_mapping
        .iter()
        .enumerate()
        .filter(|(_, pm)| pm.proxy_port != 0)
        .map(|(i, pm)| {
            (
                format!("portMapping[{i}].proxyPort"),
                pm.proxy_port.to_string(),
            )
        })
        .collect();
    check_unique(
        &ctx,
        exposed.iter().map(|(p, v)| (p.clone(), v.as_str())),
        "proxyPort",
    )?;
    if c.iaas_provider.is_empty() {
        return ctx.fail(
            "iaasProvider",
            "a cartridge needs at least one iaasProvider with an imageId (the image its members run)",
        );
    }
    for (i, ip) in c.iaas_provider.iter().enumerate() {
        let p = format!("iaasProvider[{i}]");
        if ip.provider_type.trim().is_empty() {
            return ctx.fail(format!("{p}.type"), "is missing or empty");
        }
        if ip.image_id.trim().is_empty() {
            return ctx.fail(format!("{p}.imageId"), "is missing or empty");
        }
        check_properties(&ctx, &format!("{p}.property"), &ip.property)?;
    }
    check_unique(
        &ctx,
        c.iaas_provider
            .iter()
            .enumerate()
            .map(|(i, ip)| (format!("iaasProvider[{i}].type"), ip.provider_type.as_str())),
        "iaasProvider type",
    )?;
    check_properties(&ctx, "property", &c.property)?;
    check_resources(&ctx, "property", &c.property)?;
    for (i, k) in c.metadata_keys.iter().enumerate() {
        if k.trim().is_empty() {
            return ctx.fail(format!("metadataKeys[{i}]"), "is empty");
        }
    }
    if let Some(p) = &c.persistence {
        persistence(&ctx, "persistence", p)?;
    }
    Ok(())
}

fn persistence(ctx: &Ctx, path: &str, p: &crate::Persistence) -> Res {
    if p.is_required && p.volume.is_empty() {
        return ctx.fail(
            format!("{path}.volume"),
            "persistence isRequired but no volume is given",
        );
    }
    for (i, v) in p.volume.iter().enumerate() {
        let vp = format!("{path}.volume[{i}]");
        if let Some(size) = &v.size {
            match size.trim().parse::<u64>() {
                Ok(n) if n > 0 => {}
                _ => {
                    return ctx.fail(
                        format!("{vp}.size"),
                        format!("{size:?} is not a size (a whole number of GB, at least 1)"),
                    )
                }
            }
        }
        if let Some(mp) = &v.mapping_path {
            check_member_path(ctx, &format!("{vp}.mappingPath"), mp)?;
        }
    }
    Ok(())
}

pub(crate) fn cartridge_group(g: &CartridgeGroup) -> Res {
    let ctx = Ctx::new(Kind::CartridgeGroup, &g.name);
    group_def(&ctx, "", g, &mut Vec::new())
}

fn group_def<'a>(
    ctx: &Ctx,
    prefix: &str,
    g: &'a CartridgeGroup,
    ancestors: &mut Vec<&'a str>,
) -> Res {
    check_id(ctx, &format!("{prefix}name"), &g.name, false)?;
    if ancestors.contains(&g.name.as_str()) {
        return ctx.fail(
            format!("{prefix}name"),
            format!(
                "group {:?} nests itself ({} -> {})",
                g.name,
                ancestors.join(" -> "),
                g.name
            ),
        );
    }
    if ancestors.len() >= MAX_NESTING {
        return ctx.fail(
            format!("{prefix}groups"),
            format!("groups nest deeper than {MAX_NESTING} levels"),
        );
    }
    if g.cartridges.is_empty() && g.groups.is_empty() {
        return ctx.fail(
            format!("{prefix}cartridges"),
            "a group needs at least one cartridge or nested group",
        );
    }
    for (i, c) in g.cartridges.iter().enumerate() {
        check_id(ctx, &format!("{prefix}cartridges[{i}]"), c, false)?;
    }
    check_unique(
        ctx,
        g.cartridges
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("{prefix}cartridges[{i}]"), c.as_str())),
        "cartridge type",
    )?;
    check_unique(
        ctx,
        g.groups
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("{prefix}groups[{i}].name"), c.name.as_str())),
        "group name",
    )?;
    if let Some(d) = &g.dependencies {
        dependencies(ctx, &format!("{prefix}dependencies"), d, None)?;
    }
    ancestors.push(&g.name);
    for (i, sub) in g.groups.iter().enumerate() {
        group_def(ctx, &format!("{prefix}groups[{i}]."), sub, ancestors)?;
    }
    ancestors.pop();
    Ok(())
}

/// A component reference in dependencies: `cartridge.ALIAS` or `group.ALIAS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComponentRef<'a> {
    Cartridge(&'a str),
    Group(&'a str),
}

impl ComponentRef<'_> {
    pub fn parse(s: &str) -> Option<ComponentRef<'_>> {
        if let Some(a) = s.strip_prefix("cartridge.") {
            Some(ComponentRef::Cartridge(a))
        } else {
            s.strip_prefix("group.").map(ComponentRef::Group)
        }
    }
}

/// Checks the form of `dependencies` and that its startup orders have no
/// cycle. With `children`, every alias must name one of them.
pub(crate) fn dependencies(
    ctx: &Ctx,
    path: &str,
    d: &Dependencies,
    children: Option<&BTreeSet<String>>,
) -> Res {
    let lists = [
        ("startupOrders", &d.startup_orders),
        ("scalingDependents", &d.scaling_dependents),
    ];
    for (name, list) in lists {
        for (i, l) in list.iter().enumerate() {
            let lp = format!("{path}.{name}[{i}].aliases");
            if l.aliases.is_empty() {
                return ctx.fail(lp, "is empty");
            }
            if l.aliases.len() > MAX_COMPONENTS {
                return ctx.fail(lp, format!("names more than {MAX_COMPONENTS} aliases"));
            }
            for (j, a) in l.aliases.iter().enumerate() {
                let ap = format!("{lp}[{j}]");
                let Some(r) = ComponentRef::parse(a) else {
                    return ctx.fail(
                        ap,
                        format!("{a:?} must be \"cartridge.ALIAS\" or \"group.ALIAS\""),
                    );
                };
                let alias = match r {
                    ComponentRef::Cartridge(x) | ComponentRef::Group(x) => x,
                };
                check_alias(ctx, &ap, alias)?;
                if let Some(children) = children {
                    if !children.contains(a.as_str()) {
                        let known: Vec<&str> = children.iter().map(String::as_str).collect();
                        return ctx.fail(
                            ap,
                            format!(
                                "{a:?} is not a component here (components: {})",
                                if known.is_empty() {
                                    "none".to_owned()
                                } else {
                                    known.join(", ")
                                }
                            ),
                        );
                    }
                }
            }
            check_unique(
                ctx,
                l.aliases
                    .iter()
                    .enumerate()
                    .map(|(j, a)| (format!("{lp}[{j}]"), a.as_str())),
                "alias",
            )?;
        }
    }
    if let Some(cycle) = startup_cycle(d) {
        return ctx.fail(
            format!("{path}.startupOrders"),
            format!("startup orders form a cycle: {}", cycle.join(" -> ")),
        );
    }
    Ok(())
}

/// Finds a cycle among the "a before b" edges of the startup orders.
pub(crate) fn startup_cycle(d: &Dependencies) -> Option<Vec<String>> {
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for l in &d.startup_orders {
        for w in l.aliases.windows(2) {
            edges.entry(&w[0]).or_default().insert(&w[1]);
            edges.entry(&w[1]).or_default();
        }
    }
    find_cycle(&edges)
}

/// Depth-first search for a cycle; returns it as a closed walk `a -> b -> a`.
pub(crate) fn find_cycle(edges: &BTreeMap<&str, BTreeSet<&str>>) -> Option<Vec<String>> {
    // Iterative depth-first search: a hostile chain of thousands of aliases
    // must not exhaust the stack.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: HashMap<&str, Mark> = HashMap::new();
    for root in edges.keys() {
        if marks.contains_key(root) {
            continue;
        }
        // The path from the root, each node with its unvisited successors.
        let mut path: Vec<(&str, std::collections::btree_set::Iter<'_, &str>)> = Vec::new();
        marks.insert(root, Mark::Open);
        path.push((root, edges.get(root).map(|s| s.iter()).unwrap_or_default()));
        while let Some((node, next)) = path.last_mut() {
            match next.next() {
                Some(m) => match marks.get(m) {
                    Some(Mark::Done) => {}
                    Some(Mark::Open) => {
                        let start = path.iter().position(|(n, _)| n == m).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            path[start..].iter().map(|(n, _)| (*n).to_owned()).collect();
                        cycle.push((*m).to_owned());
                        return Some(cycle);
                    }
                    None => {
                        marks.insert(m, Mark::Open);
                        path.push((m, edges.get(m).map(|s| s.iter()).unwrap_or_default()));
                    }
                },
                None => {
                    marks.insert(node, Mark::Done);
                    path.pop();
                }
            }
        }
    }
    None
}

pub(crate) fn application(a: &Application) -> Res {
    let ctx = Ctx::new(Kind::Application, &a.application_id);
    check_id(&ctx, "applicationId", &a.application_id, false)?;
    if let Some(alias) = &a.alias {
        if alias.trim().is_empty() {
            return ctx.fail("alias", "is empty");
        }
    }
    let c = &a.components;
    if c.cartridges.is_empty() && c.groups.is_empty() {
        return ctx.fail(
            "components",
            "an application needs at least one cartridge or group",
        );
    }
    let mut aliases: HashMap<String, String> = HashMap::new();
    let children = components(
        &ctx,
        "components",
        &c.cartridges,
        &c.groups,
        None,
        &mut aliases,
        0,
    )?;
    if let Some(d) = &c.dependencies {
        dependencies(&ctx, "components.dependencies", d, Some(&children))?;
    }
    check_properties(&ctx, "property", &a.property)?;
    Ok(())
}

/// Checks the cartridge and group references under one parent and returns
/// the parent's children as `cartridge.ALIAS` / `group.ALIAS`.
fn components(
    ctx: &Ctx,
    prefix: &str,
    cartridges: &[CartridgeRef],
    groups: &[GroupRef],
    inherited_policy: Option<&str>,
    aliases: &mut HashMap<String, String>,
    depth: usize,
) -> Res<BTreeSet<String>> {
    if depth > MAX_NESTING {
        return ctx.fail(
            format!("{prefix}.groups"),
            format!("groups nest deeper than {MAX_NESTING} levels"),
        );
    }
    let mut children = BTreeSet::new();
    for (i, c) in cartridges.iter().enumerate() {
        let p = format!("{prefix}.cartridges[{i}]");
        check_id(ctx, &format!("{p}.type"), &c.cartridge_type, false)?;
        // cartridgeMax may be large (Stratos's samples use 10000000): the
        // partitions' partitionMax bound what is ever placed. The minimum is
        // placed at once, so it is bounded.
        if c.cartridge_min > MAX_MEMBERS {
            return ctx.fail(
                format!("{p}.cartridgeMin"),
                format!("is {}, above the limit of {MAX_MEMBERS}", c.cartridge_min),
            );
        }
        if c.cartridge_min < 1 {
            return ctx.fail(
                format!("{p}.cartridgeMin"),
                format!("is {}, must be at least 1", c.cartridge_min),
            );
        }
        if c.cartridge_max < c.cartridge_min {
            return ctx.fail(
                format!("{p}.cartridgeMax"),
                format!(
                    "is {}, below cartridgeMin {}",
                    c.cartridge_max, c.cartridge_min
                ),
            );
        }
        let s = &c.subscribable_info;
        let ap = format!("{p}.subscribableInfo.alias");
        check_alias(ctx, &ap, &s.alias)?;
        claim_alias(ctx, aliases, &s.alias, ap)?;
        match s.autoscaling_policy.as_deref() {
            Some(id) => check_id(
                ctx,
                &format!("{p}.subscribableInfo.autoscalingPolicy"),
                id,
                true,
            )?,
            None => {
                return ctx.fail(
                    format!("{p}.subscribableInfo.autoscalingPolicy"),
                    "is missing",
                )
            }
        }
        match (s.deployment_policy.as_deref(), inherited_policy) {
            (Some(id), _) => check_id(
                ctx,
                &format!("{p}.subscribableInfo.deploymentPolicy"),
                id,
                true,
            )?,
            (None, Some(_)) => {}
            (None, None) => {
                return ctx.fail(
                    format!("{p}.subscribableInfo.deploymentPolicy"),
                    "is missing (give it here or on an enclosing group)",
                )
            }
        }
        check_properties(ctx, &format!("{p}.subscribableInfo.property"), &s.property)?;
        if let Some(pers) = &s.persistence {
            persistence(ctx, &format!("{p}.subscribableInfo.persistence"), pers)?;
        }
        children.insert(format!("cartridge.{}", s.alias));
    }
    for (i, g) in groups.iter().enumerate() {
        let p = format!("{prefix}.groups[{i}]");
        check_id(ctx, &format!("{p}.name"), &g.name, false)?;
        let ap = format!("{p}.alias");
        check_alias(ctx, &ap, &g.alias)?;
        claim_alias(ctx, aliases, &g.alias, ap)?;
        if g.group_min_instances > MAX_MEMBERS {
            return ctx.fail(
                format!("{p}.groupMinInstances"),
                format!(
                    "is {}, above the limit of {MAX_MEMBERS}",
                    g.group_min_instances
                ),
            );
        }
        if g.group_min_instances < 1 {
            return ctx.fail(
                format!("{p}.groupMinInstances"),
                format!("is {}, must be at least 1", g.group_min_instances),
            );
        }
        if g.group_max_instances < g.group_min_instances {
            return ctx.fail(
                format!("{p}.groupMaxInstances"),
                format!(
                    "is {}, below groupMinInstances {}",
                    g.group_max_instances, g.group_min_instances
                ),
            );
        }
        if let Some(id) = &g.deployment_policy {
            check_id(ctx, &format!("{p}.deploymentPolicy"), id, true)?;
        }
        if g.cartridges.is_empty() && g.groups.is_empty() {
            return ctx.fail(
                format!("{p}.cartridges"),
                "a group instance needs at least one cartridge or group",
            );
        }
        let policy = g.deployment_policy.as_deref().or(inherited_policy);
        components(
            ctx,
            &p,
            &g.cartridges,
            &g.groups,
            policy,
            aliases,
            depth + 1,
        )?;
        children.insert(format!("group.{}", g.alias));
    }
    Ok(children)
}

fn claim_alias(ctx: &Ctx, aliases: &mut HashMap<String, String>, alias: &str, path: String) -> Res {
    if aliases.len() >= MAX_COMPONENTS {
        return ctx.fail(
            path,
            format!("an application may have at most {MAX_COMPONENTS} components"),
        );
    }
    if let Some(first) = aliases.get(alias) {
        return ctx.fail(path, format!("alias {alias:?} is already used at {first}"));
    }
    aliases.insert(alias.to_owned(), path);
    Ok(())
}

pub(crate) fn network_partition(n: &NetworkPartition) -> Res {
    let ctx = Ctx::new(Kind::NetworkPartition, &n.id);
    check_id(&ctx, "id", &n.id, true)?;
    if n.partitions.is_empty() {
        return ctx.fail(
            "partitions",
            "a network partition needs at least one partition",
        );
    }
    for (i, p) in n.partitions.iter().enumerate() {
        check_id(&ctx, &format!("partitions[{i}].id"), &p.id, true)?;
        check_properties(&ctx, &format!("partitions[{i}].property"), &p.property)?;
    }
    check_unique(
        &ctx,
        n.partitions
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("partitions[{i}].id"), p.id.as_str())),
        "partition id",
    )?;
    check_properties(&ctx, "properties", &n.properties)
}

pub(crate) fn deployment_policy(d: &DeploymentPolicy) -> Res {
    let ctx = Ctx::new(Kind::DeploymentPolicy, &d.id);
    check_id(&ctx, "id", &d.id, true)?;
    if d.network_partitions.is_empty() {
        return ctx.fail(
            "networkPartitions",
            "a deployment policy needs at least one network partition",
        );
    }
    for (i, np) in d.network_partitions.iter().enumerate() {
        let p = format!("networkPartitions[{i}]");
        check_id(&ctx, &format!("{p}.id"), &np.id, true)?;
        if np.partitions.is_empty() {
            return ctx.fail(format!("{p}.partitions"), "needs at least one partition");
        }
        for (j, part) in np.partitions.iter().enumerate() {
            check_id(&ctx, &format!("{p}.partitions[{j}].id"), &part.id, true)?;
            if !(1..=MAX_MEMBERS).contains(&part.partition_max) {
                return ctx.fail(
                    format!("{p}.partitions[{j}].partitionMax"),
                    format!(
                        "is {}, must be between 1 and {MAX_MEMBERS}",
                        part.partition_max
                    ),
                );
            }
        }
        check_unique(
            &ctx,
            np.partitions
                .iter()
                .enumerate()
                .map(|(j, part)| (format!("{p}.partitions[{j}].id"), part.id.as_str())),
            "partition id",
        )?;
    }
    check_unique(
        &ctx,
        d.network_partitions
            .iter()
            .enumerate()
            .map(|(i, np)| (format!("networkPartitions[{i}].id"), np.id.as_str())),
        "network partition id",
    )
}

pub(crate) fn application_policy(a: &ApplicationPolicy) -> Res {
    let ctx = Ctx::new(Kind::ApplicationPolicy, &a.id);
    check_id(&ctx, "id", &a.id, true)?;
    if a.network_partitions.is_empty() {
        return ctx.fail(
            "networkPartitions",
            "an application policy needs at least one network partition",
        );
    }
    for (i, np) in a.network_partitions.iter().enumerate() {
        check_id(&ctx, &format!("networkPartitions[{i}]"), np, true)?;
    }
    check_unique(
        &ctx,
        a.network_partitions
            .iter()
            .enumerate()
            .map(|(i, np)| (format!("networkPartitions[{i}]"), np.as_str())),
        "network partition id",
    )?;
    check_properties(&ctx, "properties", &a.properties)
}

pub(crate) fn autoscale_policy(a: &AutoscalePolicy) -> Res {
    let ctx = Ctx::new(Kind::AutoscalingPolicy, &a.id);
    check_id(&ctx, "id", &a.id, true)?;
    let t = &a.load_thresholds;
    if t.requests_in_flight.is_none() && t.memory_consumption.is_none() && t.load_average.is_none()
    {
        return ctx.fail(
            "loadThresholds",
            "needs at least one of requestsInFlight, memoryConsumption, loadAverage",
        );
    }
    let checks = [
        (
            "requestsInFlight",
            t.requests_in_flight,
            f64::MAX,
            "above 0",
        ),
        // Stratos's memory rule divides by (100 - threshold).
        (
            "memoryConsumption",
            t.memory_consumption,
            100.0,
            "a percentage above 0 and below 100",
        ),
        ("loadAverage", t.load_average, f64::MAX, "above 0"),
    ];
    for (name, th, below, want) in checks {
        if let Some(th) = th {
            let v = th.threshold;
            if !(v.is_finite() && v > 0.0 && v < below) {
                return ctx.fail(
                    format!("loadThresholds.{name}.threshold"),
                    format!("is {v}, must be {want}"),
                );
            }
        }
    }
    let f = a.instance_rounding_factor;
    if !(0.0..=1.0).contains(&f) {
        return ctx.fail(
            "instanceRoundingFactor",
            format!("is {f}, must be between 0 and 1"),
        );
    }
    Ok(())
}

pub(crate) fn kubernetes_cluster(k: &KubernetesCluster) -> Res {
    let ctx = Ctx::new(Kind::KubernetesCluster, &k.cluster_id);
    check_id(&ctx, "clusterId", &k.cluster_id, true)?;
    if let Some(m) = &k.kubernetes_master {
        host(&ctx, "kubernetesMaster", m)?;
    }
    for (i, h) in k.kubernetes_hosts.iter().enumerate() {
        host(&ctx, &format!("kubernetesHosts[{i}]"), h)?;
    }
    check_unique(
        &ctx,
        k.kubernetes_master
            .iter()
            .map(|m| ("kubernetesMaster.hostId".to_owned(), m.host_id.as_str()))
            .chain(
                k.kubernetes_hosts
                    .iter()
                    .enumerate()
                    .map(|(i, h)| (format!("kubernetesHosts[{i}].hostId"), h.host_id.as_str())),
            ),
        "hostId",
    )?;
    if let Some(r) = &k.port_range {
        for (name, v) in [("lower", r.lower), ("upper", r.upper)] {
            if !(1..=65535).contains(&v) {
                return ctx.fail(
                    format!("portRange.{name}"),
                    format!("{v} is not a port (1-65535)"),
                );
            }
        }
        if r.lower > r.upper {
            return ctx.fail(
                "portRange",
                format!("lower {} is above upper {}", r.lower, r.upper),
            );
        }
    }
    check_properties(&ctx, "property", &k.property)
}

fn host(ctx: &Ctx, path: &str, h: &KubernetesHost) -> Res {
    check_id(ctx, &format!("{path}.hostId"), &h.host_id, true)?;
    for (name, v) in [
        ("privateIPAddress", &h.private_ip_address),
        ("publicIPAddress", &h.public_ip_address),
    ] {
        if let Some(v) = v {
            if v.parse::<std::net::IpAddr>().is_err() {
                return ctx.fail(
                    format!("{path}.{name}"),
                    format!("{v:?} is not an IP address"),
                );
            }
        }
    }
    check_properties(ctx, &format!("{path}.property"), &h.property)?;
    check_resources(ctx, &format!("{path}.property"), &h.property)
}

#[cfg(test)]
mod tests {
    use crate::fixtures::{self as fx, assert_fault, set};
    use crate::{parse, Kind};
    use serde_json::json;

    #[test]
    fn fixtures_are_valid() {
        for (kind, v) in fx::all() {
            fx::def(kind, &v);
        }
    }

    #[test]
    fn type_errors_carry_the_json_path() {
        let c = set(
            fx::cartridge("web", 80, 8080),
            "/portMapping/0/port",
            json!("eighty"),
        );
        assert_fault(
            Kind::Cartridge,
            &c,
            "portMapping[0].port",
            "expected an integer, found the string \"eighty\"",
        );
        let a = set(
            fx::application(),
            "/components/groups/0/cartridges/1/cartridgeMax",
            json!([1]),
        );
        assert_fault(
            Kind::Application,
            &a,
            "components.groups[0].cartridges[1].cartridgeMax",
            "invalid type: sequence",
        );
        let d = set(
            fx::deployment_policy(),
            "/networkPartitions/1/partitionAlgo",
            json!("random"),
        );
        assert_fault(
            Kind::DeploymentPolicy,
            &d,
            "networkPartitions[1].partitionAlgo",
            "unknown variant `random`",
        );
        let g = set(
            fx::group(),
            "/dependencies/terminationBehaviour",
            json!("terminate-some"),
        );
        assert_fault(
            Kind::CartridgeGroup,
            &g,
            "dependencies.terminationBehaviour",
            "unknown variant",
        );
        let p = set(
            fx::autoscaling_policy(),
            "/loadThresholds/loadAverage/threshold",
            json!("high"),
        );
        assert_fault(
            Kind::AutoscalingPolicy,
            &p,
            "loadThresholds.loadAverage.threshold",
            "expected a number",
        );
        let ap = set(
            fx::application_policy(),
            "/algorithm",
            json!("all-together"),
        );
        assert_fault(Kind::ApplicationPolicy, &ap, "algorithm", "unknown variant");
        // The id is named even when the document does not decode.
        let err = parse(Kind::Cartridge, c.to_string().as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cartridge \"web\": portMapping[0].port: "),
            "{err}"
        );
    }

    #[test]
    fn malformed_json_is_refused() {
        let err = parse(Kind::Cartridge, b"{\"type\": \"x\",}").unwrap_err();
        assert!(
            err.to_string().contains("not valid JSON: trailing comma"),
            "{err}"
        );
        let err = parse(Kind::Cartridge, b"").unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        // Deep nesting stops at serde_json's recursion limit, not the stack.
        let deep = "[".repeat(100_000);
        assert!(parse(Kind::Application, deep.as_bytes()).is_err());
    }

    #[test]
    fn stratos_forms_are_accepted_and_unknown_fields_ignored() {
        let c = json!({
            "type": "php", "multiTenant": "true", "version": 7, "futureField": {"x": 1},
            "portMapping": {"protocol": "http", "port": "80", "proxyPort": "8280"},
            "iaasProvider": [{"type": "kubernetes", "imageId": "php:8", "networkInterfaces": []}],
            "persistence": {"isRequired": "false", "volume": []}
        });
        let crate::Definition::Cartridge(c) =
            parse(Kind::Cartridge, c.to_string().as_bytes()).unwrap()
        else {
            panic!()
        };
        assert!(c.multi_tenant);
        assert_eq!(c.version.as_deref(), Some("7"));
        assert_eq!(
            (c.port_mapping.len(), c.port_mapping[0].proxy_port),
            (1, 8280)
        );
        // The 4.0 comma-separated startup order form.
        let g = set(
            fx::group(),
            "/dependencies/startupOrders",
            json!(["cartridge.d,group.i", "group.i, cartridge.w"]),
        );
        let crate::Definition::CartridgeGroup(g) = fx::def(Kind::CartridgeGroup, &g) else {
            panic!()
        };
        let orders = &g.dependencies.unwrap().startup_orders;
        assert_eq!(orders[1].aliases, ["group.i", "cartridge.w"]);
    }

    #[test]
    fn cartridge_faults() {
        let c = || fx::cartridge("web", 80, 8080);
        let k = Kind::Cartridge;
        assert_fault(
            k,
            &set(c(), "/type", json!("")),
            "type",
            "is missing or empty",
        );
        assert_fault(
            k,
            &set(c(), "/type", json!("we b")),
            "type",
            "is not a valid id",
        );
        assert_fault(
            k,
            &set(c(), "/type", json!("a.b")),
            "type",
            "is not a valid id",
        );
        assert_fault(
            k,
            &set(c(), "/portMapping/0/protocol", json!("ftp")),
            "portMapping[0].protocol",
            "not a supported protocol",
        );
        assert_fault(
            k,
            &set(c(), "/portMapping/0/port", json!(0)),
            "portMapping[0].port",
            "0 is not a port",
        );
        assert_fault(
            k,
            &set(c(), "/portMapping/0/port", json!(70000)),
            "portMapping[0].port",
            "70000 is not a port",
        );
        assert_fault(
            k,
            &set(c(), "/portMapping/0/proxyPort", json!(-1)),
            "portMapping[0].proxyPort",
            "-1 is not a port",
        );
        let two =
            |a: serde_json::Value, b: serde_json::Value| set(c(), "/portMapping", json!([a, b]));
        assert_fault(
            k,
            &two(
                json!({"protocol": "http", "port": 80, "proxyPort": 1}),
                json!({"protocol": "tcp", "port": 80, "proxyPort": 2}),
            ),
            "portMapping[1].port",
            "port \"80/tcp\" is already used at portMapping[0].port",
        );
        // tcp and udp on the same number are two ports.
        fx::def(
            k,
            &two(
                json!({"protocol": "tcp", "port": 53}),
                json!({"protocol": "udp", "port": 53}),
            ),
        );
        assert_fault(
            k,
            &two(
                json!({"protocol": "http", "port": 80, "proxyPort": 9}),
                json!({"protocol": "http", "port": 81, "proxyPort": 9}),
            ),
            "portMapping[1].proxyPort",
            "already used at portMapping[0].proxyPort",
        );
        assert_fault(
            k,
            &set(c(), "/iaasProvider", json!([])),
            "iaasProvider",
            "at least one iaasProvider",
        );
        assert_fault(
            k,
            &set(c(), "/iaasProvider/0/type", json!(" ")),
            "iaasProvider[0].type",
            "is missing or empty",
        );
        assert_fault(
            k,
            &set(c(), "/iaasProvider/0/imageId", json!("")),
            "iaasProvider[0].imageId",
            "is missing or empty",
        );
        let dup = set(
            c(),
            "/iaasProvider",
            json!([{"type": "a", "imageId": "x"}, {"type": "a", "imageId": "y"}]),
        );
        assert_fault(k, &dup, "iaasProvider[1].type", "already used");
        assert_fault(
            k,
            &set(c(), "/property/0/name", json!("")),
            "property[0].name",
            "is missing or empty",
        );
        assert_fault(
            k,
            &set(c(), "/property/0/value", json!("fast")),
            "property[0].value",
            "not a cpu amount",
        );
        assert_fault(
            k,
            &set(c(), "/property/1/value", json!("big")),
            "property[1].value",
            "not a memory amount",
        );
        assert_fault(
            k,
            &set(c(), "/metadataKeys", json!(["a", ""])),
            "metadataKeys[1]",
            "is empty",
        );
        let pers = |p: serde_json::Value| set(c(), "/persistence", p);
        assert_fault(
            k,
            &pers(json!({"isRequired": true})),
            "persistence.volume",
            "no volume is given",
        );
        assert_fault(
            k,
            &pers(json!({"isRequired": true, "volume": [{"size": "0"}]})),
            "persistence.volume[0].size",
            "not a size",
        );
        assert_fault(
            k,
            &pers(json!({"volume": [{"mappingPath": "data"}]})),
            "persistence.volume[0].mappingPath",
            "absolute path",
        );
        assert_fault(
            k,
            &pers(json!({"volume": [{"mappingPath": "/a/../../etc"}]})),
            "persistence.volume[0].mappingPath",
            "without '..'",
        );
    }

    #[test]
    fn group_faults() {
        let g = fx::group;
        let k = Kind::CartridgeGroup;
        assert_fault(
            k,
            &set(g(), "/name", json!("")),
            "name",
            "is missing or empty",
        );
        assert_fault(
            k,
            &set(g(), "/groups/0/name", json!("stack")),
            "groups[0].name",
            "nests itself (stack -> stack)",
        );
        let mut deep = json!({"name": "g0", "cartridges": ["c"]});
        for i in 1..20 {
            deep = json!({"name": format!("g{i}"), "groups": [deep]});
        }
        assert_eq!(fx::fault(k, &deep).1, "groups nest deeper than 16 levels");
        assert_fault(
            k,
            &json!({"name": "e"}),
            "cartridges",
            "at least one cartridge or nested group",
        );
        assert_fault(
            k,
            &set(g(), "/cartridges/1", json!("w b")),
            "cartridges[1]",
            "is not a valid id",
        );
        assert_fault(
            k,
            &set(g(), "/cartridges/1", json!("db")),
            "cartridges[1]",
            "cartridge type \"db\" is already used at cartridges[0]",
        );
        let dup = set(
            g(),
            "/groups",
            json!([{"name": "x", "cartridges": ["a"]}, {"name": "x", "cartridges": ["b"]}]),
        );
        assert_fault(
            k,
            &dup,
            "groups[1].name",
            "group name \"x\" is already used",
        );
        let order =
            |a: serde_json::Value| set(g(), "/dependencies/startupOrders", json!([{"aliases": a}]));
        assert_fault(
            k,
            &order(json!(["d", "cartridge.w"])),
            "dependencies.startupOrders[0].aliases[0]",
            "must be \"cartridge.ALIAS\" or \"group.ALIAS\"",
        );
        assert_fault(
            k,
            &order(json!(["cartridge.My_Db"])),
            "dependencies.startupOrders[0].aliases[0]",
            "is not a valid alias",
        );
        assert_fault(
            k,
            &order(json!([])),
            "dependencies.startupOrders[0].aliases",
            "is empty",
        );
        assert_fault(
            k,
            &order(json!(["cartridge.a", "cartridge.a"])),
            "dependencies.startupOrders[0].aliases[1]",
            "already used",
        );
        let cyc = set(
            g(),
            "/dependencies/startupOrders",
            json!([{"aliases": ["cartridge.a", "cartridge.b"]}, {"aliases": ["cartridge.b", "group.c", "cartridge.a"]}]),
        );
        assert_fault(
            k,
            &cyc,
            "dependencies.startupOrders",
            "startup orders form a cycle: cartridge.a -> cartridge.b -> group.c -> cartridge.a",
        );
        // A long chain closing on itself: found without deep recursion.
        let chain: Vec<String> = (0..999)
            .map(|i| format!("cartridge.c{i}"))
            .chain(["cartridge.c0".to_owned()])
            .collect();
        let (path, msg) = fx::fault(
            k,
            &set(
                g(),
                "/dependencies/startupOrders",
                json!([{"aliases": chain}]),
            ),
        );
        assert_eq!(path, "dependencies.startupOrders[0].aliases[999]");
        assert!(msg.contains("already used"), "{msg}");
        let mut lists: Vec<serde_json::Value> = (0..5000)
            .map(|i| json!({"aliases": [format!("cartridge.c{i}"), format!("cartridge.c{}", i + 1)]}))
            .collect();
        lists.push(json!({"aliases": ["cartridge.c5000", "cartridge.c0"]}));
        let (path, msg) = fx::fault(k, &set(g(), "/dependencies/startupOrders", json!(lists)));
        assert_eq!(path, "dependencies.startupOrders");
        assert!(
            msg.starts_with("startup orders form a cycle: cartridge.c0 -> cartridge.c1 -> "),
            "{}",
            &msg[..80]
        );
        assert!(msg.ends_with("cartridge.c5000 -> cartridge.c0"));
        let too_many: Vec<String> = (0..1001).map(|i| format!("cartridge.c{i}")).collect();
        let (path, msg) = fx::fault(
            k,
            &set(
                g(),
                "/dependencies/startupOrders",
                json!([{"aliases": too_many}]),
            ),
        );
        assert_eq!(
            (path.as_str(), msg.as_str()),
            (
                "dependencies.startupOrders[0].aliases",
                "names more than 1000 aliases"
            )
        );
        let sd = set(
            g(),
            "/dependencies/scalingDependents",
            json!([{"aliases": ["cartridge.d", "nope"]}]),
        );
        assert_fault(
            k,
            &sd,
            "dependencies.scalingDependents[0].aliases[1]",
            "must be \"cartridge.ALIAS\"",
        );
    }

    #[test]
    fn application_faults() {
        let a = fx::application;
        let k = Kind::Application;
        let c0 = "/components/cartridges/0";
        let p0 = "components.cartridges[0]";
        assert_fault(
            k,
            &set(a(), "/applicationId", json!("")),
            "applicationId",
            "is missing or empty",
        );
        assert_fault(
            k,
            &set(a(), "/applicationId", json!("my.app")),
            "applicationId",
            "is not a valid id",
        );
        assert_fault(k, &set(a(), "/alias", json!(" ")), "alias", "is empty");
        assert_fault(
            k,
            &set(a(), "/components", json!({})),
            "components",
            "at least one cartridge or group",
        );
        assert_fault(
            k,
            &set(a(), &format!("{c0}/cartridgeMin"), json!(0)),
            &format!("{p0}.cartridgeMin"),
            "is 0, must be at least 1",
        );
        assert_fault(
            k,
            &set(a(), &format!("{c0}/cartridgeMax"), json!("0")),
            &format!("{p0}.cartridgeMax"),
            "is 0, below cartridgeMin 1",
        );
        let gc1 = "/components/groups/0/cartridges/1";
        assert_fault(
            k,
            &set(a(), &format!("{gc1}/cartridgeMax"), json!(0)),
            "components.groups[0].cartridges[1].cartridgeMax",
            "below cartridgeMin",
        );
        assert_fault(
            k,
            &set(a(), &format!("{c0}/type"), json!("")),
            &format!("{p0}.type"),
            "is missing or empty",
        );
        assert_fault(
            k,
            &set(a(), &format!("{c0}/subscribableInfo/alias"), json!("Front")),
            &format!("{p0}.subscribableInfo.alias"),
            "not a valid alias",
        );
        assert_fault(
            k,
            &set(a(), &format!("{c0}/subscribableInfo/alias"), json!("")),
            &format!("{p0}.subscribableInfo.alias"),
            "is missing or empty",
        );
        assert_fault(
            k,
            &set(a(), &format!("{c0}/subscribableInfo/alias"), json!("w2")),
            "components.groups[0].groups[0].cartridges[0].subscribableInfo.alias",
            "alias \"w2\" is already used at components.cartridges[0].subscribableInfo.alias",
        );
        assert_fault(
            k,
            &set(a(), &format!("{c0}/subscribableInfo/alias"), json!("s")),
            "components.groups[0].alias",
            "alias \"s\" is already used at components.cartridges[0].subscribableInfo.alias",
        );
        assert_fault(
            k,
            &set(
                a(),
                &format!("{c0}/subscribableInfo"),
                json!({"alias": "x", "deploymentPolicy": "dp1"}),
            ),
            &format!("{p0}.subscribableInfo.autoscalingPolicy"),
            "is missing",
        );
        assert_fault(
            k,
            &set(
                a(),
                &format!("{c0}/subscribableInfo"),
                json!({"alias": "x", "autoscalingPolicy": "asp1"}),
            ),
            &format!("{p0}.subscribableInfo.deploymentPolicy"),
            "give it here or on an enclosing group",
        );
        let c0min = set(a(), "/components/cartridges/0/cartridgeMin", json!(10_001));
        assert_fault(
            k,
            &c0min,
            "components.cartridges[0].cartridgeMin",
            "is 10001, above the limit of 10000",
        );
        // A large cartridgeMax is fine: partitionMax bounds what is placed.
        fx::def(
            k,
            &set(
                a(),
                "/components/cartridges/0/cartridgeMax",
                json!(10_000_000),
            ),
        );
        let gmin = set(
            a(),
            "/components/groups/0/groupMinInstances",
            json!(1_000_000),
        );
        assert_fault(
            k,
            &gmin,
            "components.groups[0].groupMinInstances",
            "above the limit",
        );
        assert_fault(
            k,
            &set(a(), "/components/groups/0/groupMinInstances", json!(0)),
            "components.groups[0].groupMinInstances",
            "at least 1",
        );
        assert_fault(
            k,
            &set(a(), "/components/groups/0/groupMaxInstances", json!(0)),
            "components.groups[0].groupMaxInstances",
            "below groupMinInstances 1",
        );
        assert_fault(
            k,
            &set(a(), "/components/groups/0/alias", json!("S")),
            "components.groups[0].alias",
            "not a valid alias",
        );
        assert_fault(
            k,
            &set(a(), "/components/groups/0/name", json!("")),
            "components.groups[0].name",
            "is missing or empty",
        );
        assert_fault(
            k,
            &set(a(), "/components/groups/0/groups/0/cartridges", json!([])),
            "components.groups[0].groups[0].cartridges",
            "at least one cartridge or group",
        );
        assert_fault(
            k,
            &set(
                a(),
                "/components/dependencies/startupOrders/0/aliases/0",
                json!("group.i"),
            ),
            "components.dependencies.startupOrders[0].aliases[0]",
            "\"group.i\" is not a component here (components: cartridge.front, group.s)",
        );
        assert_fault(
            k,
            &set(
                a(),
                "/components/dependencies/startupOrders",
                json!([{"aliases": ["group.s", "cartridge.front"]}, {"aliases": ["cartridge.front", "group.s"]}]),
            ),
            "components.dependencies.startupOrders",
            "cycle: cartridge.front -> group.s -> cartridge.front",
        );
        assert_fault(
            k,
            &set(
                a(),
                "/components/dependencies/scalingDependents",
                json!([{"aliases": ["cartridge.front", "cartridge.ghost"]}]),
            ),
            "components.dependencies.scalingDependents[0].aliases[1]",
            "is not a component here",
        );
        let many: Vec<serde_json::Value> = (0..1001)
            .map(|i| json!({"type": "web", "subscribableInfo": {"alias": format!("c{i}"), "autoscalingPolicy": "a", "deploymentPolicy": "d"}}))
            .collect();
        assert_fault(
            k,
            &set(a(), "/components/cartridges", json!(many)),
            "components.cartridges[1000].subscribableInfo.alias",
            "at most 1000 components",
        );
        // A group's deploymentPolicy covers the cartridges inside it.
        fx::def(k, &a());
    }

    #[test]
    fn partition_and_policy_faults() {
        let k = Kind::NetworkPartition;
        let np = || fx::network_partition("np1", &["p1", "p2"]);
        assert_fault(k, &set(np(), "/id", json!("")), "id", "is missing or empty");
        assert_fault(
            k,
            &set(np(), "/partitions", json!([])),
            "partitions",
            "at least one partition",
        );
        assert_fault(
            k,
            &set(np(), "/partitions/1/id", json!("p1")),
            "partitions[1].id",
            "partition id \"p1\" is already used",
        );
        assert_fault(
            k,
            &set(np(), "/partitions/0/id", json!("-p")),
            "partitions[0].id",
            "not a valid id",
        );
        assert_fault(
            k,
            &set(np(), "/partitions/0/property/0/name", json!("")),
            "partitions[0].property[0].name",
            "is missing or empty",
        );

        let k = Kind::DeploymentPolicy;
        let dp = fx::deployment_policy;
        assert_fault(k, &set(dp(), "/id", json!("")), "id", "is missing or empty");
        assert_fault(
            k,
            &set(dp(), "/networkPartitions", json!([])),
            "networkPartitions",
            "at least one network partition",
        );
        assert_fault(
            k,
            &set(dp(), "/networkPartitions/0/partitions", json!([])),
            "networkPartitions[0].partitions",
            "at least one partition",
        );
        assert_fault(
            k,
            &set(
                dp(),
                "/networkPartitions/0/partitions/1/partitionMax",
                json!(0),
            ),
            "networkPartitions[0].partitions[1].partitionMax",
            "is 0, must be between 1 and 10000",
        );
        let huge = set(
            dp(),
            "/networkPartitions/0/partitions/1/partitionMax",
            json!(4_000_000_000u64),
        );
        assert_fault(
            k,
            &huge,
            "networkPartitions[0].partitions[1].partitionMax",
            "is 4000000000, must be between",
        );
        assert_fault(
            k,
            &set(dp(), "/networkPartitions/0/partitions/1/id", json!("p1")),
            "networkPartitions[0].partitions[1].id",
            "already used",
        );
        assert_fault(
            k,
            &set(dp(), "/networkPartitions/1/id", json!("np1")),
            "networkPartitions[1].id",
            "network partition id \"np1\" is already used",
        );

        let k = Kind::ApplicationPolicy;
        let ap = fx::application_policy;
        assert_fault(k, &set(ap(), "/id", json!("a b")), "id", "not a valid id");
        assert_fault(
            k,
            &set(ap(), "/networkPartitions", json!([])),
            "networkPartitions",
            "at least one network partition",
        );
        assert_fault(
            k,
            &set(ap(), "/networkPartitions", json!(["np1", "np1"])),
            "networkPartitions[1]",
            "already used",
        );
        assert_fault(
            k,
            &set(ap(), "/networkPartitions", json!(["np1", ""])),
            "networkPartitions[1]",
            "is missing or empty",
        );

        let k = Kind::AutoscalingPolicy;
        let asp = fx::autoscaling_policy;
        assert_fault(
            k,
            &set(asp(), "/id", json!("")),
            "id",
            "is missing or empty",
        );
        assert_fault(
            k,
            &set(asp(), "/loadThresholds", json!({})),
            "loadThresholds",
            "at least one of",
        );
        assert_fault(
            k,
            &set(
                asp(),
                "/loadThresholds/requestsInFlight/threshold",
                json!(0),
            ),
            "loadThresholds.requestsInFlight.threshold",
            "is 0, must be above 0",
        );
        assert_fault(
            k,
            &set(
                asp(),
                "/loadThresholds/memoryConsumption/threshold",
                json!(100),
            ),
            "loadThresholds.memoryConsumption.threshold",
            "below 100",
        );
        assert_fault(
            k,
            &set(asp(), "/loadThresholds/loadAverage/threshold", json!(-5)),
            "loadThresholds.loadAverage.threshold",
            "must be above 0",
        );
        assert_fault(
            k,
            &set(asp(), "/instanceRoundingFactor", json!(1.5)),
            "instanceRoundingFactor",
            "between 0 and 1",
        );
    }

    #[test]
    fn kubernetes_cluster_faults() {
        let k = Kind::KubernetesCluster;
        let kc = fx::kubernetes_cluster;
        assert_fault(
            k,
            &set(kc(), "/clusterId", json!("")),
            "clusterId",
            "is missing or empty",
        );
        assert_fault(
            k,
            &set(kc(), "/kubernetesHosts/1/hostId", json!("h1")),
            "kubernetesHosts[1].hostId",
            "hostId \"h1\" is already used at kubernetesHosts[0].hostId",
        );
        assert_fault(
            k,
            &set(kc(), "/kubernetesHosts/1/hostId", json!("m")),
            "kubernetesHosts[1].hostId",
            "already used at kubernetesMaster.hostId",
        );
        assert_fault(
            k,
            &set(kc(), "/kubernetesHosts/0/privateIPAddress", json!("10.0.0")),
            "kubernetesHosts[0].privateIPAddress",
            "not an IP address",
        );
        assert_fault(
            k,
            &set(kc(), "/kubernetesMaster/hostId", json!("")),
            "kubernetesMaster.hostId",
            "is missing or empty",
        );
        assert_fault(
            k,
            &set(kc(), "/kubernetesHosts/0/property/0/value", json!("many")),
            "kubernetesHosts[0].property[0].value",
            "not a cpu amount",
        );
        assert_fault(
            k,
            &set(kc(), "/portRange/upper", json!(70000)),
            "portRange.upper",
            "not a port",
        );
        assert_fault(
            k,
            &set(kc(), "/portRange", json!({"lower": 9, "upper": 8})),
            "portRange",
            "lower 9 is above upper 8",
        );
    }
}
