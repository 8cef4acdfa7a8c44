//! The controller: a reconcile loop (in the manner of kube-rs controllers)
//! that makes the engine's containers and the load balancer's pools match
//! the deployed applications in the store, and the autoscaler that changes
//! how many members each cluster wants.
//!
//! Every tick (one second by default, sooner when the API changes
//! something) [`Controller::reconcile_once`]:
//! 1. lists the engine's member containers (by label) and compares them
//!    with the member records: a member whose container exited or vanished
//!    is terminated (and its record removed); a container no record claims
//!    is removed;
//! 2. moves members along their lifecycle: `Initialized → Starting` once
//!    the container runs, `Starting → Active` once its first port answers;
//!    an Active member joins its cluster's load-balancer pools;
//! 3. for each cluster whose startup-order predecessors have their minimum
//!    of Active members, feeds the autoscaler (requests in flight from the
//!    pools, memory and a load figure per member from the engine's cgroup
//!    stats) and acts on its decision: new members are created at the
//!    placements it gives (below `cartridgeMin` this is how a failed member
//!    is replaced), a removed member is drained from the pools first;
//! 4. for an application being undeployed, terminates the clusters stage by
//!    stage in the reverse startup order (draining each member), then closes
//!    its listeners and forgets the deployment.
//!
//! Cartridge groups (Stratos's group monitor): a group has
//! `groupMinInstances` instances (`ALIAS-N`, nested ones `OUTER-N/INNER-M`),
//! and each of its clusters one instance per group instance, with its own
//! autoscaler; the cluster's listeners and pools are shared by all of them.
//! The instance id is on the member record, the container label
//! `strato.paas.instance` and `INSTANCE_ID`. After the clusters' rules,
//! each group (innermost first) hears whether a cluster instance was over
//! its maximum (then, with `groupScalingEnabled`, a new group instance up
//! to `groupMaxInstances`, one at a time; else the notice goes to the
//! parent group) or whether every cluster of its newest instance would go
//! below its minimum (then that instance goes, after the consecutive
//! decisions and the cooldown). A group inside a group has instances in
//! each instance of its parent, and its notices go to that instance; a
//! group gives an instance up only once the groups inside it are at
//! their minimum. Startup orders and scaling dependents hold between
//! instances in the same instance of the group (or application instance)
//! that declares them. A restart rebuilds the instances from the records
//! of running members.
//!
//! Application instances and bursting (Stratos 4.1's application
//! monitor): an application has an instance per network partition it
//! uses: `""` in the application policy's first one (`one-after-another`;
//! every one for `all-at-once`) and `@NP` in each other, and every cluster
//! instance is confined to its application instance's network partition.
//! A notice over the maximum that reaches the application (from a
//! top-level cluster instance, or a group that cannot grow) adds an
//! application instance in the next network partition of the policy:
//! its top-level groups at their minimum (`@NP/ALIAS-N`) and its
//! top-level clusters (`@NP`) at theirs, all behind the same listeners.
//! Once every cluster instance in the burst instance would go below its
//! minimum, it goes again after the deferrals and the cooldown.
//!
//! State that must survive a restart (definitions, deployments, member
//! records) is in the store; on start the controller adopts the running
//! containers its records name and the next tick replaces missing ones.
//!
//! Large deployments: the state lock is never held across an engine call,
//! a probe or an fsync, so the API answers at any time. A scaling
//! decision records all its new members in one durable commit (the record
//! comes before the container); later member changes are deferred and
//! made durable once per tick. Members are then launched through
//! [`Config::engine_parallel`] engine slots, first come first served, and
//! each is watched from its start until its port answers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use strato_lb::{Algorithm, Pool, Protocol};
use strato_paas_model::capacity::{self, Capacity, HostPool};
use strato_paas_model::plan::{self, ClusterPlan, GroupPlan, Placement, Plan};
use strato_paas_model::scaling::{
    self, Action, Evaluation, GroupAction, GroupScaling, Sample, ScalingConfig, ScalingState,
};
use strato_paas_model::{
    AutoscalePolicy, Catalog, Change, Definition, Kind, KubernetesHost, ModelError,
};
use strato_paas_store::{DeploymentStatus, MemberRecord, MemberStatus, Store, StoreError};
use tokio::sync::{broadcast, Notify, Semaphore};
use tokio::time::Instant;

use crate::engine::{
    ContainerInfo, CreateSpec, Engine, LABEL_APPLICATION, LABEL_CLUSTER, LABEL_INSTANCE,
    LABEL_MEMBER, LABEL_PARTITION,
};
use crate::events::{now_ms, Event, EventKind};
use crate::hosts::{HostProvider, HostRequest, LocalMachine};

/// Tuning of the controller.
#[derive(Debug, Clone)]
pub struct Config {
    /// Period of the reconcile and autoscaling loop.
    pub tick: Duration,
    /// The autoscaler's tuning.
    pub scaling: ScalingConfig,
    /// Added to every proxyPort (tests shift the listeners to free ports).
    pub port_offset: i32,
    /// Address the load balancer listens on.
    pub lb_addr: IpAddr,
    /// How long a leaving member may finish its requests.
    pub drain_timeout: Duration,
    /// How long a member may take from start to Active before it is replaced.
    pub start_timeout: Duration,
    /// Engine calls in flight at once: member creates and starts (a
    /// create and the start after it hold one slot), and per tick the
    /// statistics reads. More only adds contention in the engine.
    pub engine_parallel: usize,
    /// Level 2: how long after a host provider had no host (or failed)
    /// the controller asks it again.
    pub host_retry: Duration,
    /// Threads the load balancers' listeners are served on (the daemon
    /// starts them as `strato lb` runs: one single-threaded runtime per
    /// CPU under SCHED_BATCH); `None` serves them on the controller's own
    /// runtime.
    pub lb_threads: Option<Arc<strato_lb::Threads>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tick: Duration::from_secs(1),
            scaling: ScalingConfig::default(),
            port_offset: 0,
            lb_addr: IpAddr::from([0, 0, 0, 0]),
            drain_timeout: Duration::from_secs(30),
            start_timeout: Duration::from_secs(120),
            engine_parallel: 8,
            host_retry: Duration::from_secs(30),
            lb_threads: None,
        }
    }
}

/// Why a controller operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Deploy could not open a load-balancer listener.
    #[error("{0}")]
    Listen(String),
    /// The application is not deployed (undeploy, runtime).
    #[error("application {0:?} is not deployed")]
    NotDeployed(String),
}

/// One listener of a cluster.
struct Listener {
    proxy_port: u16,
    member_port: u16,
    protocol: Protocol,
    pool: Arc<Pool>,
    serving: strato_lb::Serving,
}

/// One instance of a cluster: its members in one group instance, with
/// their own autoscaler (Stratos's cluster instance).
struct InstanceRt {
    scaling: ScalingState,
    last_eval: Option<Evaluation>,
}

struct ClusterRt {
    plan: ClusterPlan,
    policy: AutoscalePolicy,
    /// By group instance id (`""` outside groups). The listeners are the
    /// cluster's: every instance's Active members are in its pools.
    instances: BTreeMap<String, InstanceRt>,
    listeners: Vec<Listener>,
    /// Members that failed to start in a row, and no new member before
    /// this time (ms): a missing image must not become a create loop.
    failures: u32,
    backoff_until: Option<tokio::time::Instant>,
}

/// One instance of a cartridge group.
#[derive(Debug, Clone)]
struct GroupInst {
    /// `ALIAS-N`, or `PARENT/ALIAS-N` in an instance of the parent group.
    id: String,
    group: String,
    /// The enclosing group instance (`""` at the top).
    parent: String,
}

struct AppRt {
    plan: Plan,
    clusters: BTreeMap<String, ClusterRt>,
    /// Application instances, one per network partition in use (Stratos
    /// 4.1): `""` in the application policy's first network partition,
    /// `@NP` in each other one, in the order they were added. The first
    /// `plan.default_network_partitions` are never removed; the others
    /// come from bursting.
    app_insts: Vec<String>,
    /// The application monitor: bursting into the next network partition
    /// and giving a burst one up again.
    app_scaling: GroupScaling,
    app_last: Option<GroupAction>,
    /// Group instances, oldest first.
    group_insts: Vec<GroupInst>,
    /// The group monitor per (group alias, parent instance).
    group_scaling: BTreeMap<(String, String), GroupScaling>,
    /// The last group decision per (group alias, parent instance).
    group_last: BTreeMap<(String, String), GroupAction>,
    /// Factors the monitors of groups in scaling sets asked for, by
    /// (group alias, parent instance); the sets act on them next tick.
    group_factors: BTreeMap<(String, String), f64>,
    /// Next instance number per group alias (numbers are not reused).
    next_instance: BTreeMap<String, u32>,
    config: ScalingConfig,
}

/// Whether cluster-instance key `key` lies in group (or application)
/// instance `inst`. Every key lies in the first application instance
/// `""` except those of burst ones (`@NP…`).
fn within(key: &str, inst: &str) -> bool {
    if inst.is_empty() {
        return !key.starts_with('@');
    }
    key == inst
        || key
            .strip_prefix(inst)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The application instance a key lies in: `@NP` or `""`.
fn app_instance_of(key: &str) -> &str {
    if key.starts_with('@') {
        key.split('/').next().unwrap_or(key)
    } else {
        ""
    }
}

/// The group-instance steps of a key, below its application instance.
fn group_steps(key: &str) -> Vec<&str> {
    let app = app_instance_of(key);
    let rest = key[app.len()..].trim_start_matches('/');
    if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    }
}

/// The instance, `depth` group levels down, that key `k` lies in: its
/// application instance and the first `depth` steps of its path (the
/// instance of the group at that depth, or the application instance).
fn scope_of(k: &str, depth: usize) -> String {
    let app = app_instance_of(k);
    let mut parts: Vec<&str> = Vec::new();
    if !app.is_empty() {
        parts.push(app);
    }
    parts.extend(group_steps(k).into_iter().take(depth));
    parts.join("/")
}

/// Whether instance `k` of a cluster under groups `k_groups` and
/// instance `w` of a cluster under `w_groups` are in the same instance
/// of their innermost common enclosing group (or of the application):
/// a startup order or a dependency between the two clusters holds
/// between such instances.
fn related(k: &str, k_groups: &[String], w: &str, w_groups: &[String]) -> bool {
    if app_instance_of(k) != app_instance_of(w) {
        return false;
    }
    let common = k_groups
        .iter()
        .zip(w_groups)
        .take_while(|(a, b)| a == b)
        .count();
    let (ks, ws) = (group_steps(k), group_steps(w));
    ks.len() >= common && ws.len() >= common && ks[..common] == ws[..common]
}

impl AppRt {
    /// An application with no instances yet ([`AppRt::ensure_instances`]
    /// makes them).
    fn new(plan: Plan, clusters: BTreeMap<String, ClusterRt>, config: ScalingConfig) -> AppRt {
        AppRt {
            plan,
            clusters,
            app_insts: Vec::new(),
            app_scaling: GroupScaling::new(config),
            app_last: None,
            group_insts: Vec::new(),
            group_scaling: BTreeMap::new(),
            group_last: BTreeMap::new(),
            group_factors: BTreeMap::new(),
            next_instance: BTreeMap::new(),
            config,
        }
    }

    fn group(&self, alias: &str) -> Option<&GroupPlan> {
        self.plan.groups.iter().find(|g| g.alias == alias)
    }

    fn depth(&self, g: &GroupPlan) -> usize {
        let mut d = 0;
        let mut p = g.parent.clone();
        while let Some(a) = p {
            d += 1;
            p = self.group(&a).and_then(|g| g.parent.clone());
            if d > 64 {
                break;
            }
        }
        d
    }

    /// Groups, outermost first.
    fn groups_outer_first(&self) -> Vec<GroupPlan> {
        let mut gs = self.plan.groups.clone();
        gs.sort_by_key(|g| self.depth(g));
        gs
    }

    /// The network partition of an instance key (its application
    /// instance's).
    fn network_partition_of<'a>(&'a self, key: &'a str) -> &'a str {
        match app_instance_of(key).strip_prefix('@') {
            Some(np) => np,
            None => self
                .plan
                .network_partitions
                .first()
                .map_or("", String::as_str),
        }
    }

    /// The id of the application instance in network partition `np`.
    fn app_instance_id(&self, np: &str) -> String {
        if self.plan.network_partitions.first().map(String::as_str) == Some(np) {
            String::new()
        } else {
            format!("@{np}")
        }
    }

