//! The persisted state: networks, their address pools and endpoints, kept
//! in one JSON file written atomically (temporary file, rename), so a
//! restarted daemon keeps every assignment. Changes to networks are also
//! fsynced; changes to endpoints only need to survive the daemon, not the
//! host (see [`Durability`]).

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

impl State {
    /// Reads `path`; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<State> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| Error::StateParse {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(source) => Err(Error::StateRead {
                path: path.to_path_buf(),
                source,
            }),
        }
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
                ipam6: Some(
                    Ipam6::new("fd00:7::/64".parse().unwrap(), "fd00:7::1".parse().unwrap())
                        .unwrap(),
                ),
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
