//! The persisted state: networks, their address pools and endpoints, kept
//! in one JSON file written atomically (temporary file, rename), so a
//! restarted daemon keeps every assignment. Changes to networks are also
//! fsynced; changes to endpoints only need to survive the daemon, not the
//! host (see [`Durability`]), and are appended to a journal beside it
//! (`network.json.log`, one JSON line per endpoint change) rather than
//! rewriting the whole file, whose size grows with the containers: at 500
//! running, every start and exit serialized and wrote 100 KB under the
//! state lock. Loading replays the journal over the file; a whole save
//! (networks, or a journal grown long) starts a new one.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ipam::{Ipam, Ipam6};
use crate::{Ipv4Net, Ipv6Net, PortMapping};

/// A network: a Linux bridge with a subnet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    /// The Linux bridge.
    pub bridge: String,
    pub subnet: Ipv4Net,
    /// The bridge's address, the containers' default route.
    pub gateway: Ipv4Addr,
    /// User-defined networks resolve their containers' names in /etc/hosts;
    /// the default network does not (as in Docker).
    pub user_defined: bool,
    /// Internal networks get no egress masquerading.
    #[serde(default)]
    pub internal: bool,
    /// What the API shows back and the allocator honours; the engine's
    /// business, kept here so a network is one record.
    #[serde(default)]
    pub meta: NetworkMeta,
    /// The IPv6 side of a dual-stack network (`--ipv6`); `None`: IPv4 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Config>,
}

/// The option of a network's MTU (dockerd's name).
pub const MTU_OPTION: &str = "com.docker.network.driver.mtu";

impl Network {
    /// The MTU of its containers' interfaces, from its options (checked
    /// when it was made: see [`parse_mtu`]).
    pub fn mtu(&self) -> Option<u32> {
        self.meta
            .options
            .get(MTU_OPTION)
            .and_then(|v| parse_mtu(v).ok())
    }
}

/// A network MTU option's value: 68 (IPv4's least) to 65535.
pub fn parse_mtu(v: &str) -> Result<u32, String> {
    match v.trim().parse::<u32>() {
        Ok(n) if (68..=65535).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid {MTU_OPTION} {v:?}: give a number from 68 to 65535"
        )),
    }
}

/// A network's IPv6 addressing: the bridge has `gateway` besides its IPv4
/// address, and every container gets an address of `subnet` too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv6Config {
    pub subnet: Ipv6Net,
    pub gateway: Ipv6Addr,
    /// Dynamic addresses come from here (static ones from the whole subnet).
    #[serde(default)]
    pub ip_range: Option<Ipv6Net>,
    /// Named addresses never handed out.
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, Ipv6Addr>,
}

/// A container's IPv6 address on a dual-stack network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointV6 {
    pub ip: Ipv6Addr,
    pub prefix: u8,
    pub gateway: Ipv6Addr,
}

/// A network's settings beyond addressing: labels, driver options, the
/// dynamic range and reserved addresses (`docker network create --label,
/// -o, --ip-range, --aux-address`), its creation time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkMeta {
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// Dynamic addresses come from here (static ones from the whole subnet).
    pub ip_range: Option<Ipv4Net>,
    /// Named addresses never handed out.
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
    /// RFC 3339; empty for networks made before it was recorded.
    pub created: String,
}

/// A container's interface on a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub network: String,
    pub container_id: String,
    /// Names of the container on the network (hostname, aliases); used in
    /// other containers' /etc/hosts.
    #[serde(default)]
    pub names: Vec<String>,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// `aa:bb:cc:dd:ee:ff`
    pub mac: String,
    /// The host end of the veth pair (in the bridge).
    pub host_veth: String,
    /// The interface name inside the container.
    pub ifname: String,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// Its IPv6 address, on a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<EndpointV6>,
}

/// One network with its pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkState {
    pub network: Network,
    pub ipam: Ipam,
    /// The IPv6 addresses, on a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam6: Option<Ipam6>,
    /// container id → endpoint
    #[serde(default)]
    pub endpoints: BTreeMap<String, Endpoint>,
}

/// How long a saved state must last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Through a host crash (fsynced): networks, their bridges and subnets.
    Host,
    /// Through a daemon restart only (in the page cache): endpoints. Their
    /// veths and namespaces are kernel state that a host crash takes with
    /// it, and [`crate::NetworkManager::restore`] drops endpoints whose
    /// veth is gone, so an fsync per container start and stop buys nothing.
    Daemon,
}

/// Everything persisted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub networks: BTreeMap<String, NetworkState>,
}

/// One line of the journal: a container's endpoint on a network as it now
/// is, and the network's allocation cursors after the change.
#[derive(Debug, Serialize, Deserialize)]
struct Change {
    network: String,
    container: String,
    /// `None`: the container has no endpoint there any more.
    endpoint: Option<Endpoint>,
    #[serde(default)]
    last: Option<Ipv4Addr>,
    #[serde(default)]
    last6: Option<Ipv6Addr>,
}