    /// Network partitions the application may use, in the policy's order:
    /// those at least one of its clusters can run in.
    fn usable_network_partitions(&self) -> Vec<String> {
        self.plan
            .network_partitions
            .iter()
            .filter(|np| {
                self.clusters
                    .values()
                    .any(|c| c.plan.network_partitions.iter().any(|n| &n.id == *np))
            })
            .cloned()
            .collect()
    }

    /// Whether every group inside instance `inst` (or the application
    /// instance) is at its `groupMinInstances` in each of its parent
    /// instances there: a group that can still give an instance up does
    /// so itself before its parent goes (Stratos's group monitor does not
    /// pass the notice up then).
    fn groups_at_min_within(&self, inst: &str) -> bool {
        let mut sets: BTreeMap<(&str, &str), u32> = BTreeMap::new();
        for i in &self.group_insts {
            if within(&i.parent, inst) {
                *sets
                    .entry((i.group.as_str(), i.parent.as_str()))
                    .or_default() += 1;
            }
        }
        sets.iter()
            .all(|((g, _), n)| self.group(g).is_none_or(|g| *n <= g.min_instances.max(1)))
    }

    /// Whether every cluster instance in instance `inst` (group or
    /// application) was evaluated and would go below its minimum, and
    /// every group in it is at its minimum: then `inst` may go.
    fn all_below_min_within(&self, inst: &str, below: &BTreeMap<(String, String), bool>) -> bool {
        let mut keys = self.clusters.values().flat_map(|c| {
            c.instances
                .keys()
                .filter(|k| within(k, inst))
                .map(|k| (c.plan.cluster_id.clone(), k.clone()))
        });
        let mut any = false;
        let all = keys.all(|k| {
            any = true;
            below.get(&k).copied().unwrap_or(false)
        });
        any && all && self.groups_at_min_within(inst)
    }

    /// Parent instances a group's instances live in.
    fn parent_instances(&self, g: &GroupPlan) -> Vec<String> {
        match &g.parent {
            None => self.app_insts.clone(),
            Some(p) => self
                .group_insts
                .iter()
                .filter(|i| &i.group == p)
                .map(|i| i.id.clone())
                .collect(),
        }
    }

    /// Adds an instance of group `g` in parent instance `parent`.
    fn add_group_instance(&mut self, g: &str, parent: &str) -> String {
        let n = self.next_instance.entry(g.to_owned()).or_insert(1);
        let id = if parent.is_empty() {
            format!("{g}-{n}")
        } else {
            format!("{parent}/{g}-{n}")
        };
        *n += 1;
        self.group_insts.push(GroupInst {
            id: id.clone(),
            group: g.to_owned(),
            parent: parent.to_owned(),
        });
        id
    }

    /// Takes in an instance id read from a member record (a restart):
    /// an optional application instance `@NP` (a network partition of the
    /// policy other than the first, one the cluster can run in), then
    /// each step of the path must name a group of the plan under the
    /// step before. Returns whether it is valid.
    fn adopt_instance(&mut self, cluster_id: &str, id: &str) -> bool {
        let Some(c) = self.clusters.get(cluster_id) else {
            return false;
        };
        let inner = c.plan.groups.last().cloned();
        let app_inst = app_instance_of(id).to_owned();
        if let Some(np) = app_inst.strip_prefix('@') {
            let burstable = self.plan.network_partitions.iter().skip(1).any(|n| n == np);
            if !burstable || !c.plan.network_partitions.iter().any(|n| n.id == np) {
                return false;
            }
        }
        let steps = group_steps(id);
        if id != app_inst && steps.is_empty() {
            return false;
        }
        let mut parent_alias: Option<String> = None;
        let mut parsed = Vec::new();
        let prefix = |n: usize| -> String {
            let path = steps[..n].join("/");
            match (app_inst.is_empty(), path.is_empty()) {
                (true, _) => path,
                (false, true) => app_inst.clone(),
                (false, false) => format!("{app_inst}/{path}"),
            }
        };
        for (i, step) in steps.iter().enumerate() {
            let Some((alias, n)) = step.rsplit_once('-') else {
                return false;
            };
            let Ok(n) = n.parse::<u32>() else {
                return false;
            };
            match self.group(alias) {
                Some(g) if g.parent == parent_alias => {}
                _ => return false,
            }
            parsed.push((alias.to_owned(), n, prefix(i + 1), prefix(i)));
            parent_alias = Some(alias.to_owned());
        }
        if parent_alias != inner {
            return false;
        }
        if !self.app_insts.contains(&app_inst) {
            self.app_insts.push(app_inst);
        }
        for (alias, n, path, parent) in parsed {
            let next = self.next_instance.entry(alias.clone()).or_insert(1);
            *next = (*next).max(n + 1);
            if !self.group_insts.iter().any(|i| i.id == path) {
                self.group_insts.push(GroupInst {
                    id: path,
                    group: alias,
                    parent,
                });
            }
        }
        true
    }

    /// Brings every group to its `groupMinInstances` in each parent
    /// instance and gives every cluster one instance (and autoscaler) per
    /// instance of its innermost group.
    fn ensure_instances(&mut self) {
        // The default application instances, then all in the policy's
        // order (bursting follows it, so the last is the newest).
        let defaults: Vec<String> = self
            .plan
            .network_partitions
            .iter()
            .take(self.plan.default_network_partitions.max(1))
            .map(|np| self.app_instance_id(np))
            .collect();
        for d in defaults {
            if !self.app_insts.contains(&d) {
                self.app_insts.push(d);
            }
        }
        if self.app_insts.is_empty() {
            self.app_insts.push(String::new());
        }
        let order: Vec<String> = self
            .plan
            .network_partitions
            .iter()
            .map(|np| self.app_instance_id(np))
            .collect();
        self.app_insts
            .sort_by_key(|a| order.iter().position(|o| o == a).unwrap_or(usize::MAX));
        // Oldest first within each group: numbers grow with each new
        // instance (a restart adopts them in the records' order).
        self.group_insts.sort_by_key(|i| {
            i.id.rsplit_once('-')
                .and_then(|(_, n)| n.parse::<u32>().ok())
                .unwrap_or(0)
        });
        for g in self.groups_outer_first() {
            for parent in self.parent_instances(&g) {
                let have = self
                    .group_insts
                    .iter()
                    .filter(|i| i.group == g.alias && i.parent == parent)
                    .count();
                for _ in u32::try_from(have).unwrap_or(u32::MAX)..g.min_instances.max(1) {
                    self.add_group_instance(&g.alias, &parent);
                }
            }
        }
        let config = self.config;
        let mut wanted: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for c in self.clusters.values() {
            let keys: Vec<String> = match c.plan.groups.last() {
                None => self.app_insts.clone(),
                Some(g) => self
                    .group_insts
                    .iter()
                    .filter(|i| &i.group == g)
                    .map(|i| i.id.clone())
                    .collect(),
            };
            // Each cluster instance is confined to its application
            // instance's network partition (none where the cluster's
            // deployment policy has no such network partition).
            let keyed = keys
                .into_iter()
                .map(|k| {
                    let np = self.network_partition_of(&k).to_owned();
                    (k, np)
                })
                .filter(|(_, np)| c.plan.network_partitions.iter().any(|n| &n.id == np))
                .collect();
            wanted.insert(c.plan.cluster_id.clone(), keyed);
        }
        for c in self.clusters.values_mut() {
            let keys = wanted.remove(&c.plan.cluster_id).unwrap_or_default();
            c.instances.retain(|k, _| keys.iter().any(|(w, _)| w == k));
            for (k, np) in keys {
                if c.instances.contains_key(&k) {
                    continue;
                }
                if let Some(scaling) = ScalingState::new_in(&c.plan, &np, &c.policy, config) {
                    c.instances.insert(
                        k,
                        InstanceRt {
                            scaling,
                            last_eval: None,
                        },
                    );
                }
            }
        }
    }

    /// Forgets burst application instance `id` and everything in it;
    /// returns the cluster-instance keys that went with it.
    fn remove_app_instance(&mut self, id: &str) -> Vec<String> {
        if id.is_empty() {
            return Vec::new();
        }
        self.app_insts.retain(|a| a != id);
        self.remove_group_instance(id)
    }

    /// Forgets group instance `id` and the ones inside it; returns the
    /// cluster-instance keys that went with it.
    fn remove_group_instance(&mut self, id: &str) -> Vec<String> {
        self.group_insts.retain(|i| !within(&i.id, id));
        // The monitors of groups inside it go with it.
        self.group_scaling
            .retain(|(_, parent), _| !within(parent, id));
        self.group_last.retain(|(_, parent), _| !within(parent, id));
        self.group_factors
            .retain(|(_, parent), _| !within(parent, id));
        let mut keys = Vec::new();
        for c in self.clusters.values_mut() {
            let gone: Vec<String> = c
                .instances
                .keys()
                .filter(|k| within(k, id))
                .cloned()
                .collect();
            for k in gone {
                c.instances.remove(&k);
                keys.push(k);
            }
        }
        keys
    }

    fn instance_mut(&mut self, cluster: &str, instance: &str) -> Option<&mut InstanceRt> {
        self.clusters
            .get_mut(cluster)
            .and_then(|c| c.instances.get_mut(instance))
    }
}

/// When a member passed each step of its launch (for the timing logs).
#[derive(Debug, Clone, Copy, Default)]
struct Timing {
    /// The scaling decision that asked for it.
    decided: Option<Instant>,
    /// Its create request went to the engine (it had waited for a slot).
    create_sent: Option<Instant>,
    /// The engine created it; then started it.
    created: Option<Instant>,
    started: Option<Instant>,
    /// Its port answered.
    active: Option<Instant>,
}

fn ms(from: Option<Instant>, to: Option<Instant>) -> Option<u64> {
    let d = to?.checked_duration_since(from?)?;
    u64::try_from(d.as_millis()).ok()
}

struct MemberRt {
    rec: MemberRecord,
    ip: Option<IpAddr>,
    /// A task watches it from its start until its port answers (the
    /// ticks do not probe it meanwhile).
    watching: bool,
    timing: Timing,
    /// Last cumulative cpu figure and when it was read (ms).
    last_cpu: Option<(u64, i64)>,
    /// A drain and removal is under way.
    leaving: bool,
    /// When it was started (for the start timeout).
    started_ms: i64,
    load: Option<f64>,
    memory: Option<f64>,
}

/// A prepared member to record and launch.
struct Launch {
    app: String,
    cluster: String,
    id: String,
    spec: CreateSpec,
}

/// Where a member's first port answers once it is up (its IP once known).
fn probe_addr(state: &State, m: &MemberRt) -> Option<SocketAddr> {
    let port = state
        .apps
        .get(&m.rec.application_id)
        .and_then(|a| a.clusters.get(&m.rec.cluster_id))
        .and_then(|c| c.plan.port_mappings.first())
        .and_then(|p| u16::try_from(p.port).ok());
    m.ip.zip(port).map(|(ip, port)| SocketAddr::new(ip, port))
}

#[derive(Default)]
struct State {
    apps: BTreeMap<String, AppRt>,
    members: BTreeMap<String, MemberRt>,
    /// Level 2: the declared hosts, one pool per cluster of hosts behind
    /// partitions (partitions on the same cluster share it), kept in step
    /// with the catalog (a host provider adds hosts there).
    hosts: BTreeMap<String, HostPool>,
    /// Level 2: the host requests per cluster (see [`crate::hosts`]).
    host_asks: BTreeMap<String, HostAsk>,
}

/// Where a cluster's request for a new host stands.
#[derive(Debug, Clone, Copy)]
struct HostAsk {
    /// A provider call is under way.
    in_flight: bool,
    /// No new request before then (after a refusal or a failure).
    not_before: Instant,
}

impl State {
    /// Places a member on a host of its partition; `None` when none has room.
    fn place(&mut self, catalog: &Catalog, m: &MemberRecord, need: Capacity) -> Option<String> {
        let hosts = capacity::hosts_for_partition(catalog, &m.network_partition, &m.partition);
        let key = capacity::pool_key(catalog, &m.network_partition, &m.partition);
        let pool = self.hosts.entry(key).or_default();
        pool.sync(hosts);
        pool.place(&m.member_id, need)
    }

    fn release(&mut self, member: &str) {
        for p in self.hosts.values_mut() {
            p.release(member);
        }
    }

