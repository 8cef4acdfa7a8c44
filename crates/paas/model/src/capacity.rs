//! Level 2 of autoscaling, the pure part: the declared capacity of the
//! hosts behind a partition, and where a member's cpu and memory fit.
//!
//! A partition whose `property` names a Kubernetes cluster (`cluster`, as
//! Stratos's Kubernetes partitions do) is backed by that cluster's
//! `kubernetesHosts`, each declaring `cpu` and `memory` in its `property`;
//! any other partition is backed by this machine alone ([`LOCAL_HOST`]).
//! When no host has room, [`HostPool::place`] says so and the member stays
//! Pending until a host provider adds a host.

use crate::catalog::CLUSTER_PROPERTY;
use crate::quantity::{self, Resources};
use crate::{property, Catalog, KubernetesHost};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The host id of this machine when a partition declares no cluster.
pub const LOCAL_HOST: &str = "local";

/// A host and what it can hold (`None`: not declared, so not limited).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Host {
    pub id: String,
    pub address: Option<String>,
    pub capacity: Capacity,
}

/// Cpu (millicores) and memory (bytes); `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
}

impl From<Resources> for Capacity {
    fn from(r: Resources) -> Self {
        Capacity {
            cpu_millis: r.cpu_millis,
            memory_bytes: r.memory_bytes,
        }
    }
}

/// The id of the Kubernetes cluster (Stratos's host group) whose hosts
/// back a partition; `None` when the partition names none (this machine).
pub fn cluster_of_partition<'a>(
    catalog: &'a Catalog,
    network_partition: &str,
    partition: &str,
) -> Option<&'a str> {
    catalog
        .network_partitions
        .get(network_partition)
        .and_then(|np| np.partitions.iter().find(|p| p.id == partition))
        .and_then(|p| property(&p.property, CLUSTER_PROPERTY))
        .filter(|id| catalog.kubernetes_clusters.contains_key(*id))
}

/// What partitions on the same hosts share: their cluster's id, or
/// [`LOCAL_HOST`] for this machine.
pub fn pool_key(catalog: &Catalog, network_partition: &str, partition: &str) -> String {
    cluster_of_partition(catalog, network_partition, partition)
        .unwrap_or(LOCAL_HOST)
        .to_owned()
}

/// A declared host as capacity.
pub fn host_of(h: &KubernetesHost) -> Host {
    Host {
        id: h.host_id.clone(),
        address: h.private_ip_address.clone(),
        // Checked when the cluster was added; an unreadable value here
        // would mean "undeclared".
        capacity: quantity::resources(&h.property).unwrap_or_default().into(),
    }
}

/// The hosts backing a partition of a network partition.
pub fn hosts_for_partition(
    catalog: &Catalog,
    network_partition: &str,
    partition: &str,
) -> Vec<Host> {
    match cluster_of_partition(catalog, network_partition, partition)
        .and_then(|id| catalog.kubernetes_clusters.get(id))
    {
        Some(k) => k.kubernetes_hosts.iter().map(host_of).collect(),
        None => vec![Host {
            id: LOCAL_HOST.to_owned(),
            address: None,
            capacity: Capacity::default(),
        }],
    }
}

#[derive(Debug, Clone)]
struct HostState {
    host: Host,
    used: Capacity,
    members: BTreeMap<String, Capacity>,
    /// No longer declared: keeps its members, takes no new one.
    retired: bool,
}

/// Hosts with what their members use.
#[derive(Debug, Clone, Default)]
pub struct HostPool {
    hosts: Vec<HostState>,
}

fn fits(cap: Option<u64>, used: Option<u64>, need: Option<u64>) -> bool {
    match cap {
        None => true,
        Some(cap) => used.unwrap_or(0).saturating_add(need.unwrap_or(0)) <= cap,
    }
}

/// Share of `cap` free after adding `need` (1.0 when unlimited).
fn free_share(cap: Option<u64>, used: Option<u64>, need: Option<u64>) -> f64 {
    match cap {
        None | Some(0) => 1.0,
        Some(cap) => {
            let after = used.unwrap_or(0).saturating_add(need.unwrap_or(0));
            #[allow(clippy::cast_precision_loss)]
            let share = cap.saturating_sub(after) as f64 / cap as f64;
            share
        }
    }
}