/// The journal of the state file at `path`.
pub fn journal_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".log");
    PathBuf::from(p)
}

impl State {
    /// Reads `path` and replays its journal; a missing file is an empty
    /// state.
    pub fn load(path: &Path) -> Result<State> {
        let mut state: State = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| Error::StateParse {
                path: path.to_path_buf(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(source) => {
                return Err(Error::StateRead {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let journal = journal_path(path);
        let lines = match std::fs::read(&journal) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(Error::StateRead {
                    path: journal,
                    source,
                })
            }
        };
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Change>(line) {
                Ok(change) => state.replay(change),
                // Only a line cut short by a crash of the host (the journal
                // is not synced) can be unreadable: the changes after the
                // last sync are lost, as their veths are.
                Err(e) => {
                    tracing::warn!(path = %journal.display(), error = %e, "unreadable network journal line skipped")
                }
            }
        }
        Ok(state)
    }

    /// Applies a journaled change: each line sets a container's endpoint
    /// whole, so replaying a line twice, or over a state saved after it,
    /// ends in the same state.
    fn replay(&mut self, c: Change) {
        let Some(n) = self.networks.get_mut(&c.network) else {
            // Removed since; its removal was a whole save.
            return;
        };
        if let Some(old) = n.endpoints.remove(&c.container) {
            n.ipam.release(old.ip);
            if let (Some(ipam6), Some(v6)) = (&mut n.ipam6, &old.ipv6) {
                ipam6.release(v6.ip);
            }
        }
        let owner = c.container.as_str();
        n.ipam
            .replay(c.endpoint.as_ref().map(|ep| (ep.ip, owner)), c.last);
        if let Some(ipam6) = &mut n.ipam6 {
            let v6 = c.endpoint.as_ref().and_then(|ep| ep.ipv6.as_ref());
            ipam6.replay(v6.map(|v6| (v6.ip, owner)), c.last6);
        }
        if let Some(ep) = c.endpoint {
            n.endpoints.insert(c.container, ep);
        }
    }

    /// Appends the current endpoint of `container` on `network` (or its
    /// absence) to the journal of `path`: a change that must survive the
    /// daemon, not the host ([`Durability::Daemon`]), so nothing is synced.
    pub fn save_endpoint(&self, path: &Path, network: &str, container: &str) -> Result<()> {
        let n = self.networks.get(network);
        let change = Change {
            network: network.to_string(),
            container: container.to_string(),
            endpoint: n.and_then(|n| n.endpoints.get(container)).cloned(),
            last: n.and_then(|n| n.ipam.cursor()),
            last6: n.and_then(|n| n.ipam6.as_ref()).and_then(|i| i.cursor()),
        };
        let journal = journal_path(path);
        let werr = |source| Error::StateWrite {
            path: journal.clone(),
            source,
        };
        let mut line = serde_json::to_vec(&change).map_err(|e| werr(e.into()))?;
        line.push(b'\n');
        // One write of one line on an append-only file: whole or not at all
        // as far as a process crash goes.
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&journal)
            .and_then(|mut f| f.write_all(&line))
            .map_err(werr)
    }

    /// Writes `path` atomically: a reader (or a crash) sees the old or the
    /// new state, never a mix. With [`Durability::Host`] the file and its
    /// directory are fsynced before this returns.
    pub fn save(&self, path: &Path, durability: Durability) -> Result<()> {
        let werr = |source| Error::StateWrite {
            path: path.to_path_buf(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(werr)?;
        let mut tmp: PathBuf = path.to_path_buf();
        tmp.set_extension(format!("json.tmp{}", std::process::id()));
        // Compact: rewritten on every attach and detach, and its size
        // grows with the endpoints (pretty printing added half again).
        let json = serde_json::to_vec(self).map_err(|e| werr(e.into()))?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.write_all(b"\n")?;
            if durability == Durability::Host {
                f.sync_all()?;
            }
            std::fs::rename(&tmp, path)?;
            if durability == Durability::Host {
                std::fs::File::open(dir)?.sync_all()?;
            }
            // The file holds every change: a new journal. (One left behind
            // by a failure here is harmless: replaying it over this state
            // ends in this state, and later changes are appended after it.)
            match std::fs::remove_file(journal_path(path)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(path = %path.display(), error = %e, "remove the network journal")
                }
                _ => {}
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            werr(e)
        })
    }

    /// The endpoints of every network, in order.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.networks.values().flat_map(|n| n.endpoints.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let subnet: Ipv4Net = "198.18.7.0/24".parse().unwrap();
        let gw = subnet.nth(1).unwrap();
        let mut ipam = Ipam::new(subnet, gw).unwrap();
        let ip = ipam.allocate("n", "c1").unwrap();
        let mut endpoints = BTreeMap::new();
        endpoints.insert(
            "c1".to_string(),
            Endpoint {
                network: "n".into(),
                container_id: "c1".into(),
                names: vec!["web".into()],
                ip,
                prefix: 24,
                gateway: gw,
                mac: "02:53:c6:12:07:02".into(),
                host_veth: "stv0123abcd".into(),
                ifname: "eth0".into(),
                ports: vec!["8080:80".parse().unwrap()],
                ipv6: Some(EndpointV6 {
                    ip: "fd00:7::2".parse().unwrap(),
                    prefix: 64,
                    gateway: "fd00:7::1".parse().unwrap(),
                }),
            },
        );
        let mut s = State::default();
        s.networks.insert(
            "n".into(),
            NetworkState {
                network: Network {
                    name: "n".into(),
                    bridge: "stb-n".into(),
                    subnet,
                    gateway: gw,
                    user_defined: true,
                    internal: false,
                    meta: Default::default(),
                    ipv6: Some(Ipv6Config {
                        subnet: "fd00:7::/64".parse().unwrap(),
                        gateway: "fd00:7::1".parse().unwrap(),
                        ip_range: None,
                        aux_addresses: BTreeMap::new(),
                    }),
                },
                ipam,
                ipam6: Some({
                    let mut ipam6 =
                        Ipam6::new("fd00:7::/64".parse().unwrap(), "fd00:7::1".parse().unwrap())
                            .unwrap();
                    ipam6
                        .allocate_exact("n", "c1", "fd00:7::2".parse().unwrap())
                        .unwrap();
                    ipam6
                }),
                endpoints,
            },
        );
        s
    }