    fn need(&self, m: &MemberRecord) -> Capacity {
        self.apps
            .get(&m.application_id)
            .and_then(|a| a.clusters.get(&m.cluster_id))
            .map(|c| Capacity {
                cpu_millis: c.plan.cpu_millis,
                memory_bytes: c.plan.memory_bytes,
            })
            .unwrap_or_default()
    }
}

struct Inner<E> {
    engine: E,
    store: Mutex<Store>,
    state: Mutex<State>,
    events: broadcast::Sender<Event>,
    wake: Notify,
    config: Config,
    seq: std::sync::atomic::AtomicU64,
    /// [`Config::engine_parallel`] slots for creating and starting members.
    launch_slots: Semaphore,
    /// Level 2: where new hosts come from.
    host_provider: Arc<dyn HostProvider>,
}

/// The PaaS controller. Cheap to clone.
pub struct Controller<E> {
    inner: Arc<Inner<E>>,
}

impl<E> Clone for Controller<E> {
    fn clone(&self) -> Self {
        Controller {
            inner: Arc::clone(&self.inner),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The members of application `app_id` in instance `inst` (or inside
/// it), each with `why` it goes.
fn members_within(
    members: &BTreeMap<String, MemberRt>,
    app_id: &str,
    inst: &str,
    why: &'static str,
) -> Vec<(String, &'static str)> {
    members
        .values()
        .filter(|m| m.rec.application_id == app_id && within(&m.rec.instance_id, inst))
        .map(|m| (m.rec.member_id.clone(), why))
        .collect()
}

/// Runtime view of one member, for the API.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub member_id: String,
    pub cluster_id: String,
    pub network_partition_id: String,
    pub partition_id: String,
    /// The group instance it belongs to (empty outside groups).
    pub instance_id: String,
    pub status: MemberStatus,
    pub container_id: Option<String>,
    pub default_private_ip: Option<String>,
    pub load_average: Option<f64>,
    pub memory_consumption: Option<f64>,
    pub requests_in_flight: usize,
}

/// Runtime view of one cluster.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    pub cluster_id: String,
    pub alias: String,
    pub service_name: String,
    pub hostname: String,
    pub min: u32,
    pub max: u32,
    /// `{"port", "proxyPort", "protocol", "requestsInFlight"}` per listener.
    pub load_balancer: Vec<serde_json::Value>,
    pub members: Vec<MemberView>,
    /// The first instance's last evaluation (the only one outside groups).
    pub last_evaluation: Option<Evaluation>,
    /// One per group instance the cluster is in (Stratos's cluster instances).
    pub instances: Vec<ClusterInstanceView>,
}

/// One instance of a cluster.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInstanceView {
    pub instance_id: String,
    pub network_partition_id: String,
    pub active_members: u32,
    pub members: u32,
    pub last_evaluation: Option<Evaluation>,
}

/// A cartridge group of a deployed application and its instances.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    pub alias: String,
    pub name: String,
    pub parent_alias: Option<String>,
    pub group_min_instances: u32,
    pub group_max_instances: u32,
    pub group_scaling_enabled: bool,
    pub instances: Vec<GroupInstanceView>,
}

/// One group instance: `Active` once each of its clusters has its
/// minimum of Active members, else `Created`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupInstanceView {
    pub instance_id: String,
    pub parent_instance_id: Option<String>,
    pub network_partition_id: String,
    pub status: String,
    pub last_decision: Option<GroupAction>,
}

/// One application instance (one per network partition in use): `Active`
/// once each cluster instance in it has its minimum of Active members.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationInstanceView {
    /// `""` in the first network partition, `@NP` in the others.
    pub instance_id: String,
    pub network_partition_id: String,
    /// Burst into (given up again once idle), not a default one.
    pub burst: bool,
    pub status: String,
}

/// Runtime view of a deployed application (`GET /api/applications/{id}/runtime`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationView {
    pub application_id: String,
    pub application_policy: String,
    pub status: DeploymentStatus,
    /// Application instances, in the application policy's order.
    pub instances: Vec<ApplicationInstanceView>,
    /// The application monitor's last decision (bursting).
    pub last_decision: Option<GroupAction>,
    /// Group instances, outermost groups first.
    pub groups: Vec<GroupView>,
    pub clusters: Vec<ClusterView>,
}

impl<E: Engine> Controller<E> {
    /// A controller over `engine` and the open `store`; call
    /// [`Controller::restore`] (or [`Controller::run`], which does) next.
    pub fn new(engine: E, store: Store, config: Config) -> Controller<E> {
        Controller::with_host_provider(engine, store, config, Arc::new(LocalMachine))
    }

    /// [`Controller::new`] with `host_provider` asked for hosts when
    /// members find no room (this machine by default).
    pub fn with_host_provider(
        engine: E,
        store: Store,
        config: Config,
        host_provider: Arc<dyn HostProvider>,
    ) -> Controller<E> {
        let (events, _) = broadcast::channel(1024);
        Controller {
            inner: Arc::new(Inner {
                engine,
                store: Mutex::new(store),
                state: Mutex::new(State::default()),
                events,
                wake: Notify::new(),
                launch_slots: Semaphore::new(config.engine_parallel.max(1)),
                config,
                seq: std::sync::atomic::AtomicU64::new(0),
                host_provider,
            }),
        }
    }

    /// The engine (tests inspect the fake).
    pub fn engine(&self) -> &E {
        &self.inner.engine
    }