fn add(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        _ => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    }
}

fn sub(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    a.map(|a| a.saturating_sub(b.unwrap_or(0)))
}

impl HostPool {
    /// A pool of `hosts`, all empty.
    pub fn new(hosts: Vec<Host>) -> HostPool {
        HostPool {
            hosts: hosts
                .into_iter()
                .map(|host| HostState {
                    host,
                    used: Capacity::default(),
                    members: BTreeMap::new(),
                    retired: false,
                })
                .collect(),
        }
    }

    /// Adds a host (a host provider made one).
    pub fn add_host(&mut self, host: Host) {
        self.hosts.push(HostState {
            host,
            used: Capacity::default(),
            members: BTreeMap::new(),
            retired: false,
        });
    }

    /// Brings the pool in step with the hosts declared now: new hosts
    /// join empty, a changed capacity applies, and a host no longer
    /// declared takes no new member (those it has keep their share until
    /// they go).
    pub fn sync(&mut self, hosts: Vec<Host>) {
        for h in &mut self.hosts {
            h.retired = true;
        }
        for host in hosts {
            match self.hosts.iter_mut().find(|h| h.host.id == host.id) {
                Some(h) => {
                    h.host = host;
                    h.retired = false;
                }
                None => self.add_host(host),
            }
        }
        self.hosts.retain(|h| !h.retired || !h.members.is_empty());
    }

    /// Ids of the hosts that take members.
    pub fn host_ids(&self) -> Vec<&str> {
        self.hosts
            .iter()
            .filter(|h| !h.retired)
            .map(|h| h.host.id.as_str())
            .collect()
    }