    #[test]
    fn roundtrip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/network.json");
        assert_eq!(State::load(&p).unwrap(), State::default());
        let s = sample();
        s.save(&p, Durability::Host).unwrap();
        assert_eq!(State::load(&p).unwrap(), s);
        // no temporary file is left behind
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["network.json"]);
        assert_eq!(s.endpoints().count(), 1);
        // Without the fsync it is the same file, replaced atomically.
        let mut t = sample();
        t.networks.clear();
        t.save(&p, Durability::Daemon).unwrap();
        assert_eq!(State::load(&p).unwrap(), t);
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn endpoint_changes_are_journaled_and_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("network.json");
        let mut s = sample();
        s.save(&p, Durability::Daemon).unwrap();
        let n = s.networks.get_mut("n").unwrap();
        // c2 attached (a dynamic address, the cursor moves), then c1's
        // ports replaced, then c1 detached (its addresses released).
        let ip = n.ipam.allocate("n", "c2").unwrap();
        let mut c2 = n.endpoints["c1"].clone();
        c2.container_id = "c2".into();
        c2.ip = ip;
        c2.ipv6 = None;
        n.endpoints.insert("c2".into(), c2);
        s.save_endpoint(&p, "n", "c2").unwrap();
        let n = s.networks.get_mut("n").unwrap();
        n.endpoints.get_mut("c1").unwrap().ports.clear();
        s.save_endpoint(&p, "n", "c1").unwrap();
        assert_eq!(State::load(&p).unwrap(), s);
        let n = s.networks.get_mut("n").unwrap();
        let c1 = n.endpoints.remove("c1").unwrap();
        n.ipam.release(c1.ip);
        n.ipam6.as_mut().unwrap().release(c1.ipv6.unwrap().ip);
        s.save_endpoint(&p, "n", "c1").unwrap();
        // A change on a network removed since is ignored.
        s.save_endpoint(&p, "gone", "c9").unwrap();
        let loaded = State::load(&p).unwrap();
        assert_eq!(loaded, s);
        assert_eq!(loaded.networks["n"].ipam.allocated().len(), 1);
        // The whole file was written once: the rest went to the journal.
        let journal = journal_path(&p);
        assert_eq!(
            std::fs::read_to_string(&journal).unwrap().lines().count(),
            4
        );
        // Replaying twice (a journal left by a failed removal) changes nothing.
        let text = std::fs::read(&journal).unwrap();
        std::fs::write(&journal, [text.clone(), text].concat()).unwrap();
        assert_eq!(State::load(&p).unwrap(), s);
        // A whole save starts a new journal.
        s.save(&p, Durability::Daemon).unwrap();
        assert!(!journal.exists());
        assert_eq!(State::load(&p).unwrap(), s);
    }

    #[test]
    fn a_line_cut_short_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("network.json");
        let mut s = sample();
        s.save(&p, Durability::Daemon).unwrap();
        s.networks
            .get_mut("n")
            .unwrap()
            .endpoints
            .get_mut("c1")
            .unwrap()
            .names = vec!["db".into()];
        s.save_endpoint(&p, "n", "c1").unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(journal_path(&p))
            .unwrap();
        f.write_all(b"{\"network\":\"n\",\"contai").unwrap();
        assert_eq!(State::load(&p).unwrap(), s);
    }

    #[test]
    fn corrupt_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("network.json");
        std::fs::write(&p, "{\"networks\": 3").unwrap();
        let e = State::load(&p).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("network state {} is corrupt", p.display())),
            "{e}"
        );
    }
}