    /// Subscribes to events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    fn emit(&self, application_id: &str, kind: EventKind) {
        let _ = self.inner.events.send(Event {
            time_ms: now_ms(),
            application_id: application_id.to_owned(),
            kind,
        });
    }

    /// The committed catalog (a copy).
    pub fn catalog(&self) -> Catalog {
        lock(&self.inner.store).catalog().clone()
    }

    /// Applies definition changes whole-or-nothing.
    pub fn apply(&self, changes: &[Change]) -> Result<(), ControlError> {
        if changes
            .iter()
            .any(|c| matches!(c, Change::Deploy { .. } | Change::Undeploy { .. }))
        {
            return Err(ControlError::Listen(
                "deploy and undeploy go through their own calls".into(),
            ));
        }
        lock(&self.inner.store).apply(changes)?;
        Ok(())
    }

    /// Opens the listeners of a planned application; on failure nothing stays open.
    fn open_app(&self, plan: Plan, catalog: &Catalog) -> Result<AppRt, ControlError> {
        let mut clusters = BTreeMap::new();
        let result = (|| {
            for c in &plan.clusters {
                let policy = catalog
                    .autoscaling_policies
                    .get(&c.autoscaling_policy)
                    .ok_or_else(|| ModelError::NotFound {
                        kind: Kind::AutoscalingPolicy,
                        id: c.autoscaling_policy.clone(),
                    })?;
                let mut listeners = Vec::new();
                for pm in &c.port_mappings {
                    if pm.proxy_port <= 0 {
                        continue;
                    }
                    let proxy = i64::from(self.inner.config.port_offset) + pm.proxy_port;
                    let proxy_port = u16::try_from(proxy).map_err(|_| {
                        ControlError::Listen(format!(
                            "cluster {}: proxyPort {} plus the port offset {} is not a port",
                            c.cluster_id, pm.proxy_port, self.inner.config.port_offset
                        ))
                    })?;
                    let member_port = u16::try_from(pm.port).map_err(|_| {
                        ControlError::Listen(format!(
                            "cluster {}: port {} is not a port",
                            c.cluster_id, pm.port
                        ))
                    })?;
                    let protocol = if pm.protocol.eq_ignore_ascii_case("tcp") {
                        Protocol::Tcp
                    } else {
                        Protocol::Http
                    };
                    let addr = SocketAddr::new(self.inner.config.lb_addr, proxy_port);
                    let std_listener = std::net::TcpListener::bind(addr).map_err(|e| {
                        ControlError::Listen(format!(
                            "cluster {}: cannot listen on {addr} for proxyPort {}: {e}; free the port or change the cartridge's proxyPort",
                            c.cluster_id, pm.proxy_port
                        ))
                    })?;
                    let pool = Arc::new(Pool::new(
                        format!("{}:{proxy_port}", c.cluster_id),
                        Algorithm::LeastOutstanding,
                    ));
                    let listen_error =
                        |e: std::io::Error| ControlError::Listen(format!("listen on {addr}: {e}"));
                    let serving = match &self.inner.config.lb_threads {
                        Some(threads) => threads
                            .serve(std_listener, Arc::clone(&pool), protocol)
                            .map_err(listen_error)?,
                        None => {
                            std_listener.set_nonblocking(true).map_err(listen_error)?;
                            let listener = tokio::net::TcpListener::from_std(std_listener)
                                .map_err(listen_error)?;
                            strato_lb::Serving::spawn(listener, Arc::clone(&pool), protocol)
                        }
                    };
                    listeners.push(Listener {
                        proxy_port,
                        member_port,
                        protocol,
                        pool,
                        serving,
                    });
                }
                clusters.insert(
                    c.cluster_id.clone(),
                    ClusterRt {
                        plan: c.clone(),
                        policy: policy.clone(),
                        instances: BTreeMap::new(),
                        listeners,
                        failures: 0,
                        backoff_until: None,
                    },
                );
            }
            Ok::<(), ControlError>(())
        })();
        if let Err(e) = result {
            for c in clusters.values() {
                for l in &c.listeners {
                    l.serving.stop();
                }
            }
            return Err(e);
        }
        Ok(AppRt::new(plan, clusters, self.inner.config.scaling))
    }

    /// Deploys an application: plans it, opens its listeners, records the
    /// deployment. The members follow on the next ticks.
    pub fn deploy(
        &self,
        application_id: &str,
        application_policy: &str,
    ) -> Result<(), ControlError> {
        let catalog = self.catalog();
        let change = Change::Deploy {
            application_id: application_id.to_owned(),
            application_policy: application_policy.to_owned(),
        };
        // Check first (not deployed yet, references) without writing.
        let next = catalog.apply(std::slice::from_ref(&change))?;
        let plan = plan::plan(&next, application_id, application_policy)?;
        let mut app = self.open_app(plan, &next)?;
        // groupMinInstances of each group; the members follow from each
        // cluster instance's minimum on the next tick.
        app.ensure_instances();
        if let Err(e) = lock(&self.inner.store).apply(&[change]) {
            close_app(&app);
            return Err(e.into());
        }
        lock(&self.inner.state)
            .apps
            .insert(application_id.to_owned(), app);
        self.emit(
            application_id,
            EventKind::ApplicationDeployed {
                application_policy: application_policy.to_owned(),
            },
        );
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Starts undeploying: members are drained and removed in the reverse
    /// startup order on the next ticks, then the deployment is forgotten.
    pub fn undeploy(&self, application_id: &str) -> Result<(), ControlError> {
        let store = lock(&self.inner.store);
        if !store.catalog().deployments.contains_key(application_id) {
            return Err(ControlError::NotDeployed(application_id.to_owned()));
        }
        store.set_deployment_status(application_id, DeploymentStatus::Undeploying)?;
        drop(store);
        self.emit(application_id, EventKind::ApplicationUndeploying);
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Whether an application is still deployed (undeploy is done when not).
    pub fn is_deployed(&self, application_id: &str) -> bool {
        lock(&self.inner.store)
            .catalog()
            .deployments
            .contains_key(application_id)
    }

    /// Re-creates the runtime of every stored deployment: listeners, the
    /// autoscalers, and the members whose containers still run (adopted).
    /// Members whose containers are gone are terminated; the next tick
    /// replaces them.
    pub async fn restore(&self) -> Result<(), ControlError> {
        let (catalog, deployments, records) = {
            let store = lock(&self.inner.store);
            (
                store.catalog().clone(),
                store.deployments()?,
                store.members()?,
            )
        };
        for (app_id, dep) in &deployments {
            let plan = plan::plan(&catalog, app_id, &dep.application_policy)?;
            match self.open_app(plan, &catalog) {
                Ok(app) => {
                    lock(&self.inner.state).apps.insert(app_id.clone(), app);
                }
                Err(e) => {
                    tracing::error!(application = %app_id, "cannot restore: {e}");
                    self.emit(
                        app_id,
                        EventKind::Error {
                            message: e.to_string(),
                        },
                    );
                }
            }
        }
        let containers = match self.inner.engine.list().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cannot list member containers to adopt them: {e}");
                Vec::new()
            }
        };
        let by_member: BTreeMap<&str, &ContainerInfo> = containers
            .iter()
            .filter_map(|c| c.labels.get(LABEL_MEMBER).map(|m| (m.as_str(), c)))
            .collect();
        let now = now_ms();
        let mut drop_records = Vec::new();
        let mut adopted = Vec::new();
        let mut fixed = Vec::new();
        {
            let mut state = lock(&self.inner.state);
            // Group instances come back from the records of running
            // members; then each group is brought to its minimum.
            let mut rehome = BTreeSet::new();
            for (id, rec) in &records {
                let alive = by_member.get(id.as_str()).is_some_and(|c| c.running)
                    && !rec.status.is_terminal();
                if let Some(app) = state.apps.get_mut(&rec.application_id) {
                    if alive && !app.adopt_instance(&rec.cluster_id, &rec.instance_id) {
                        rehome.insert(id.clone());
                    }
                }
            }
            for app in state.apps.values_mut() {
                app.ensure_instances();
            }
            for (id, rec) in records {
                let container = by_member.get(id.as_str());
                let alive = container.is_some_and(|c| c.running) && !rec.status.is_terminal();
                let has_app = state.apps.contains_key(&rec.application_id);
                if !alive || !has_app {
                    drop_records.push((id, container.map(|c| c.id.clone())));
                    continue;
                }
                let c = container.map(|c| (*c).clone());
                let mut rec = rec;
                if let Some(c) = &c {
                    rec.container_id = Some(c.id.clone());
                }
                // A record from before group instances (or naming one the
                // plan no longer has) joins the cluster's first instance in
                // the first application instance.
                if rehome.contains(&id) {
                    let first = state
                        .apps
                        .get(&rec.application_id)
                        .and_then(|a| a.clusters.get(&rec.cluster_id))
                        .and_then(|c| c.instances.keys().find(|k| within(k, "")).cloned());
                    match first {
                        Some(k) => {
                            rec.instance_id = k;
                            fixed.push(rec.clone());
                        }
                        None => {
                            drop_records.push((id, rec.container_id.clone()));
                            continue;
                        }
                    }
                }
                // Started before the controller stopped, but its record
                // had not caught up (deferred writes): it runs, so the
                // probes take it from here.
                if matches!(rec.status, MemberStatus::Created | MemberStatus::Pending) {
                    rec.status = MemberStatus::Initialized;
                    fixed.retain(|f: &MemberRecord| f.member_id != rec.member_id);
                    fixed.push(rec.clone());
                }
                let active = rec.status == MemberStatus::Active;
                let placement = Placement {
                    network_partition: rec.network_partition.clone(),
                    partition: rec.partition.clone(),
                };
                let State { apps, members, .. } = &mut *state;
                let Some(cluster) = apps
                    .get_mut(&rec.application_id)
                    .and_then(|a| a.clusters.get_mut(&rec.cluster_id))
                else {
                    drop_records.push((id, rec.container_id.clone()));
                    continue;
                };
                let Some(inst) = cluster.instances.get_mut(&rec.instance_id) else {
                    drop_records.push((id, rec.container_id.clone()));
                    continue;
                };
                // A member outside its instance's network partition (a
                // record from before application instances) is replaced.
                if !inst.scaling.add_member(&id, &placement, active) {
                    drop_records.push((id, rec.container_id.clone()));
                    continue;
                }
                let ip = c.as_ref().and_then(|c| c.ip);
                if active {
                    if let Some(ip) = ip {
                        for l in &cluster.listeners {
                            l.pool.add(id.clone(), SocketAddr::new(ip, l.member_port));
                        }
                    }
                }
                members.insert(
                    id.clone(),
                    MemberRt {
                        rec,
                        ip,
                        watching: false,
                        timing: Timing::default(),
                        last_cpu: None,
                        leaving: false,
                        started_ms: now,
                        load: None,
                        memory: None,
                    },
                );
                tracing::info!(member = %id, "adopted a running member");
                adopted.push(id.clone());
            }
            for id in adopted {
                let Some(rec) = state.members.get(&id).map(|m| m.rec.clone()) else {
                    continue;
                };
                let need = state.need(&rec);
                if state.place(&catalog, &rec, need).is_none() {
                    tracing::warn!(member = %id, "a running member exceeds its hosts' declared capacity");
                }
            }
        }
        if !fixed.is_empty() {
            let _ = lock(&self.inner.store).defer_members(&fixed, &[]);
        }
        for (id, container) in drop_records {
            if let Some(c) = container {
                let _ = self.inner.engine.remove(&c).await;
            }
            let _ = lock(&self.inner.store).defer_members(&[], &[&id]);
            tracing::info!(member = %id, "member gone while the controller was down; it will be replaced");
        }
        Ok(())
    }

    /// Restores, then reconciles every tick until the task is dropped.
    pub async fn run(self) {
        if let Err(e) = self.restore().await {
            tracing::error!("restoring the PaaS state: {e}");
        }
        let mut interval = tokio::time::interval(self.inner.config.tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = self.inner.wake.notified() => {}
            }
            self.reconcile_once(now_ms()).await;
        }
    }

    fn new_member_id(&self, alias: &str) -> String {
        use std::hash::{BuildHasher, Hasher};
        let seq = self
            .inner
            .seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(seq);
        h.write_i64(now_ms());
        format!("{alias}-{:08x}", h.finish() as u32)
    }

    fn set_status(&self, id: &str, status: MemberStatus, reason: Option<String>) {
        let now = now_ms();
        let (app, cluster, ip) = {
            let mut state = lock(&self.inner.state);
            let Some(m) = state.members.get_mut(id) else {
                return;
            };
            if m.rec.status == status || !m.rec.status.can_become(status) {
                return;
            }
            m.rec.status = status;
            m.rec.updated_ms = now;
            (
                m.rec.application_id.clone(),
                m.rec.cluster_id.clone(),
                m.ip.map(|i| i.to_string()),
            )
        };
        if let Err(e) = lock(&self.inner.store).defer_member_status(id, status, now) {
            tracing::warn!(member = %id, "recording status {status}: {e}");
        }
        self.emit(
            &app,
            EventKind::MemberStatus {
                cluster_id: cluster,
                member_id: id.to_owned(),
                status,
                ip,
                reason,
            },
        );
    }

    /// Registers a new member of `cluster_id` at `placement` (in the
    /// autoscaler and the member table, under the state lock, so the next
    /// evaluation counts it) and returns what to create.
    #[allow(clippy::too_many_arguments)]
    fn prepare_member(
        &self,
        state: &mut State,
        catalog: &Catalog,
        app_id: &str,
        cluster_id: &str,
        instance_id: &str,
        placement: &Placement,
        reuse_id: Option<String>,
    ) -> Option<(String, CreateSpec)> {
        let cluster = state
            .apps
            .get_mut(app_id)
            .and_then(|a| a.clusters.get_mut(cluster_id))?;
        let c = &cluster.plan;
        let inst = cluster.instances.get_mut(instance_id)?;
        let np = c
            .network_partitions
            .iter()
            .find(|n| n.id == placement.network_partition)?;
        let id = reuse_id.unwrap_or_else(|| self.new_member_id(&c.alias));
        let mut labels = BTreeMap::new();
        labels.insert(LABEL_MEMBER.to_owned(), id.clone());
        labels.insert(LABEL_APPLICATION.to_owned(), app_id.to_owned());
        labels.insert(LABEL_CLUSTER.to_owned(), cluster_id.to_owned());
        labels.insert(LABEL_INSTANCE.to_owned(), instance_id.to_owned());
        labels.insert(
            LABEL_PARTITION.to_owned(),
            format!("{}/{}", placement.network_partition, placement.partition),
        );
        let mut env = vec![
            format!("APPLICATION_ID={app_id}"),
            format!("CLUSTER_ID={cluster_id}"),
            format!("MEMBER_ID={id}"),
            format!("INSTANCE_ID={instance_id}"),
            format!("CARTRIDGE_TYPE={}", c.cartridge_type),
            format!("CARTRIDGE_ALIAS={}", c.alias),
            format!("HOST_NAME={}", c.hostname),
            format!("NETWORK_PARTITION_ID={}", placement.network_partition),
            format!("PARTITION_ID={}", placement.partition),
        ];
        let ports: Vec<String> = c.port_mappings.iter().map(|p| p.port.to_string()).collect();
        env.push(format!("PORTS={}", ports.join("|")));
        if let Some(p) = c.port_mappings.first() {
            env.push(format!("PORT={}", p.port));
        }
        for p in &c.port_mappings {
            if let Some(n) = &p.name {
                let n: String = n
                    .chars()
                    .map(|ch| {
                        if ch.is_ascii_alphanumeric() {
                            ch.to_ascii_uppercase()
                        } else {
                            '_'
                        }
                    })
                    .collect();
                env.push(format!("PORT_{n}={}", p.port));
            }
        }
        let spec = CreateSpec {
            name: format!("paas-{id}"),
            image: np.image.clone(),
            labels,
            env,
            cpu_millis: c.cpu_millis,
            memory_bytes: c.memory_bytes,
        };
        inst.scaling.add_member(&id, placement, false);
        let need = Capacity {
            cpu_millis: c.cpu_millis,
            memory_bytes: c.memory_bytes,
        };
        let mut rec = MemberRecord {
            member_id: id.clone(),
            application_id: app_id.to_owned(),
            cluster_id: cluster_id.to_owned(),
            network_partition: placement.network_partition.clone(),
            partition: placement.partition.clone(),
            instance_id: instance_id.to_owned(),
            container_id: None,
            status: MemberStatus::Created,
            updated_ms: now_ms(),
        };
        if state.place(catalog, &rec, need).is_none() {
            // Level 2: no declared host has room. The member waits, Pending,
            // and counts for the autoscaler so it is not asked for again.
            rec.status = MemberStatus::Pending;
        }
        state.members.insert(
            id.clone(),
            MemberRt {
                rec,
                ip: None,
                watching: false,
                timing: Timing {
                    decided: Some(Instant::now()),
                    ..Timing::default()
                },
                last_cpu: None,
                leaving: false,
                started_ms: now_ms(),
                load: None,
                memory: None,
            },
        );
        Some((id, spec))
    }

    /// Moves Pending members that now fit on a host to Created; returns
    /// what to launch.
    fn place_pending(&self) -> Vec<Launch> {
        let catalog = lock(&self.inner.store).catalog().clone();
        let mut state = lock(&self.inner.state);
        let pending: Vec<MemberRecord> = state
            .members
            .values()
            .filter(|m| m.rec.status == MemberStatus::Pending && !m.leaving)
            .map(|m| m.rec.clone())
            .collect();
        let mut out = Vec::new();
        for rec in pending {
            let need = state.need(&rec);
            if state.place(&catalog, &rec, need).is_none() {
                continue;
            }
            // Prepare again under the same id: drop the Pending entry first.
            state.members.remove(&rec.member_id);
            if let Some(i) = state
                .apps
                .get_mut(&rec.application_id)
                .and_then(|a| a.instance_mut(&rec.cluster_id, &rec.instance_id))
            {
                i.scaling.remove_member(&rec.member_id);
            }
            let placement = Placement {
                network_partition: rec.network_partition.clone(),
                partition: rec.partition.clone(),
            };
            state.release(&rec.member_id);
            if let Some((id, spec)) = self.prepare_member(
                &mut state,
                &catalog,
                &rec.application_id,
                &rec.cluster_id,
                &rec.instance_id,
                &placement,
                Some(rec.member_id.clone()),
            ) {
                if state.members.get(&id).map(|m| m.rec.status) == Some(MemberStatus::Created) {
                    out.push(Launch {
                        app: rec.application_id.clone(),
                        cluster: rec.cluster_id.clone(),
                        id,
                        spec,
                    });
                }
            }
        }
        out
    }

    /// Level 2: asks the host provider for a host for each cluster of
    /// hosts whose partitions have Pending members, one request per
    /// cluster at a time, and after a refusal or a failure again only
    /// after [`Config::host_retry`].
    fn ask_for_hosts(&self) {
        // The common tick has nobody waiting: no catalog copy then.
        let any_waiting = lock(&self.inner.state)
            .members
            .values()
            .any(|m| m.rec.status == MemberStatus::Pending && !m.leaving);
        if !any_waiting {
            return;
        }
        let catalog = self.catalog();
        let now = Instant::now();
        let mut asks: BTreeMap<String, (HostRequest, BTreeSet<String>)> = BTreeMap::new();
        {
            let mut state = lock(&self.inner.state);
            let waiting = state
                .members
                .values()
                .filter(|m| m.rec.status == MemberStatus::Pending && !m.leaving);
            for m in waiting {
                let Some(k) = capacity::cluster_of_partition(
                    &catalog,
                    &m.rec.network_partition,
                    &m.rec.partition,
                ) else {
                    continue;
                };
                let need = state.need(&m.rec);
                let (req, apps) = asks.entry(k.to_owned()).or_insert_with(|| {
                    (
                        HostRequest {
                            kubernetes_cluster_id: k.to_owned(),
                            network_partition_id: m.rec.network_partition.clone(),
                            partition_id: m.rec.partition.clone(),
                            pending_members: 0,
                            cpu_millis: None,
                            memory_bytes: None,
                            hosts: catalog.kubernetes_clusters[k].kubernetes_hosts.clone(),
                        },
                        BTreeSet::new(),
                    )
                });
                req.pending_members += 1;
                req.cpu_millis = req.cpu_millis.max(need.cpu_millis);
                req.memory_bytes = req.memory_bytes.max(need.memory_bytes);
                apps.insert(m.rec.application_id.clone());
            }
            asks.retain(|k, _| {
                state
                    .host_asks
                    .get(k)
                    .is_none_or(|a| !a.in_flight && a.not_before <= now)
            });
            for k in asks.keys() {
                state.host_asks.insert(
                    k.clone(),
                    HostAsk {
                        in_flight: true,
                        not_before: now,
                    },
                );
            }
        }
        for (cluster, (req, apps)) in asks {
            let this = self.clone();
            tokio::spawn(async move { this.take_host(cluster, req, apps).await });
        }
    }

    /// One host request: the provider's answer, a host it gave added to
    /// the cluster in the store, and the events for `apps`.
    async fn take_host(&self, cluster: String, req: HostRequest, apps: BTreeSet<String>) {
        let provider = Arc::clone(&self.inner.host_provider);
        let name = provider.name().to_owned();
        let outcome = match provider.provide(req.clone()).await {
            Ok(Some(host)) => self.add_provided_host(&cluster, &req, host).await,
            Ok(None) => Err(format!(
                "the {name} host provider has no host for cluster {cluster}; {} member(s) wait, Pending: declare another kubernetesHost there, or run the daemon with --paas-host-provider PROGRAM",
                req.pending_members
            )),
            Err(e) => Err(e),
        };
        let retry = match &outcome {
            Ok(_) => Duration::ZERO,
            Err(_) => self.inner.config.host_retry,
        };
        lock(&self.inner.state).host_asks.insert(
            cluster.clone(),
            HostAsk {
                in_flight: false,
                not_before: Instant::now() + retry,
            },
        );
        for app in &apps {
            let kind = match &outcome {
                Ok(host) => {
                    let cap = capacity::host_of(host).capacity;
                    EventKind::HostAdded {
                        kubernetes_cluster_id: cluster.clone(),
                        host_id: host.host_id.clone(),
                        provider: name.clone(),
                        cpu_millis: cap.cpu_millis,
                        memory_bytes: cap.memory_bytes,
                    }
                }
                Err(reason) => EventKind::HostUnavailable {
                    kubernetes_cluster_id: cluster.clone(),
                    provider: name.clone(),
                    reason: reason.clone(),
                },
            };
            self.emit(app, kind);
        }
        match outcome {
            Ok(host) => {
                tracing::info!(cluster = %cluster, host = %host.host_id, provider = %name, "level 2: a host was added");
                self.inner.wake.notify_one();
            }
            Err(e) => tracing::warn!(cluster = %cluster, "level 2: {e}"),
        }
    }

    /// Adds a provider's `host` to `cluster`'s declared hosts (validated
    /// and durable like an operator's update), if it can hold the largest
    /// waiting member.
    async fn add_provided_host(
        &self,
        cluster: &str,
        req: &HostRequest,
        host: KubernetesHost,
    ) -> Result<KubernetesHost, String> {
        let cap = capacity::host_of(&host).capacity;
        let short = |have: Option<u64>, need: Option<u64>| match (have, need) {
            (Some(have), Some(need)) => have < need,
            _ => false,
        };
        if short(cap.cpu_millis, req.cpu_millis) || short(cap.memory_bytes, req.memory_bytes) {
            return Err(format!(
                "host {} from the {} host provider is too small for a waiting member of cluster {cluster} (it needs cpu {}m, memory {} bytes); have the provider give larger hosts",
                host.host_id,
                self.inner.host_provider.name(),
                req.cpu_millis.unwrap_or(0),
                req.memory_bytes.unwrap_or(0)
            ));
        }
        let inner = Arc::clone(&self.inner);
        let cluster = cluster.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut store = lock(&inner.store);
            let mut k = store
                .catalog()
                .kubernetes_clusters
                .get(&cluster)
                .cloned()
                .ok_or_else(|| format!("cluster {cluster} was removed meanwhile"))?;
            if k.kubernetes_hosts.iter().any(|h| h.host_id == host.host_id) {
                return Err(format!(
                    "the host provider gave host {}, which cluster {cluster} has already; it must give a new host id",
                    host.host_id
                ));
            }
            k.kubernetes_hosts.push(host.clone());
            store
                .apply(&[Change::update(Definition::KubernetesCluster(k))])
                .map_err(|e| format!("adding host {} to cluster {cluster}: {e}", host.host_id))?;
            Ok(host)
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Records prepared members in one durable commit (the record before
    /// the container: one fsync for a whole decision, off the runtime's
    /// threads), then launches each through the engine slots. A Pending
    /// member (no host has room) is only recorded.
    async fn record_and_launch(&self, batch: Vec<Launch>) {
        if batch.is_empty() {
            return;
        }
        let recs: Vec<MemberRecord> = {
            let state = lock(&self.inner.state);
            batch
                .iter()
                .filter_map(|l| state.members.get(&l.id).map(|m| m.rec.clone()))
                .collect()
        };
        let inner = Arc::clone(&self.inner);
        let written = tokio::task::spawn_blocking(move || lock(&inner.store).put_members(&recs))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        if let Err(e) = written {
            for l in &batch {
                self.forget(&l.id, Some(format!("recording the member: {e}")));
            }
            return;
        }
        // Members retired while their records were being written (an
        // undeploy right after the decision) must not leave records behind.
        let gone: Vec<&str> = {
            let state = lock(&self.inner.state);
            batch
                .iter()
                .filter(|l| !state.members.contains_key(&l.id))
                .map(|l| l.id.as_str())
                .collect()
        };
        if !gone.is_empty() {
            let _ = lock(&self.inner.store).defer_members(&[], &gone);
        }
        for l in batch {
            let status = lock(&self.inner.state)
                .members
                .get(&l.id)
                .map(|m| m.rec.status);
            match status {
                Some(MemberStatus::Pending) => self.emit(
                    &l.app,
                    EventKind::MemberStatus {
                        cluster_id: l.cluster.clone(),
                        member_id: l.id.clone(),
                        status: MemberStatus::Pending,
                        ip: None,
                        reason: Some(format!(
                            "no host of its partition has room for cpu {}m, memory {} bytes",
                            l.spec.cpu_millis.unwrap_or(0),
                            l.spec.memory_bytes.unwrap_or(0)
                        )),
                    },
                ),
                Some(MemberStatus::Created) => {
                    self.emit(
                        &l.app,
                        EventKind::MemberStatus {
                            cluster_id: l.cluster.clone(),
                            member_id: l.id.clone(),
                            status: MemberStatus::Created,
                            ip: None,
                            reason: None,
                        },
                    );
                    let this = self.clone();
                    tokio::spawn(async move { this.launch(l).await });
                }
                // Retired or forgotten meanwhile.
                _ => {}
            }
        }
    }

    /// Whether a member is still wanted (not forgotten, not leaving).
    fn wanted(&self, id: &str) -> bool {
        lock(&self.inner.state)
            .members
            .get(id)
            .is_some_and(|m| !m.leaving)
    }

    /// Creates and starts a recorded member once an engine slot is free,
    /// then watches it come up.
    async fn launch(&self, l: Launch) {
        let Launch {
            app: app_id,
            cluster: cluster_id,
            id,
            spec,
        } = l;
        // The semaphore is never closed.
        let Ok(slot) = self.inner.launch_slots.acquire().await else {
            return;
        };
        if !self.wanted(&id) {
            return;
        }
        if let Some(m) = lock(&self.inner.state).members.get_mut(&id) {
            m.timing.create_sent = Some(Instant::now());
        }
        let container = match self.inner.engine.create(&spec).await {
            Ok(c) => c,
            Err(e) => {
                drop(slot);
                self.back_off(&app_id, &cluster_id);
                self.forget(&id, Some(e.to_string()));
                return;
            }
        };
        let rec = {
            let mut state = lock(&self.inner.state);
            state.members.get_mut(&id).filter(|m| !m.leaving).map(|m| {
                m.rec.container_id = Some(container.clone());
                m.timing.created = Some(Instant::now());
                m.rec.clone()
            })
        };
        let Some(rec) = rec else {
            // Undeployed or scaled down while it was being created.
            drop(slot);
            let _ = self.inner.engine.remove(&container).await;
            return;
        };
        let _ = lock(&self.inner.store).defer_members(std::slice::from_ref(&rec), &[]);
        // The CPU limit once it runs: as little as the 10m a cartridge may
        // ask for would throttle the runtime's own setup inside the
        // container's cgroup (0.5 s a start instead of 0.1 s, and seconds
        // with several in flight).
        let started = match self.inner.engine.start(&container).await {
            Ok(()) => match spec.cpu_millis {
                Some(m) => self.inner.engine.limit_cpu(&container, m).await,
                None => Ok(()),
            },
            Err(e) => Err(e),
        };
        drop(slot);
        if let Err(e) = started {
            // Not a member without its limit: removed, and another later.
            let _ = self.inner.engine.remove(&container).await;
            self.back_off(&app_id, &cluster_id);
            self.forget(&id, Some(e.to_string()));
            return;
        }
        // The start timeout runs from here: a member may wait long in the
        // queue of a large deployment before its container starts.
        if let Some(m) = lock(&self.inner.state).members.get_mut(&id) {
            m.started_ms = now_ms();
            m.timing.started = Some(Instant::now());
        }
        self.set_status(&id, MemberStatus::Initialized, None);
        self.watch_start(&id, &container).await;
    }

    /// Watches a member just started until its port answers, for a few
    /// seconds (the ticks take over after that), so that it joins its load
    /// balancer tens of milliseconds after it is ready rather than at a
    /// later tick: that wait was most of a scale-out's reaction time.
    async fn watch_start(&self, id: &str, container: &str) {
        match lock(&self.inner.state).members.get_mut(id) {
            Some(m) => m.watching = true,
            None => return,
        }
        self.watch(id, container).await;
        if let Some(m) = lock(&self.inner.state).members.get_mut(id) {
            m.watching = false;
        }
    }

    async fn watch(&self, id: &str, container: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let (has_ip, addr) = {
                let state = lock(&self.inner.state);
                match state.members.get(id) {
                    Some(m)
                        if !m.leaving
                            && matches!(
                                m.rec.status,
                                MemberStatus::Initialized | MemberStatus::Starting
                            ) =>
                    {
                        (m.ip.is_some(), probe_addr(&state, m))
                    }
                    // Active already (a tick was quicker), leaving or gone.
                    _ => return,
                }
            };
            if !has_ip {
                // This container alone, not a list of every member.
                let ip = self.inner.engine.address(container).await.ok().flatten();
                if let Some(m) = lock(&self.inner.state).members.get_mut(id) {
                    m.ip = m.ip.or(ip);
                }
                if ip.is_some() {
                    continue;
                }
            }
            if let Some(addr) = addr {
                if self.inner.engine.probe(addr).await {
                    self.set_status(id, MemberStatus::Starting, None);
                    self.activate(id);
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// A member of the cluster failed to start: wait 1, 2, 4 … 60 s before
    /// the cluster gets another.
    fn back_off(&self, app_id: &str, cluster_id: &str) {
        let mut state = lock(&self.inner.state);
        if let Some(c) = state
            .apps
            .get_mut(app_id)
            .and_then(|a| a.clusters.get_mut(cluster_id))
        {
            c.failures = c.failures.saturating_add(1);
            let secs = 1u64 << c.failures.min(6).saturating_sub(1);
            c.backoff_until = Some(tokio::time::Instant::now() + Duration::from_secs(secs.min(60)));
        }
    }

    /// Drops a member that never got going (or is gone): Terminated, out
    /// of the autoscaler and the store.
    fn forget(&self, id: &str, reason: Option<String>) {
        if let Some(r) = &reason {
            tracing::warn!(member = %id, "member terminated: {r}");
        }
        self.set_status(id, MemberStatus::Terminated, reason);
        let rec = {
            let mut state = lock(&self.inner.state);
            let Some(m) = state.members.remove(id) else {
                return;
            };
            state.release(id);
            if let Some(c) = state
                .apps
                .get_mut(&m.rec.application_id)
                .and_then(|a| a.clusters.get_mut(&m.rec.cluster_id))
            {
                if let Some(i) = c.instances.get_mut(&m.rec.instance_id) {
                    i.scaling.remove_member(id);
                }
                for l in &c.listeners {
                    l.pool.remove(id);
                }
            }
            m.rec
        };
        let _ = lock(&self.inner.store).defer_members(&[], &[&rec.member_id]);
    }

    /// Drains a member from its pools, stops it and forgets it.
    async fn retire(&self, id: &str, reason: &str) {
        let pools: Vec<Arc<Pool>> = {
            let mut state = lock(&self.inner.state);
            let State { apps, members, .. } = &mut *state;
            let Some(m) = members.get_mut(id) else {
                return;
            };
            if m.leaving {
                return;
            }
            m.leaving = true;
            apps.get(&m.rec.application_id)
                .and_then(|a| a.clusters.get(&m.rec.cluster_id))
                .map(|c| c.listeners.iter().map(|l| Arc::clone(&l.pool)).collect())
                .unwrap_or_default()
        };
        self.set_status(id, MemberStatus::ReadyToShutdown, Some(reason.to_owned()));
        let timeout = self.inner.config.drain_timeout;
        futures::future::join_all(pools.iter().map(|p| p.drain(id, timeout))).await;
        for p in &pools {
            p.remove(id);
        }
        let container = lock(&self.inner.state)
            .members
            .get(id)
            .and_then(|m| m.rec.container_id.clone());
        if let Some(c) = container {
            if let Err(e) = self.inner.engine.remove(&c).await {
                tracing::warn!(member = %id, "{e}");
            }
        }
        self.forget(id, None);
    }

    /// One pass of the loop at `now` (ms since the epoch).
    pub async fn reconcile_once(&self, now: i64) {
        let containers = match self.inner.engine.list().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("listing member containers: {e}");
                return;
            }
        };
        self.check_containers(&containers, now).await;
        self.record_and_launch(self.place_pending()).await;
        self.ask_for_hosts();
        self.probe_starting(now).await;
        self.sample(now).await;
        let deployments = match lock(&self.inner.store).deployments() {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("reading deployments: {e}");
                return;
            }
        };
        for (app_id, dep) in deployments {
            if dep.status == DeploymentStatus::Undeploying {
                self.undeploy_step(&app_id).await;
            } else {
                self.scale(&app_id, now).await;
                if dep.status == DeploymentStatus::Deploying && self.app_active(&app_id) {
                    let _ = lock(&self.inner.store)
                        .set_deployment_status(&app_id, DeploymentStatus::Active);
                    self.log_launch_times(&app_id);
                    self.emit(&app_id, EventKind::ApplicationActive);
                }
            }
        }
        // Once a tick, the deferred member changes become durable: one
        // fsync, off the runtime's threads.
        if lock(&self.inner.store).has_deferred() {
            let inner = Arc::clone(&self.inner);
            match tokio::task::spawn_blocking(move || lock(&inner.store).flush()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!("making member changes durable: {e}"),
                Err(e) => tracing::warn!("making member changes durable: {e}"),
            }
        }
    }

    /// Logs where an application's members spent their launch, as
    /// medians and maxima over its members that have the figures: waiting
    /// for an engine slot (from the scaling decision), create, start, and
    /// from the start until the port answered.
    fn log_launch_times(&self, app_id: &str) {
        let state = lock(&self.inner.state);
        let mut phases: [Vec<u64>; 5] = Default::default();
        for m in state
            .members
            .values()
            .filter(|m| m.rec.application_id == app_id)
        {
            let t = &m.timing;
            let steps = [
                ms(t.decided, t.create_sent),
                ms(t.create_sent, t.created),
                ms(t.created, t.started),
                ms(t.started, t.active),
                ms(t.decided, t.active),
            ];
            for (v, p) in steps.into_iter().zip(phases.iter_mut()) {
                if let Some(v) = v {
                    p.push(v);
                }
            }
        }
        let fig = |v: &mut Vec<u64>| -> String {
            v.sort_unstable();
            match (v.get(v.len() / 2), v.last()) {
                (Some(mid), Some(max)) => format!("{mid}/{max}"),
                _ => "-".into(),
            }
        };
        let [wait, create, start, up, total] = &mut phases;
        tracing::info!(
            application = %app_id,
            members = total.len(),
            slots = self.inner.config.engine_parallel,
            "Active; launch times in ms, median/max: waiting for an engine slot {}, create {}, start {}, start to port open {}, decision to Active {}",
            fig(wait),
            fig(create),
            fig(start),
            fig(up),
            fig(total),
        );
    }

    /// Compares the engine's containers with the members.
    async fn check_containers(&self, containers: &[ContainerInfo], now: i64) {
        let by_member: BTreeMap<&str, &ContainerInfo> = containers
            .iter()
            .filter_map(|c| c.labels.get(LABEL_MEMBER).map(|m| (m.as_str(), c)))
            .collect();
        let mut dead = Vec::new();
        let mut orphans = Vec::new();
        {
            let mut state = lock(&self.inner.state);
            for (id, m) in state.members.iter_mut() {
                if m.leaving
                    || matches!(m.rec.status, MemberStatus::Created | MemberStatus::Pending)
                {
                    continue;
                }
                match by_member.get(id.as_str()) {
                    Some(c) if c.running => {
                        if m.ip.is_none() {
                            m.ip = c.ip;
                        }
                    }
                    Some(_) => dead.push((id.clone(), "its container exited")),
                    None => dead.push((id.clone(), "its container vanished")),
                }
                if m.rec.status < MemberStatus::Active
                    && now - m.started_ms
                        > i64::try_from(self.inner.config.start_timeout.as_millis())
                            .unwrap_or(i64::MAX)
                {
                    dead.push((id.clone(), "it did not become Active in time"));
                }
            }
            for c in containers {
                let claimed = c
                    .labels
                    .get(LABEL_MEMBER)
                    .is_some_and(|m| state.members.contains_key(m));
                if !claimed {
                    orphans.push(c.id.clone());
                }
            }
        }
        for (id, why) in dead {
            let container = lock(&self.inner.state)
                .members
                .get(&id)
                .and_then(|m| m.rec.container_id.clone());
            if let Some(c) = container {
                let _ = self.inner.engine.remove(&c).await;
            }
            self.forget(&id, Some(why.to_owned()));
        }
        for c in orphans {
            tracing::info!(container = %c, "removing a member container no record claims");
            let _ = self.inner.engine.remove(&c).await;
        }
    }

    /// Moves started members to Starting and, once their port answers, Active.
    async fn probe_starting(&self, _now: i64) {
        let todo: Vec<(String, MemberStatus, Option<SocketAddr>)> = {
            let state = lock(&self.inner.state);
            state
                .members
                .values()
                .filter(|m| {
                    !m.leaving
                        && !m.watching
                        && matches!(
                            m.rec.status,
                            MemberStatus::Initialized | MemberStatus::Starting
                        )
                })
                .map(|m| (m.rec.member_id.clone(), m.rec.status, probe_addr(&state, m)))
                .collect()
        };
        let checks = todo.into_iter().map(|(id, status, addr)| async move {
            if status == MemberStatus::Initialized && addr.is_some() {
                self.set_status(&id, MemberStatus::Starting, None);
            }
            let ok = match addr {
                Some(a) => self.inner.engine.probe(a).await,
                None => false,
            };
            if ok {
                self.set_status(&id, MemberStatus::Starting, None);
                self.activate(&id);
            }
        });
        futures::future::join_all(checks).await;
    }

    fn activate(&self, id: &str) {
        {
            let mut state = lock(&self.inner.state);
            let State { apps, members, .. } = &mut *state;
            let Some(m) = members.get_mut(id) else { return };
            let Some(ip) = m.ip else { return };
            m.timing.active = Some(Instant::now());
            let t = m.timing;
            tracing::debug!(
                member = %id,
                wait_ms = ms(t.decided, t.create_sent),
                create_ms = ms(t.create_sent, t.created),
                start_ms = ms(t.created, t.started),
                up_ms = ms(t.started, t.active),
                "member Active"
            );
            if let Some(c) = apps
                .get_mut(&m.rec.application_id)
                .and_then(|a| a.clusters.get_mut(&m.rec.cluster_id))
            {
                c.failures = 0;
                if let Some(i) = c.instances.get_mut(&m.rec.instance_id) {
                    i.scaling.member_active(id);
                }
                for l in &c.listeners {
                    l.pool
                        .add(id.to_owned(), SocketAddr::new(ip, l.member_port));
                }
            }
        }
        self.set_status(id, MemberStatus::Active, None);
    }

    /// Reads every Active member's usage and feeds the autoscalers.
    async fn sample(&self, now: i64) {
        let todo: Vec<(String, String)> = {
            let state = lock(&self.inner.state);
            state
                .members
                .values()
                .filter(|m| m.rec.status == MemberStatus::Active && !m.leaving)
                .filter_map(|m| Some((m.rec.member_id.clone(), m.rec.container_id.clone()?)))
                .collect()
        };
        let reads: Vec<_> = futures::stream::iter(todo)
            .map(|(id, c)| async move { (id, self.inner.engine.usage(&c).await) })
            .buffer_unordered(self.inner.config.engine_parallel.max(1))
            .collect()
            .await;
        let mut state = lock(&self.inner.state);
        let State { apps, members, .. } = &mut *state;
        for (id, usage) in reads {
            let Ok(u) = usage else { continue };
            let Some(m) = members.get_mut(&id) else {
                continue;
            };
            let Some(c) = apps
                .get_mut(&m.rec.application_id)
                .and_then(|a| a.clusters.get_mut(&m.rec.cluster_id))
            else {
                continue;
            };
            let Some(inst) = c.instances.get_mut(&m.rec.instance_id) else {
                continue;
            };
            let limit = if u.memory_limit > 0 && u.memory_limit < u64::MAX / 2 {
                u.memory_limit
            } else {
                c.plan.memory_bytes.unwrap_or(0)
            };
            let mem = scaling::memory_percent(u.memory_bytes, limit);
            m.memory = Some(mem);
            inst.scaling.record(Sample::MemoryConsumption {
                member: id.clone(),
                at_ms: now,
                value: mem,
            });
            if let Some((cpu, at)) = m.last_cpu {
                if now > at && u.cpu_ns >= cpu {
                    let interval = u64::try_from(now - at).unwrap_or(0) * 1_000_000;
                    let load = scaling::load_percent(
                        u.cpu_ns - cpu,
                        interval,
                        c.plan.cpu_millis.unwrap_or(1000),
                    );
                    m.load = Some(load);
                    inst.scaling.record(Sample::LoadAverage {
                        member: id.clone(),
                        at_ms: now,
                        value: load,
                    });
                }
            }
            m.last_cpu = Some((u.cpu_ns, now));
        }
        for app in apps.values_mut() {
            for c in app.clusters.values_mut() {
                // Requests in flight per cluster instance: the pools are
                // the cluster's, so several instances split them by member.
                let mut rif: BTreeMap<String, usize> = BTreeMap::new();
                if c.instances.len() == 1 {
                    let total = c.listeners.iter().map(|l| l.pool.in_flight()).sum();
                    if let Some(k) = c.instances.keys().next() {
                        rif.insert(k.clone(), total);
                    }
                } else {
                    for l in &c.listeners {
                        for s in l.pool.stats().members {
                            if let Some(m) = members.get(&s.id) {
                                *rif.entry(m.rec.instance_id.clone()).or_default() += s.in_flight;
                            }
                        }
                    }
                }
                for (k, inst) in c.instances.iter_mut() {
                    let v = rif.get(k.as_str()).copied().unwrap_or(0);
                    #[allow(clippy::cast_precision_loss)]
                    inst.scaling.record(Sample::RequestsInFlight {
                        at_ms: now,
                        value: v as f64,
                    });
                }
            }
        }
    }

    /// Active members per (cluster, instance).
    fn active_counts(members: &BTreeMap<String, MemberRt>) -> BTreeMap<(&str, &str), u32> {
        let mut n: BTreeMap<(&str, &str), u32> = BTreeMap::new();
        for m in members
            .values()
            .filter(|m| m.rec.status == MemberStatus::Active)
        {
            *n.entry((m.rec.cluster_id.as_str(), m.rec.instance_id.as_str()))
                .or_default() += 1;
        }
        n
    }

    /// Whether every instance of every cluster has its minimum of Active members.
    fn app_active(&self, app_id: &str) -> bool {
        let state = lock(&self.inner.state);
        let Some(app) = state.apps.get(app_id) else {
            return false;
        };
        let active = Self::active_counts(&state.members);
        app.clusters.values().all(|c| {
            c.instances.keys().all(|k| {
                active
                    .get(&(c.plan.cluster_id.as_str(), k.as_str()))
                    .copied()
                    .unwrap_or(0)
                    >= c.plan.min
            })
        })
    }

    /// Runs the autoscaler of each cluster instance whose predecessors are
    /// up, then each group's monitor on what its clusters said.
    async fn scale(&self, app_id: &str, now: i64) {
        let mut spawns: Vec<(String, String, Placement)> = Vec::new();
        let mut launches: Vec<Launch> = Vec::new();
        let catalog = self.catalog();
        let mut removals: Vec<(String, &'static str)> = Vec::new();
        let mut evals: Vec<(String, Evaluation, usize)> = Vec::new();
        let mut group_events: Vec<EventKind> = Vec::new();
        {
            let mut guard = lock(&self.inner.state);
            let State {
                apps,
                members,
                host_asks,
                ..
            } = &mut *guard;
            let Some(app) = apps.get_mut(app_id) else {
                return;
            };
            let active = Self::active_counts(members);
            // Level 2: cluster instances with members Pending on hosts
            // whose provider had no host the last time: at their maximum
            // where they are, so their group or application hears it (and
            // may burst into another network partition).
            let refused = Instant::now();
            let stuck: BTreeSet<(&str, &str)> = members
                .values()
                .filter(|m| {
                    m.rec.application_id == app_id
                        && m.rec.status == MemberStatus::Pending
                        && !m.leaving
                })
                .filter(|m| {
                    capacity::cluster_of_partition(
                        &catalog,
                        &m.rec.network_partition,
                        &m.rec.partition,
                    )
                    .and_then(|k| host_asks.get(k))
                    .is_some_and(|a| !a.in_flight && a.not_before > refused)
                })
                .map(|m| (m.rec.cluster_id.as_str(), m.rec.instance_id.as_str()))
                .collect();
            let count = |cid: &str, k: &str| active.get(&(cid, k)).copied().unwrap_or(0);
            // Instances of each cluster with their minimum Active.
            let ready: BTreeMap<String, BTreeMap<String, bool>> = app
                .clusters
                .values()
                .map(|c| {
                    let per = c
                        .instances
                        .keys()
                        .map(|k| (k.clone(), count(&c.plan.cluster_id, k) >= c.plan.min))
                        .collect();
                    (c.plan.cluster_id.clone(), per)
                })
                .collect();
            let groups_of: BTreeMap<String, Vec<String>> = app
                .clusters
                .values()
                .map(|c| (c.plan.cluster_id.clone(), c.plan.groups.clone()))
                .collect();
            // A predecessor is up for instance `k` of cluster `c` when its
            // instances in the same instance of their innermost common
            // group (or application instance) are; when none is related,
            // when all of them are.
            let up = |w: &str, c: &str, k: &str| -> bool {
                let Some(per) = ready.get(w) else {
                    return false;
                };
                let (none, cg, wg) = (Vec::new(), groups_of.get(c), groups_of.get(w));
                let (cg, wg) = (cg.unwrap_or(&none), wg.unwrap_or(&none));
                let related: Vec<bool> = per
                    .iter()
                    .filter(|(wk, _)| related(k, cg, wk, wg))
                    .map(|(_, r)| *r)
                    .collect();
                if related.is_empty() {
                    per.values().all(|r| *r)
                } else {
                    related.into_iter().all(|r| r)
                }
            };
            // Dependent-scaling factors per (cluster, instance).
            let mut factors: BTreeMap<(String, String), f64> = BTreeMap::new();
            // What each cluster instance told its group: over its maximum,
            // or below its minimum.
            let mut over: BTreeSet<String> = BTreeSet::new();
            let mut below: BTreeMap<(String, String), bool> = BTreeMap::new();
            for c in app.clusters.values_mut() {
                if c.backoff_until
                    .is_some_and(|t| tokio::time::Instant::now() < t)
                {
                    continue;
                }
                let rif: usize = c.listeners.iter().map(|l| l.pool.in_flight()).sum();
                let cid = c.plan.cluster_id.clone();
                for (k, inst) in c.instances.iter_mut() {
                    if !c.plan.waits_for.iter().all(|w| up(w, &cid, k)) {
                        continue;
                    }
                    let eval = inst.scaling.evaluate(now);
                    match &eval.action {
                        Action::ScaleUp { spawn, .. } => {
                            for p in spawn {
                                spawns.push((cid.clone(), k.clone(), p.clone()));
                            }
                        }
                        Action::ScaleDown { remove } => {
                            removals
                                .extend(remove.iter().map(|r| (r.member.clone(), "scale down")));
                        }
                        Action::NotifyDependents { factor } => {
                            let f = factors.entry((cid.clone(), k.clone())).or_insert(*factor);
                            *f = f.max(*factor);
                        }
                        _ => {}
                    }
                    if scaling::over_max(&eval.action)
                        || stuck.contains(&(cid.as_str(), k.as_str()))
                    {
                        over.insert(k.clone());
                    }
                    below.insert(
                        (cid.clone(), k.clone()),
                        scaling::below_min(&eval.figures, c.plan.min),
                    );
                    inst.last_eval = Some(eval.clone());
                    evals.push((cid.clone(), eval, rif));
                }
            }
            // Scaling dependents, per instance of the group (or application
            // instance) that declares them: the highest factor asked for
            // there (by a cluster instance's rule, or last tick by a
            // group's monitor) moves every member of the set there: a
            // cluster instance to `min · factor` members, a group to
            // `groupMinInstances · factor` instances; no other instance
            // moves (Stratos's dependent scaling runs in the parent
            // instance that heard the scaling event).
            let mut changed = false;
            let group_factors = std::mem::take(&mut app.group_factors);
            for set in app.plan.scaling_sets.clone() {
                let depth = set
                    .scope
                    .as_deref()
                    .and_then(|s| app.group(s))
                    .map_or(0, |g| app.depth(g) + 1);
                let mut per_scope: BTreeMap<String, f64> = BTreeMap::new();
                let cluster_factors = factors
                    .iter()
                    .filter(|((cid, _), _)| set.clusters.contains(cid))
                    .map(|((_, k), f)| (scope_of(k, depth), *f));
                let group_factors = group_factors
                    .iter()
                    .filter(|((g, _), _)| set.groups.contains(g))
                    .map(|((_, parent), f)| (parent.clone(), *f));
                for (sc, f) in cluster_factors.chain(group_factors) {
                    let e = per_scope.entry(sc).or_insert(f);
                    *e = scaling::highest_factor([*e, f]).unwrap_or(*e);
                }
                for cid in &set.clusters {
                    let Some(c) = app.clusters.get_mut(cid) else {
                        continue;
                    };
                    for (k, inst) in c.instances.iter_mut() {
                        let Some(f) = per_scope.get(&scope_of(k, depth)).copied() else {
                            continue;
                        };
                        let want =
                            scaling::dependent_required(c.plan.min, f, inst.scaling.rounding());
                        let action = inst.scaling.apply_dependent(want, now);
                        if scaling::over_max(&action) {
                            over.insert(k.clone());
                        }
                        match action {
                            Action::ScaleUp { spawn, .. } => {
                                for p in spawn {
                                    spawns.push((cid.clone(), k.clone(), p));
                                }
                            }
                            Action::ScaleDown { remove } => {
                                removals
                                    .extend(remove.into_iter().map(|r| (r.member, "scale down")));
                            }
                            _ => {}
                        }
                    }
                }
                for alias in &set.groups {
                    let Some(g) = app.group(alias).cloned() else {
                        continue;
                    };
                    for (sc, f) in &per_scope {
                        let insts: Vec<String> = app
                            .group_insts
                            .iter()
                            .filter(|i| &i.group == alias && &i.parent == sc)
                            .map(|i| i.id.clone())
                            .collect();
                        let n = u32::try_from(insts.len()).unwrap_or(u32::MAX);
                        if n == 0 {
                            continue;
                        }
                        let min = g.min_instances.max(1);
                        let max = g.max_instances.max(min);
                        // ceil(min · factor), blind to the last bits of
                        // a factor such as 4 / 3.
                        let required =
                            scaling::rounded_instance_count(f64::from(min) * f - 1e-9, 0.0);
                        let required = u32::try_from(required.max(0)).unwrap_or(u32::MAX);
                        let want = required.clamp(min, max);
                        if required > max || (want > n && !g.group_scaling_enabled) {
                            // No room (or no group scaling): the parent's.
                            over.insert(sc.clone());
                        }
                        let mut event = |action, instance_id: String| {
                            group_events.push(EventKind::GroupScaling {
                                group: alias.clone(),
                                parent_instance_id: sc.clone(),
                                instances: n,
                                action,
                                instance_id: Some(instance_id),
                            });
                        };
                        if want > n && g.group_scaling_enabled {
                            for _ in n..want {
                                let id = app.add_group_instance(alias, sc);
                                tracing::info!(group = %alias, instance = %id, factor = f, "group scale-out with its scaling dependents");
                                event(GroupAction::AddInstance, id);
                                changed = true;
                            }
                        }
                        let surplus = usize::try_from(n.saturating_sub(want)).unwrap_or(0);
                        for id in insts.iter().rev().take(surplus) {
                            app.remove_group_instance(id);
                            tracing::info!(group = %alias, instance = %id, factor = f, "group scale-in with its scaling dependents");
                            removals.extend(members_within(
                                members,
                                app_id,
                                id,
                                "group scale down",
                            ));
                            event(GroupAction::RemoveInstance, id.clone());
                        }
                    }
                }
            }
            if changed {
                app.ensure_instances();
            }
            // The group monitors, innermost groups first: a notice a group
            // cannot act on goes to its parent's instance.
            let mut groups = app.groups_outer_first();
            groups.reverse();
            for g in groups {
                for parent in app.parent_instances(&g) {
                    let insts: Vec<String> = app
                        .group_insts
                        .iter()
                        .filter(|i| i.group == g.alias && i.parent == parent)
                        .map(|i| i.id.clone())
                        .collect();
                    let Some(newest) = insts.last().cloned() else {
                        continue;
                    };
                    let child_over_max = insts.iter().any(|i| over.contains(i));
                    let children_below_min = app.all_below_min_within(&newest, &below);
                    let settling = app.clusters.values().any(|c| {
                        c.instances.keys().any(|k| {
                            insts.iter().any(|i| within(k, i))
                                && count(&c.plan.cluster_id, k) < c.plan.min
                        })
                    });
                    let n = u32::try_from(insts.len()).unwrap_or(u32::MAX);
                    let key = (g.alias.clone(), parent.clone());
                    let config = app.config;
                    let action = app
                        .group_scaling
                        .entry(key.clone())
                        .or_insert_with(|| GroupScaling::new(config))
                        .decide(
                            g.group_scaling_enabled,
                            n,
                            g.min_instances.max(1),
                            g.max_instances.max(g.min_instances.max(1)),
                            child_over_max,
                            children_below_min,
                            settling,
                            now,
                        );
                    // A group in a scaling set hands its decision to the
                    // set, as the factor of one instance more or fewer.
                    let action = match action {
                        GroupAction::AddInstance | GroupAction::RemoveInstance
                            if g.has_scaling_dependents =>
                        {
                            let more = action == GroupAction::AddInstance;
                            let to = if more { n.saturating_add(1) } else { n - 1 };
                            app.group_factors.insert(
                                key.clone(),
                                f64::from(to) / f64::from(g.min_instances.max(1)),
                            );
                            GroupAction::Dependents
                        }
                        other => other,
                    };
                    let mut instance_id = None;
                    match action {
                        GroupAction::AddInstance => {
                            let id = app.add_group_instance(&g.alias, &parent);
                            tracing::info!(group = %g.alias, instance = %id, "group scale-out: a cluster is at its maximum");
                            instance_id = Some(id);
                            changed = true;
                        }
                        GroupAction::RemoveInstance => {
                            app.remove_group_instance(&newest);
                            tracing::info!(group = %g.alias, instance = %newest, "group scale-in");
                            removals.extend(members_within(
                                members,
                                app_id,
                                &newest,
                                "group scale down",
                            ));
                            instance_id = Some(newest.clone());
                        }
                        GroupAction::Escalate => {
                            over.insert(parent.clone());
                        }
                        _ => {}
                    }
                    let previous = app.group_last.insert(key, action);
                    if previous != Some(action) || instance_id.is_some() {
                        group_events.push(EventKind::GroupScaling {
                            group: g.alias.clone(),
                            parent_instance_id: parent.clone(),
                            instances: n,
                            action,
                            instance_id,
                        });
                    }
                }
            }
            // The application monitor (Stratos's application bursting): a
            // notice of an application instance over its maximum adds an
            // application instance in the next network partition of the
            // policy, with every top-level group at its minimum and every
            // top-level cluster at its minimum there; a burst instance
            // whose clusters all would go below their minimum (and whose
            // groups are at theirs) goes again after the deferrals and the
            // cooldown. The default ones stay.
            {
                let usable = app.usable_network_partitions();
                let n = u32::try_from(app.app_insts.len()).unwrap_or(u32::MAX);
                let defaults = app
                    .plan
                    .default_network_partitions
                    .clamp(1, app.plan.network_partitions.len().max(1));
                let defaults = u32::try_from(defaults).unwrap_or(1);
                let room = usable
                    .iter()
                    .filter(|np| !app.app_insts.contains(&app.app_instance_id(np)))
                    .count();
                let max = n.saturating_add(u32::try_from(room).unwrap_or(u32::MAX));
                let child_over_max = app.app_insts.iter().any(|a| over.contains(a));
                let newest = app.app_insts.last().cloned().unwrap_or_default();
                // (The first application instance never goes.)
                let children_below_min =
                    !newest.is_empty() && app.all_below_min_within(&newest, &below);
                // Stratos bursts only when no application instance is pending.
                let settling = app.clusters.values().any(|c| {
                    c.instances
                        .keys()
                        .any(|k| count(&c.plan.cluster_id, k) < c.plan.min)
                });
                let action = app.app_scaling.decide(
                    true,
                    n,
                    defaults,
                    max,
                    child_over_max,
                    children_below_min,
                    settling,
                    now,
                );
                let mut instance_id = None;
                let mut network_partition = None;
                match action {
                    GroupAction::AddInstance => {
                        let next = usable
                            .iter()
                            .map(|np| (np, app.app_instance_id(np)))
                            .find(|(_, id)| !app.app_insts.contains(id));
                        if let Some((np, id)) = next {
                            tracing::info!(application = %app_id, network_partition = %np, "application bursting: an instance is at its maximum");
                            app.app_insts.push(id.clone());
                            network_partition = Some(np.clone());
                            instance_id = Some(id);
                            changed = true;
                        }
                    }
                    GroupAction::RemoveInstance => {
                        network_partition = Some(app.network_partition_of(&newest).to_owned());
                        app.remove_app_instance(&newest);
                        tracing::info!(application = %app_id, instance = %newest, "burst application instance removed");
                        removals.extend(members_within(members, app_id, &newest, "bursting over"));
                        instance_id = Some(newest.clone());
                    }
                    _ => {}
                }
                let previous = app.app_last.replace(action);
                if previous != Some(action) || instance_id.is_some() {
                    group_events.push(EventKind::Bursting {
                        instances: n,
                        action,
                        instance_id,
                        network_partition_id: network_partition,
                    });
                }
            }
            if changed {
                // New group or application instances: their cluster
                // instances, which ask for their minimum on the next
                // evaluation.
                app.ensure_instances();
            }
            for (cid, k, p) in &spawns {
                if let Some((id, spec)) =
                    self.prepare_member(&mut guard, &catalog, app_id, cid, k, p, None)
                {
                    launches.push(Launch {
                        app: app_id.to_owned(),
                        cluster: cid.clone(),
                        id,
                        spec,
                    });
                }
            }
        }
        for (cluster_id, eval, rif) in evals {
            let acted = !matches!(eval.action, Action::Hold);
            if acted {
                tracing::debug!(cluster = %cluster_id, action = ?eval.action, "scaling decision");
            }
            self.emit(
                app_id,
                EventKind::Scaling {
                    cluster_id,
                    figures: eval.figures,
                    action: eval.action,
                    requests_in_flight: rif,
                },
            );
        }
        for e in group_events {
            self.emit(app_id, e);
        }
        if !launches.is_empty() {
            let this = self.clone();
            tokio::spawn(async move { this.record_and_launch(launches).await });
        }
        for (id, why) in removals {
            let this = self.clone();
            tokio::spawn(async move { this.retire(&id, why).await });
        }
    }

    /// One step of undeploying: retire the first stage (reverse startup
    /// order) that still has members; when none has, close the listeners
    /// and forget the deployment.
    async fn undeploy_step(&self, app_id: &str) {
        let (stage_members, pending) = {
            let state = lock(&self.inner.state);
            let Some(app) = state.apps.get(app_id) else {
                drop(state);
                self.finish_undeploy(app_id);
                return;
            };
            let mut found = Vec::new();
            let mut pending = false;
            for stage in app.plan.shutdown_stages() {
                let here: Vec<&MemberRt> = state
                    .members
                    .values()
                    .filter(|m| m.rec.application_id == app_id && stage.contains(&m.rec.cluster_id))
                    .collect();
                if !here.is_empty() {
                    pending = true;
                    found = here
                        .iter()
                        .filter(|m| !m.leaving)
                        .map(|m| m.rec.member_id.clone())
                        .collect();
                    break;
                }
            }
            (found, pending)
        };
        if !pending {
            self.finish_undeploy(app_id);
            return;
        }
        for id in stage_members {
            let this = self.clone();
            tokio::spawn(async move { this.retire(&id, "undeploy").await });
        }
    }

    fn finish_undeploy(&self, app_id: &str) {
        if let Some(app) = lock(&self.inner.state).apps.remove(app_id) {
            close_app(&app);
        }
        let r = lock(&self.inner.store)
            .apply(&[Change::Undeploy {
                application_id: app_id.to_owned(),
            }])
            .map(|_| ());
        match r {
            Ok(_) => self.emit(app_id, EventKind::ApplicationUndeployed),
            Err(e) => tracing::error!(application = %app_id, "forgetting the deployment: {e}"),
        }
    }

    /// The runtime of a deployed application.
    pub fn runtime(&self, app_id: &str) -> Result<ApplicationView, ControlError> {
        let dep = lock(&self.inner.store)
            .deployments()?
            .remove(app_id)
            .ok_or_else(|| ControlError::NotDeployed(app_id.to_owned()))?;
        let state = lock(&self.inner.state);
        let mut clusters = Vec::new();
        let mut groups = Vec::new();
        let mut instances = Vec::new();
        let mut last_decision = None;
        if let Some(app) = state.apps.get(app_id) {
            let active = Self::active_counts(&state.members);
            let count = |cid: &str, k: &str| active.get(&(cid, k)).copied().unwrap_or(0);
            let up_within = |inst: &str| {
                app.clusters.values().all(|c| {
                    c.instances
                        .keys()
                        .filter(|k| within(k, inst))
                        .all(|k| count(&c.plan.cluster_id, k) >= c.plan.min)
                })
            };
            let defaults = app.plan.default_network_partitions.max(1);
            for a in &app.app_insts {
                let np = app.network_partition_of(a).to_owned();
                let burst = !app
                    .plan
                    .network_partitions
                    .iter()
                    .take(defaults)
                    .any(|d| *d == np);
                instances.push(ApplicationInstanceView {
                    instance_id: a.clone(),
                    network_partition_id: np,
                    burst,
                    status: if up_within(a) { "Active" } else { "Created" }.into(),
                });
            }
            last_decision = app.app_last;
            for g in app.groups_outer_first() {
                let instances = app
                    .group_insts
                    .iter()
                    .filter(|i| i.group == g.alias)
                    .map(|i| {
                        let up = up_within(&i.id);
                        GroupInstanceView {
                            instance_id: i.id.clone(),
                            parent_instance_id: (!i.parent.is_empty()).then(|| i.parent.clone()),
                            network_partition_id: app.network_partition_of(&i.id).to_owned(),
                            status: if up { "Active" } else { "Created" }.into(),
                            last_decision: app
                                .group_last
                                .get(&(g.alias.clone(), i.parent.clone()))
                                .copied(),
                        }
                    })
                    .collect();
                groups.push(GroupView {
                    alias: g.alias.clone(),
                    name: g.name.clone(),
                    parent_alias: g.parent.clone(),
                    group_min_instances: g.min_instances,
                    group_max_instances: g.max_instances,
                    group_scaling_enabled: g.group_scaling_enabled,
                    instances,
                });
            }
            for cid in app.plan.stages.iter().flatten() {
                let Some(c) = app.clusters.get(cid) else {
                    continue;
                };
                let stats: Vec<_> = c.listeners.iter().map(|l| l.pool.stats()).collect();
                let members = state
                    .members
                    .values()
                    .filter(|m| &m.rec.cluster_id == cid)
                    .map(|m| MemberView {
                        member_id: m.rec.member_id.clone(),
                        cluster_id: cid.clone(),
                        instance_id: m.rec.instance_id.clone(),
                        network_partition_id: m.rec.network_partition.clone(),
                        partition_id: m.rec.partition.clone(),
                        status: m.rec.status,
                        container_id: m.rec.container_id.clone(),
                        default_private_ip: m.ip.map(|i| i.to_string()),
                        load_average: m.load,
                        memory_consumption: m.memory,
                        requests_in_flight: stats
                            .iter()
                            .flat_map(|s| s.members.iter())
                            .filter(|s| s.id == m.rec.member_id)
                            .map(|s| s.in_flight)
                            .sum(),
                    })
                    .collect();
                clusters.push(ClusterView {
                    cluster_id: cid.clone(),
                    alias: c.plan.alias.clone(),
                    service_name: c.plan.cartridge_type.clone(),
                    hostname: c.plan.hostname.clone(),
                    min: c.plan.min,
                    max: c
                        .instances
                        .values()
                        .next()
                        .map_or(c.plan.max, |i| i.scaling.max_members()),
                    load_balancer: c
                        .listeners
                        .iter()
                        .map(|l| {
                            serde_json::json!({
                                "port": l.member_port,
                                "proxyPort": l.proxy_port,
                                "protocol": match l.protocol { Protocol::Http => "http", Protocol::Tcp => "tcp" },
                                "requestsInFlight": l.pool.in_flight(),
                            })
                        })
                        .collect(),
                    members,
                    last_evaluation: c.instances.values().next().and_then(|i| i.last_eval.clone()),
                    instances: c
                        .instances
                        .iter()
                        .map(|(k, i)| ClusterInstanceView {
                            instance_id: k.clone(),
                            network_partition_id: app.network_partition_of(k).to_owned(),
                            active_members: count(cid, k),
                            members: i.scaling.member_count(),
                            last_evaluation: i.last_eval.clone(),
                        })
                        .collect(),
                });
            }
        }
        Ok(ApplicationView {
            application_id: app_id.to_owned(),
            application_policy: dep.application_policy,
            status: dep.status,
            instances,
            last_decision,
            groups,
            clusters,
        })
    }

    /// Application ids with a deployment.
    pub fn deployed(&self) -> Vec<String> {
        lock(&self.inner.store)
            .catalog()
            .deployments
            .keys()
            .cloned()
            .collect()
    }

    /// Closes every listener (the daemon is stopping; members keep running).
    pub fn shutdown(&self) {
        let state = lock(&self.inner.state);
        for app in state.apps.values() {
            close_app(app);
        }
    }
}

fn close_app(app: &AppRt) {
    for c in app.clusters.values() {
        for l in &c.listeners {
            l.serving.stop();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