    /// Places a member needing `need` on the host left least allocated
    /// (the larger of its free cpu and memory shares, the scarcer one first);
    /// `None` when no host has room.
    pub fn place(&mut self, member: &str, need: Capacity) -> Option<String> {
        let best = self
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.retired)
            .filter(|(_, h)| {
                fits(
                    h.host.capacity.cpu_millis,
                    h.used.cpu_millis,
                    need.cpu_millis,
                ) && fits(
                    h.host.capacity.memory_bytes,
                    h.used.memory_bytes,
                    need.memory_bytes,
                )
            })
            .map(|(i, h)| {
                let cpu = free_share(
                    h.host.capacity.cpu_millis,
                    h.used.cpu_millis,
                    need.cpu_millis,
                );
                let mem = free_share(
                    h.host.capacity.memory_bytes,
                    h.used.memory_bytes,
                    need.memory_bytes,
                );
                (i, cpu.min(mem))
            })
            // Highest free share; the first host among equals.
            .fold(None::<(usize, f64)>, |best, (i, score)| match best {
                Some((_, b)) if b >= score => best,
                _ => Some((i, score)),
            })?
            .0;
        let h = &mut self.hosts[best];
        h.used.cpu_millis = add(h.used.cpu_millis, need.cpu_millis);
        h.used.memory_bytes = add(h.used.memory_bytes, need.memory_bytes);
        h.members.insert(member.to_owned(), need);
        Some(h.host.id.clone())
    }

    /// Gives back what a member used.
    pub fn release(&mut self, member: &str) {
        for h in &mut self.hosts {
            if let Some(need) = h.members.remove(member) {
                h.used.cpu_millis = sub(h.used.cpu_millis, need.cpu_millis);
                h.used.memory_bytes = sub(h.used.memory_bytes, need.memory_bytes);
            }
        }
    }

    /// What a host's members use.
    pub fn used(&self, host: &str) -> Option<Capacity> {
        self.hosts
            .iter()
            .find(|h| h.host.id == host)
            .map(|h| h.used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn host(id: &str, cpu: u64, mem: u64) -> Host {
        Host {
            id: id.into(),
            address: None,
            capacity: Capacity {
                cpu_millis: Some(cpu),
                memory_bytes: Some(mem),
            },
        }
    }

    const GI: u64 = 1 << 30;

    #[test]
    fn members_spread_then_wait_for_a_host() {
        let mut pool = HostPool::new(vec![host("a", 2000, 4 * GI), host("b", 2000, 4 * GI)]);
        let one = Capacity {
            cpu_millis: Some(1000),
            memory_bytes: Some(GI),
        };
        let placed: Vec<Option<String>> =
            (0..5).map(|i| pool.place(&format!("m{i}"), one)).collect();
        let placed: Vec<Option<&str>> = placed.iter().map(Option::as_deref).collect();
        assert_eq!(placed, [Some("a"), Some("b"), Some("a"), Some("b"), None]);
        assert_eq!(
            pool.used("a"),
            Some(Capacity {
                cpu_millis: Some(2000),
                memory_bytes: Some(2 * GI)
            })
        );
        // A member without declared needs still fits anywhere.
        assert_eq!(
            pool.place("free", Capacity::default()).as_deref(),
            Some("a")
        );
        pool.release("m1");
        assert_eq!(pool.place("m5", one).as_deref(), Some("b"));
        // A new host takes what no longer fits.
        assert_eq!(pool.place("m6", one), None);
        pool.add_host(host("c", 4000, 8 * GI));
        assert_eq!(pool.place("m6", one).as_deref(), Some("c"));
    }

    #[test]
    fn a_synced_pool_keeps_what_members_use() {
        let mut pool = HostPool::new(vec![host("a", 1000, GI)]);
        let one = Capacity {
            cpu_millis: Some(1000),
            memory_bytes: Some(GI),
        };
        assert_eq!(pool.place("m1", one).as_deref(), Some("a"));
        assert_eq!(pool.place("m2", one), None);
        // A provider added b: m1 stays counted on a, m2 goes to b.
        pool.sync(vec![host("a", 1000, GI), host("b", 1000, GI)]);
        assert_eq!(pool.host_ids(), ["a", "b"]);
        assert_eq!(pool.place("m2", one).as_deref(), Some("b"));
        // a is no longer declared: it takes nothing new but keeps m1.
        pool.sync(vec![host("b", 3000, 3 * GI)]);
        assert_eq!(pool.host_ids(), ["b"]);
        assert_eq!(pool.used("a").unwrap().cpu_millis, Some(1000));
        assert_eq!(pool.place("m3", one).as_deref(), Some("b"));
        pool.release("m1");
        pool.sync(vec![host("b", 3000, 3 * GI)]);
        assert_eq!(pool.used("a"), None, "an empty retired host is dropped");
    }

    #[test]
    fn memory_alone_can_be_the_limit() {
        let mut pool = HostPool::new(vec![host("a", 64_000, GI)]);
        let need = Capacity {
            cpu_millis: None,
            memory_bytes: Some(GI / 2),
        };
        assert!(pool.place("x", need).is_some());
        assert!(pool.place("y", need).is_some());
        assert!(pool.place("z", need).is_none());
    }

    #[test]
    fn partitions_map_to_declared_hosts_or_this_machine() {
        let cat = fixtures::catalog();
        // np1/p1 names kubernetes cluster k1 (hosts h1 with 4 cpus, 8Gi; h2 undeclared).
        let hosts = hosts_for_partition(&cat, "np1", "p1");
        assert_eq!(
            hosts.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            ["h1", "h2"]
        );
        assert_eq!(
            hosts[0].capacity,
            Capacity {
                cpu_millis: Some(4000),
                memory_bytes: Some(8 * GI)
            }
        );
        assert_eq!(hosts[0].address.as_deref(), Some("10.0.0.2"));
        assert_eq!(hosts[1].capacity, Capacity::default());
        let local = hosts_for_partition(&cat, "np1", "p2");
        assert_eq!((local.len(), local[0].id.as_str()), (1, LOCAL_HOST));
        assert_eq!(pool_key(&cat, "np1", "p1"), "k1");
        assert_eq!(pool_key(&cat, "np1", "p2"), LOCAL_HOST);
        assert_eq!(cluster_of_partition(&cat, "np1", "p2"), None);
    }
}
