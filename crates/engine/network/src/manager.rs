//! [`NetworkManager`]: networks, endpoints and published ports, persisted
//! in the state file and realised on the host through [`Host`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use tokio::sync::{Mutex, Notify};
use tracing::{debug, info, info_span, warn, Instrument};

use crate::error::{Error, Result};
use crate::files::{self, HostEntry};
use crate::firewall::fnv1a;
use crate::host::{Host, LinuxHost, Netns, Plug};
use crate::ipam::{Ipam, Ipam6};
use crate::ipnet::carve;
use crate::state::{Durability, Endpoint, EndpointV6, Ipv6Config, Network, NetworkState, State};
use crate::{Ipv4Net, Ipv6Net, PortMapping};

/// The default network's name, as in Docker.
pub const DEFAULT_NETWORK: &str = "bridge";
/// The default network's bridge.
pub const DEFAULT_BRIDGE: &str = "strato0";
/// The default pool subnets are carved from. 10.199/16 is outside Docker's
/// (172.17–31/16, 192.168/16), Podman's (10.88/16) and the AWS default VPC
/// (172.31/16).
pub const DEFAULT_POOL: &str = "10.199.0.0/16";

/// How the manager is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// The state file is `state_dir/network.json`.
    pub state_dir: PathBuf,
    /// Subnets for networks created without one are carved from here.
    pub pool: Ipv4Net,
    /// The length of carved subnets.
    pub subnet_prefix: u8,
    /// The default network's bridge.
    pub default_bridge: String,
    /// The nftables table (and iptables chain prefix) holding every rule.
    pub table: String,
    /// IPv6 subnets for dual-stack networks created without one are carved
    /// from here: a unique local /48 of this host (see [`crate::ula_pool`]).
    pub pool6: Ipv6Net,
    /// The length of carved IPv6 subnets.
    pub subnet_prefix6: u8,
    /// Make the default network dual-stack when it is created (`strato
    /// daemon --ipv6`), with this subnet (`--fixed-cidr-v6`) or a carved one.
    pub default_ipv6: Option<Option<Ipv6Net>>,
}

/// The machine id that seeds the IPv6 pool (the hostname without one).
fn machine_seed() -> String {
    [
        "/etc/machine-id",
        "/var/lib/dbus/machine-id",
        "/proc/sys/kernel/hostname",
    ]
    .iter()
    .find_map(|p| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
    .unwrap_or_else(|| "strato".into())
}

impl Config {
    /// Defaults with state in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            pool: DEFAULT_POOL.parse().expect("valid default pool"),
            subnet_prefix: 24,
            default_bridge: DEFAULT_BRIDGE.to_string(),
            table: "strato".to_string(),
            pool6: crate::ula_pool(&machine_seed()),
            subnet_prefix6: 64,
            default_ipv6: None,
        }
    }
}

/// What to create with [`NetworkManager::create`].
#[derive(Clone, Debug, Default)]
pub struct NetworkSpec {
    pub name: String,
    /// Defaults to `stb-<hash of name>`.
    pub bridge: Option<String>,
    /// Defaults to a free subnet of the pool.
    pub subnet: Option<Ipv4Net>,
    /// Defaults to the subnet's first host address.
    pub gateway: Option<Ipv4Addr>,
    /// No egress masquerading, no forwarding off the bridge.
    pub internal: bool,
    /// Labels, options, ip range and aux addresses (checked against the subnet).
    pub meta: crate::NetworkMeta,
    /// Dual-stack (`--ipv6`): its IPv6 addressing, every part optional.
    pub ipv6: Option<Ipv6Spec>,
}

/// The IPv6 side of a [`NetworkSpec`].
#[derive(Clone, Debug, Default)]
pub struct Ipv6Spec {
    /// Defaults to a free /64 of [`Config::pool6`].
    pub subnet: Option<Ipv6Net>,
    /// Defaults to the subnet's first host address (`::1`).
    pub gateway: Option<Ipv6Addr>,
    /// Dynamic addresses come from here; needs `subnet`.
    pub ip_range: Option<Ipv6Net>,
    /// Never handed out; needs `subnet`.
    pub aux_addresses: BTreeMap<String, Ipv6Addr>,
}

/// What to attach with [`NetworkManager::attach`].
#[derive(Clone, Debug)]
pub struct AttachRequest {
    pub network: String,
    pub container_id: String,
    pub netns: Netns,
    /// The interface name inside the container (`eth0`).
    pub ifname: String,
    /// Names of the container on the network (hostname, aliases).
    pub names: Vec<String>,
    /// A fixed address, else the next free one.
    pub ip: Option<Ipv4Addr>,
    /// A fixed IPv6 address (the network must be dual-stack), else the next
    /// free one on a dual-stack network.
    pub ip6: Option<Ipv6Addr>,
    pub ports: Vec<PortMapping>,
    /// Give the container its default route through this network (its
    /// first one); networks connected later reach only their subnet.
    pub default_route: bool,
    /// A fixed MAC address, else one derived from the IP address.
    pub mac: Option<[u8; 6]>,
}

impl AttachRequest {
    /// Attach `container_id` in `netns` to `network` as `eth0`.
    pub fn new(network: &str, container_id: &str, netns: Netns) -> Self {
        Self {
            network: network.to_string(),
            container_id: container_id.to_string(),
            netns,
            ifname: "eth0".to_string(),
            names: Vec::new(),
            ip: None,
            ip6: None,
            ports: Vec::new(),
            default_route: true,
            mac: None,
        }
    }
}

/// The container-side files for one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerFiles {
    pub hosts: String,
    pub resolv_conf: String,
    pub hostname: String,
}

/// Container networking of the engine. One per daemon; all methods are
/// async. The state is behind one lock, held for bookkeeping, the state
/// file and the firewall; the netlink work of an attach (milliseconds) runs
/// outside it, so containers starting together are wired in parallel.
pub struct NetworkManager<H: Host = LinuxHost> {
    config: Config,
    host: std::sync::Arc<H>,
    state: Mutex<State>,
    /// Host veths being deleted outside the state lock (deleting one waits
    /// for the kernel's network synchronisation, ~10 ms): an attach that
    /// would make one of the same name waits until it is gone.
    unplugging: std::sync::Arc<Unplugging>,
    /// The firewall last applied (its nft rendering, which names everything
    /// the iptables form has too); `None` when unknown or after a failure.
    /// A change that leaves it equal (an endpoint without published ports)
    /// runs no `nft` at all.
    applied: std::sync::Mutex<Option<String>>,
    /// Bridges made (or found) and configured by this manager. An attach
    /// to one of them goes straight to the veth; if the bridge vanished
    /// behind our back the plug says so and the bridge is made again.
    realised: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Endpoint changes in the journal since the state file was last
    /// written whole (see `save_endpoint`).
    journaled: std::sync::atomic::AtomicUsize,
}

fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':' && b != b'"')
}

/// The MAC of a container address: locally administered, derived from the
/// address like Docker's (`02:42:` there, `02:53:` here).
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x53, o[0], o[1], o[2], o[3]]
}

/// Parses `aa:bb:cc:dd:ee:ff` (a unicast address: a container's).
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = || Error::InvalidMac(s.to_string());
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return Err(bad());
        }
        m[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if m[0] & 1 == 1 {
        return Err(bad());
    }
    Ok(m)
}

fn mac_string(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Names of host veths being deleted, each with the signal of its end.
#[derive(Default)]
struct Unplugging(std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Notify>>>);

impl Unplugging {
    /// Marks `name` as being deleted; `None` if it already is.
    fn begin(&self, name: &str) -> Option<std::sync::Arc<Notify>> {
        let mut m = self.0.lock().expect("unplugging lock");
        if m.contains_key(name) {
            return None;
        }
        let n = std::sync::Arc::new(Notify::new());
        m.insert(name.to_string(), n.clone());
        Some(n)
    }

    fn end(&self, name: &str) {
        if let Some(n) = self.0.lock().expect("unplugging lock").remove(name) {
            n.notify_waiters();
        }
    }

    /// Returns once `name` is not being deleted.
    async fn wait(&self, name: &str) {
        loop {
            let Some(n) = self.0.lock().expect("unplugging lock").get(name).cloned() else {
                return;
            };
            // Registered before the check below: an `end` in between wakes it.
            let notified = n.notified();
            if !self.0.lock().expect("unplugging lock").contains_key(name) {
                return;
            }
            notified.await;
        }
    }
}

/// The host end of a container's veth: stable for (network, container),
/// at most 15 characters.
pub fn host_veth_name(network: &str, container_id: &str) -> String {
    format!("stv{:08x}", fnv1a(&format!("{network}/{container_id}")))
}

impl NetworkManager<LinuxHost> {
    /// The manager on the real host, with state loaded from
    /// `config.state_dir`.
    pub fn open(config: Config) -> Result<Self> {
        Self::with_host(config, LinuxHost::default())
    }
}

impl<H: Host> NetworkManager<H> {
    /// The manager on `host`.
    pub fn with_host(config: Config, host: H) -> Result<Self> {
        let state = State::load(&config.state_dir.join("network.json"))?;
        Ok(Self {
            config,
            host: std::sync::Arc::new(host),
            state: Mutex::new(state),
            unplugging: Default::default(),
            applied: std::sync::Mutex::new(None),
            realised: Default::default(),
            journaled: Default::default(),
        })
    }

    /// Applies the firewall for `st` unless the same rules are known to be
    /// in place. Call with the state lock held.
    async fn sync_firewall(&self, st: &State) -> Result<()> {
        let want = crate::firewall::nft_script(&self.config.table, st);
        if self.applied.lock().expect("firewall cache").as_deref() == Some(want.as_str()) {
            return Ok(());
        }
        *self.applied.lock().expect("firewall cache") = None;
        self.host.apply_firewall(&self.config.table, st).await?;
        *self.applied.lock().expect("firewall cache") = Some(want);
        Ok(())
    }

    /// Applies the firewall for `st` whatever was applied before (at
    /// restore: the rules may have been flushed behind our back).
    async fn force_firewall(&self, st: &State) -> Result<()> {
        *self.applied.lock().expect("firewall cache") = None;
        self.sync_firewall(st).await
    }

    /// The host implementation (tests inspect a [`crate::Recorder`]).
    pub fn host(&self) -> &H {
        &self.host
    }

    fn state_path(&self) -> PathBuf {
        self.config.state_dir.join("network.json")
    }

    /// Persists a change of one endpoint (call with the state lock held):
    /// a line in the journal, or, once the journal holds more lines than
    /// twice the endpoints (plus some), the whole state, which starts a new
    /// journal; so loading never replays much more than the file holds, and
    /// the whole write is paid once per that many changes.
    fn save_endpoint(&self, st: &State, network: &str, container: &str) -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let endpoints: usize = st.networks.values().map(|n| n.endpoints.len()).sum();
        if self.journaled.load(Relaxed) >= 2 * endpoints + 64 {
            st.save(&self.state_path(), Durability::Daemon)?;
            self.journaled.store(0, Relaxed);
            return Ok(());
        }
        st.save_endpoint(&self.state_path(), network, container)?;
        self.journaled.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Networks, by name.
    pub async fn list(&self) -> Vec<Network> {
        let st = self.state.lock().await;
        st.networks.values().map(|n| n.network.clone()).collect()
    }

    /// One network.
    pub async fn get(&self, name: &str) -> Result<Network> {
        let st = self.state.lock().await;
        st.networks
            .get(name)
            .map(|n| n.network.clone())
            .ok_or_else(|| Error::NoSuchNetwork(name.to_string()))
    }

    /// A network's endpoints.
    pub async fn endpoints(&self, network: &str) -> Result<Vec<Endpoint>> {
        let st = self.state.lock().await;
        let n = st
            .networks
            .get(network)
            .ok_or_else(|| Error::NoSuchNetwork(network.to_string()))?;
        Ok(n.endpoints.values().cloned().collect())
    }

    /// The default network (`bridge` on `strato0`), created on first use;
    /// its bridge is recreated if missing (after a host reboot).
    pub async fn ensure_default(&self) -> Result<Network> {
        if let Ok(n) = self.get(DEFAULT_NETWORK).await {
            self.realise_network(&n).await?;
            return Ok(n);
        }
        self.create_inner(
            NetworkSpec {
                name: DEFAULT_NETWORK.to_string(),
                bridge: Some(self.config.default_bridge.clone()),
                ipv6: self.config.default_ipv6.map(|subnet| Ipv6Spec {
                    subnet,
                    ..Default::default()
                }),
                ..Default::default()
            },
            false,
        )
        .await
    }

    /// Creates a user-defined bridge network.
    pub async fn create(&self, spec: NetworkSpec) -> Result<Network> {
        self.create_inner(spec, true).await
    }

    async fn create_inner(&self, spec: NetworkSpec, user_defined: bool) -> Result<Network> {
        // Docker allows spaces inside network names ("test 01"); they are
        // only ever quoted (nft comments) or hashed (bridge, veth names).
        if !valid_name(&spec.name.replace(' ', "_"), 64) || spec.name.ends_with(' ') {
            return Err(Error::InvalidName(spec.name));
        }
        let span = info_span!("network_create", network = %spec.name);
        async {
            let mut st = self.state.lock().await;
            if st.networks.contains_key(&spec.name) {
                return Err(Error::NetworkExists(spec.name.clone()));
            }
            let bridge = spec
                .bridge
                .clone()
                .unwrap_or_else(|| format!("stb-{:08x}", fnv1a(&spec.name)));
            if !valid_ifname(&bridge) {
                return Err(Error::InvalidBridgeName(bridge));
            }
            if let Some(o) = st.networks.values().find(|n| n.network.bridge == bridge) {
                return Err(Error::BridgeInUse {
                    bridge,
                    network: o.network.name.clone(),
                });
            }
            let subnet = match spec.subnet {
                Some(s) => {
                    if let Some(o) = st.networks.values().find(|n| n.network.subnet.overlaps(&s)) {
                        return Err(Error::SubnetOverlap {
                            subnet: s.to_string(),
                            other: o.network.name.clone(),
                            other_subnet: o.network.subnet.to_string(),
                        });
                    }
                    s
                }
                None => {
                    let mut taken: Vec<Ipv4Net> =
                        st.networks.values().map(|n| n.network.subnet).collect();
                    match self.host.host_routes().await {
                        Ok(r) => taken.extend(r),
                        Err(e) => {
                            warn!(error = %e, "cannot list host routes; carving without them")
                        }
                    }
                    carve(&self.config.pool, self.config.subnet_prefix, &taken)?
                }
            };
            if subnet.prefix() > 30 {
                return Err(Error::SubnetTooSmall {
                    subnet: subnet.to_string(),
                });
            }
            let gateway = spec
                .gateway
                .or_else(|| subnet.nth(1))
                .unwrap_or(subnet.addr());
            let ipam = Ipam::new(subnet, gateway)?.restrict(
                spec.meta.ip_range,
                spec.meta.aux_addresses.values().copied().collect(),
            )?;
            let (ipv6, ipam6) = match &spec.ipv6 {
                Some(v6) => {
                    let (c, i) = self.plan_ipv6(&st, &spec.name, v6).await?;
                    (Some(c), Some(i))
                }
                None => (None, None),
            };
            let network = Network {
                name: spec.name.clone(),
                bridge,
                subnet,
                gateway,
                user_defined,
                internal: spec.internal,
                meta: spec.meta.clone(),
                ipv6,
            };
            if let Err(e) = self
                .host
                .ensure_bridge(
                    &network.bridge,
                    gateway,
                    subnet.prefix(),
                    bridge_v6(&network),
                )
                .await
            {
                // A bridge made before the failure (its IPv6 half) goes too.
                if !st
                    .networks
                    .values()
                    .any(|n| n.network.bridge == network.bridge)
                {
                    let _ = self.host.delete_link(&network.bridge).await;
                }
                return Err(e);
            }
            st.networks.insert(
                network.name.clone(),
                NetworkState {
                    network: network.clone(),
                    ipam,
                    ipam6,
                    endpoints: Default::default(),
                },
            );
            let done = async {
                self.host_settings(&network)?;
                st.save(&self.state_path(), Durability::Host)?;
                self.sync_firewall(&st).await
            }
            .await;
            if let Err(e) = done {
                st.networks.remove(&network.name);
                let _ = st.save(&self.state_path(), Durability::Host);
                self.forget_realised(&network.bridge);
                let _ = self.host.delete_link(&network.bridge).await;
                let _ = self.sync_firewall(&st).await;
                return Err(e);
            }
            self.realised
                .lock()
                .expect("realised")
                .insert(network.bridge.clone());
            info!(bridge = %network.bridge, %subnet, %gateway, "network created");
            Ok(network)
        }
        .instrument(span)
        .await
    }

    /// The IPv6 subnet (given, or carved from the pool clear of other
    /// networks'), gateway and address pool of a dual-stack network.
    async fn plan_ipv6(
        &self,
        st: &State,
        name: &str,
        v6: &Ipv6Spec,
    ) -> Result<(Ipv6Config, Ipam6)> {
        let bad = |reason: String| Error::InvalidIpv6 {
            network: name.to_string(),
            reason,
        };
        let taken: Vec<(String, Ipv6Net)> = st
            .networks
            .values()
            .filter_map(|n| Some((n.network.name.clone(), n.network.ipv6.as_ref()?.subnet)))
            .collect();
        let subnet = match v6.subnet {
            Some(s) => {
                if let Some((other, o)) = taken.iter().find(|(_, t)| t.overlaps(&s)) {
                    return Err(Error::SubnetOverlap {
                        subnet: s.to_string(),
                        other: other.clone(),
                        other_subnet: o.to_string(),
                    });
                }
                s
            }
            None => {
                if v6.ip_range.is_some() || !v6.aux_addresses.is_empty() {
                    return Err(bad(
                        "an IPv6 ip range or auxiliary addresses need an IPv6 subnet: give one with --subnet".into(),
                    ));
                }
                let mut nets: Vec<Ipv6Net> = taken.iter().map(|(_, t)| *t).collect();
                match self.host.host_routes6().await {
                    Ok(r) => nets.extend(r),
                    Err(e) => {
                        warn!(error = %e, "cannot list host IPv6 routes; carving without them")
                    }
                }
                crate::carve(&self.config.pool6, self.config.subnet_prefix6, &nets)?
            }
        };
        if subnet.addr().is_multicast() || subnet.addr().is_loopback() || subnet.prefix() < 16 {
            return Err(bad(format!(
                "{subnet} cannot be a network's subnet: give a unicast prefix of /16 to /126, like fd00:1::/64"
            )));
        }
        let gateway = v6
            .gateway
            .or_else(|| subnet.nth(1))
            .unwrap_or(subnet.addr());
        let ipam = Ipam6::new(subnet, gateway)?
            .restrict(v6.ip_range, v6.aux_addresses.values().copied().collect())?;
        Ok((
            Ipv6Config {
                subnet,
                gateway,
                ip_range: v6.ip_range,
                aux_addresses: v6.aux_addresses.clone(),
            },
            ipam,
        ))
    }

    fn host_settings(&self, n: &Network) -> Result<()> {
        self.host.sysctl("net/ipv4/ip_forward", "1")?;
        if n.ipv6.is_some() && !n.internal {
            // Egress of IPv6 containers is routed (and masqueraded), as
            // dockerd does for IPv6 networks.
            self.host.sysctl("net/ipv6/conf/all/forwarding", "1")?;
        }
        // lets the host's 127.0.0.1:<published port> be DNATed out the bridge
        self.host
            .sysctl(&format!("net/ipv4/conf/{}/route_localnet", n.bridge), "1")
    }

    /// Makes sure the network's bridge exists and is configured (once per
    /// manager, see `realised`).
    async fn realise_network(&self, n: &Network) -> Result<()> {
        if self.realised.lock().expect("realised").contains(&n.bridge) {
            return Ok(());
        }
        self.host
            .ensure_bridge(&n.bridge, n.gateway, n.subnet.prefix(), bridge_v6(n))
            .await?;
        self.host_settings(n)?;
        self.realised
            .lock()
            .expect("realised")
            .insert(n.bridge.clone());
        Ok(())
    }

    fn forget_realised(&self, bridge: &str) {
        self.realised.lock().expect("realised").remove(bridge);
    }

    /// After a daemon or host restart: recreates missing bridges and
    /// reinstalls the firewall from the state file. Endpoints whose veth is
    /// gone (the container died with the host) are dropped and their
    /// addresses released.
    pub async fn restore(&self) -> Result<()> {
        let mut st = self.state.lock().await;
        let nets: Vec<Network> = st.networks.values().map(|n| n.network.clone()).collect();
        for n in &nets {
            self.forget_realised(&n.bridge);
            self.realise_network(n).await?;
        }
        let eps: Vec<Endpoint> = st.endpoints().cloned().collect();
        for ep in eps {
            if !self.host.link_exists(&ep.host_veth).await? {
                debug!(container = %ep.container_id, network = %ep.network, "dropping stale endpoint");
                if let Some(n) = st.networks.get_mut(&ep.network) {
                    n.endpoints.remove(&ep.container_id);
                    n.release(&ep);
                }
            }
        }
        st.save(&self.state_path(), Durability::Host)?;
        self.force_firewall(&st).await
    }

    /// Removes a network with no endpoints: its bridge and its rules.
    pub async fn remove(&self, name: &str) -> Result<()> {
        let mut st = self.state.lock().await;
        let n = st
            .networks
            .get(name)
            .ok_or_else(|| Error::NoSuchNetwork(name.to_string()))?;
        if !n.endpoints.is_empty() {
            return Err(Error::NetworkInUse {
                network: name.to_string(),
                count: n.endpoints.len(),
            });
        }
        let removed = st.networks.remove(name).expect("checked above");
        st.save(&self.state_path(), Durability::Host)?;
        self.sync_firewall(&st).await?;
        self.forget_realised(&removed.network.bridge);
        self.host.delete_link(&removed.network.bridge).await?;
        info!(network = name, "network removed");
        Ok(())
    }

    /// Connects a container: a veth pair into the bridge, the peer in the
    /// container's namespace as `ifname` with an address and a default
    /// route via the gateway, `lo` up, and its ports published.
    pub async fn attach(&self, req: AttachRequest) -> Result<Endpoint> {
        let span =
            info_span!("network_attach", network = %req.network, container = %req.container_id);
        self.attach_inner(req).instrument(span).await
    }

    async fn attach_inner(&self, req: AttachRequest) -> Result<Endpoint> {
        if !valid_name(&req.container_id, 128) {
            return Err(Error::InvalidContainerId(req.container_id));
        }
        if !valid_ifname(&req.ifname) {
            return Err(Error::InvalidIfname(req.ifname));
        }
        for n in &req.names {
            files::validate_hostname(n)?;
        }
        // Under the lock: the checks, an address, and the endpoint entered
        // at once (so concurrent attaches see its address and ports taken).
        let (ep, plug, network) = {
            let mut st = self.state.lock().await;
            check_ports(&st, &req.container_id, &req.ports)?;
            let ns = st
                .networks
                .get_mut(&req.network)
                .ok_or_else(|| Error::NoSuchNetwork(req.network.clone()))?;
            if ns.endpoints.contains_key(&req.container_id) {
                return Err(Error::AlreadyAttached {
                    container: req.container_id,
                    network: req.network,
                });
            }
            let network = ns.network.clone();
            check_v6_hosts(&req.ports, &network.name, ns.ipam6.is_some())?;
            if let (Some(ip6), None) = (req.ip6, &ns.ipam6) {
                return Err(Error::NoIpv6 {
                    network: network.name.clone(),
                    ip: IpAddr::V6(ip6),
                });
            }
            let ip = match req.ip {
                Some(ip) => {
                    ns.ipam
                        .allocate_exact(&network.name, &req.container_id, ip)?;
                    ip
                }
                None => ns.ipam.allocate(&network.name, &req.container_id)?,
            };
            let ipv6 = match (&mut ns.ipam6, &network.ipv6) {
                (Some(ipam6), Some(c)) => {
                    let got = match req.ip6 {
                        Some(ip6) => ipam6
                            .allocate_exact(&network.name, &req.container_id, ip6)
                            .map(|()| ip6),
                        None => ipam6.allocate(&network.name, &req.container_id),
                    };
                    match got {
                        Ok(ip6) => Some(EndpointV6 {
                            ip: ip6,
                            prefix: c.subnet.prefix(),
                            gateway: c.gateway,
                        }),
                        Err(e) => {
                            ns.ipam.release(ip);
                            return Err(e);
                        }
                    }
                }
                _ => None,
            };
            let mac = req.mac.unwrap_or_else(|| mac_for(ip));
            let ep = Endpoint {
                network: network.name.clone(),
                container_id: req.container_id.clone(),
                names: req.names.clone(),
                ip,
                prefix: network.subnet.prefix(),
                gateway: network.gateway,
                mac: mac_string(mac),
                host_veth: host_veth_name(&network.name, &req.container_id),
                ifname: req.ifname.clone(),
                ports: req.ports.clone(),
                ipv6,
            };
            ns.endpoints.insert(ep.container_id.clone(), ep.clone());
            let plug = Plug {
                bridge: network.bridge.clone(),
                host_veth: ep.host_veth.clone(),
                netns: req.netns.clone(),
                ifname: req.ifname.clone(),
                mac,
                ip,
                prefix: ep.prefix,
                gateway: network.gateway,
                // An internal network leads nowhere: no route out through
                // it (as dockerd gives no gateway there).
                default_route: req.default_route && !network.internal,
                ipv6,
                mtu: network.mtu(),
            };
            (ep, plug, network)
        };
        // Outside the lock: the veth pair and the addresses (netlink), once
        // an earlier veth of the same name is gone.
        self.unplugging.wait(&plug.host_veth).await;
        let plug_once = || async {
            self.realise_network(&network).await?;
            self.host.plug(&plug).await
        };
        let plugged = match plug_once().await {
            Err(Error::LinkNotFound(l)) if l == network.bridge => {
                warn!(bridge = %l, "bridge vanished; making it again");
                self.forget_realised(&l);
                plug_once().await
            }
            other => other,
        };
        let mut st = self.state.lock().await;
        // Detached (or its network removed) while being plugged: undone.
        let still_ours = st
            .networks
            .get(&network.name)
            .and_then(|n| n.endpoints.get(&ep.container_id))
            == Some(&ep);
        // A failed plug removed what it made; after a good one the veth is ours.
        let veth_made = plugged.is_ok();
        let done = match plugged {
            Err(e) => Err(e),
            Ok(()) if !still_ours => Err(Error::NotAttached {
                container: ep.container_id.clone(),
                network: network.name.clone(),
            }),
            Ok(()) => {
                async {
                    self.save_endpoint(&st, &network.name, &ep.container_id)?;
                    self.sync_firewall(&st).await
                }
                .await
            }
        };
        if let Err(e) = done {
            if still_ours {
                let n = st.networks.get_mut(&network.name).expect("present");
                n.endpoints.remove(&ep.container_id);
                n.release(&ep);
            }
            if veth_made {
                let _ = self.host.delete_link(&ep.host_veth).await;
            }
            let _ = self.save_endpoint(&st, &network.name, &ep.container_id);
            let _ = self.sync_firewall(&st).await;
            return Err(e);
        }
        drop(st);
        let ip = ep.ip;
        info!(%ip, veth = %ep.host_veth, "container attached");
        Ok(ep)
    }

    /// Disconnects a container: deletes the host veth (its peer dies with
    /// it), unpublishes its ports and releases its address.
    pub async fn detach(&self, network: &str, container_id: &str) -> Result<()> {
        let veth = self.detach_state(network, container_id).await?;
        let done = self.unplugging.begin(&veth);
        let r = self.host.delete_link(&veth).await;
        if done.is_some() {
            self.unplugging.end(&veth);
        }
        r?;
        info!(network, container = container_id, "container detached");
        Ok(())
    }

    /// Detaches a container whose processes are gone: its endpoint, address
    /// and published ports are released now; its veth (which the kernel
    /// also removes with the namespace) is deleted in the background, so an
    /// exit or a removal does not wait for it. A new attach with the same
    /// veth name waits for that deletion.
    pub async fn detach_exited(&self, network: &str, container_id: &str) -> Result<()>
    where
        H: 'static,
    {
        let veth = self.detach_state(network, container_id).await?;
        let Some(done) = self.unplugging.begin(&veth) else {
            return Ok(());
        };
        drop(done);
        let (host, unplugging) = (self.host.clone(), self.unplugging.clone());
        let container = container_id.to_string();
        tokio::spawn(async move {
            if let Err(e) = host.delete_link(&veth).await {
                warn!(%veth, %container, error = %e, "delete the veth of an exited container");
            }
            unplugging.end(&veth);
        });
        info!(network, container = container_id, "container detached");
        Ok(())
    }

    /// The state half of a detach, under the lock: the endpoint, its address
    /// and rules. Returns the host veth to delete.
    async fn detach_state(&self, network: &str, container_id: &str) -> Result<String> {
        let mut st = self.state.lock().await;
        let n = st
            .networks
            .get_mut(network)
            .ok_or_else(|| Error::NoSuchNetwork(network.to_string()))?;
        let ep = n
            .endpoints
            .remove(container_id)
            .ok_or_else(|| Error::NotAttached {
                container: container_id.to_string(),
                network: network.to_string(),
            })?;
        n.release(&ep);
        self.save_endpoint(&st, network, container_id)?;
        self.sync_firewall(&st).await?;
        Ok(ep.host_veth)
    }

    /// Replaces the ports a container publishes on `network` (an empty
    /// list unpublishes them all); other containers' rules stay as they are.
    pub async fn publish(
        &self,
        network: &str,
        container_id: &str,
        ports: Vec<PortMapping>,
    ) -> Result<()> {
        let mut st = self.state.lock().await;
        check_ports(&st, container_id, &ports)?;
        let n = st
            .networks
            .get_mut(network)
            .ok_or_else(|| Error::NoSuchNetwork(network.to_string()))?;
        check_v6_hosts(&ports, network, n.ipam6.is_some())?;
        let ep = n
            .endpoints
            .get_mut(container_id)
            .ok_or_else(|| Error::NotAttached {
                container: container_id.to_string(),
                network: network.to_string(),
            })?;
        let old = std::mem::replace(&mut ep.ports, ports);
        let done = async {
            self.save_endpoint(&st, network, container_id)?;
            self.sync_firewall(&st).await
        }
        .await;
        if let Err(e) = done {
            if let Some(ep) = st
                .networks
                .get_mut(network)
                .and_then(|n| n.endpoints.get_mut(container_id))
            {
                ep.ports = old;
            }
            let _ = self.save_endpoint(&st, network, container_id);
            return Err(e);
        }
        Ok(())
    }

    /// The container's /etc/hosts, /etc/resolv.conf and /etc/hostname for
    /// its endpoint on `network`; `host_resolv` is the host's resolv.conf
    /// content (see [`files::host_resolv_conf_path`]). On user-defined
    /// networks /etc/hosts names the other containers too.
    pub async fn container_files(
        &self,
        network: &str,
        container_id: &str,
        hostname: &str,
        host_resolv: &str,
    ) -> Result<ContainerFiles> {
        let st = self.state.lock().await;
        let n = st
            .networks
            .get(network)
            .ok_or_else(|| Error::NoSuchNetwork(network.to_string()))?;
        let ep = n
            .endpoints
            .get(container_id)
            .ok_or_else(|| Error::NotAttached {
                container: container_id.to_string(),
                network: network.to_string(),
            })?;
        let mut names = vec![hostname.to_string()];
        names.extend(ep.names.iter().filter(|x| *x != hostname).cloned());
        let own = host_entries(ep, &names);
        let peers: Vec<HostEntry> = if n.network.user_defined {
            n.endpoints
                .values()
                .filter(|p| p.container_id != container_id && !p.names.is_empty())
                .flat_map(|p| host_entries(p, &p.names))
                .collect()
        } else {
            Vec::new()
        };
        Ok(ContainerFiles {
            hosts: files::hosts(&own, &peers)?,
            resolv_conf: if n.network.user_defined {
                files::resolv_conf_embedded(n.network.gateway, host_resolv)
            } else {
                files::resolv_conf(host_resolv)
            },
            hostname: files::hostname(hostname)?,
        })
    }
}

/// The /etc/hosts lines of an endpoint: its IPv4 address, then its IPv6
/// address on a dual-stack network, each with `names`.
fn host_entries(ep: &Endpoint, names: &[String]) -> Vec<HostEntry> {
    let mut v = vec![HostEntry {
        ip: IpAddr::V4(ep.ip),
        names: names.to_vec(),
    }];
    if let Some(v6) = &ep.ipv6 {
        v.push(HostEntry {
            ip: IpAddr::V6(v6.ip),
            names: names.to_vec(),
        });
    }
    v
}

/// The bridge's IPv6 address of a dual-stack network.
fn bridge_v6(n: &Network) -> Option<(Ipv6Addr, u8)> {
    n.ipv6.as_ref().map(|c| (c.gateway, c.subnet.prefix()))
}

impl NetworkState {
    /// Gives back the addresses of `ep` (both families).
    fn release(&mut self, ep: &Endpoint) {
        self.ipam.release(ep.ip);
        if let (Some(ipam6), Some(v6)) = (&mut self.ipam6, &ep.ipv6) {
            ipam6.release(v6.ip);
        }
    }
}

/// Refuses mappings on an IPv6 host address that NAT cannot forward: to a
/// container without an IPv6 address (a network without `--ipv6`), or
/// from the IPv6 loopback, which the kernel never routes off `lo`.
fn check_v6_hosts(ports: &[PortMapping], network: &str, dual_stack: bool) -> Result<()> {
    for p in ports {
        let Some(IpAddr::V6(ip)) = p.host_ip else {
            continue;
        };
        let reason = if ip.is_loopback() {
            "the IPv6 loopback address cannot be forwarded by NAT; publish on [::] or another address of this host".to_string()
        } else if !dual_stack {
            format!("network {network} has no IPv6 (create it with --ipv6) to forward an IPv6 host address to")
        } else {
            continue;
        };
        return Err(Error::InvalidPort {
            input: p.to_string(),
            reason,
        });
    }
    Ok(())
}

/// Refuses host ports another container already publishes.
fn check_ports(st: &State, container_id: &str, ports: &[PortMapping]) -> Result<()> {
    for (i, p) in ports.iter().enumerate() {
        if let Some(q) = ports[..i].iter().find(|q| q.conflicts(p)) {
            return Err(Error::PortInUse {
                host_ip: q.host_ip.map_or("*".into(), |ip| ip.to_string()),
                port: q.host_port,
                protocol: q.protocol,
                container: container_id.to_string(),
            });
        }
        for ep in st.endpoints().filter(|e| e.container_id != container_id) {
            if let Some(q) = ep.ports.iter().find(|q| q.conflicts(p)) {
                return Err(Error::PortInUse {
                    host_ip: q.host_ip.map_or("*".into(), |ip| ip.to_string()),
                    port: q.host_port,
                    protocol: q.protocol,
                    container: ep.container_id.clone(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Recorder;

    fn manager(dir: &std::path::Path) -> NetworkManager<Recorder> {
        NetworkManager::with_host(Config::new(dir), Recorder::default()).unwrap()
    }

    fn ns() -> Netns {
        Netns::Path("/run/netns/x".into())
    }

    #[test]
    fn macs_parse_only_as_unicast_hex_pairs() {
        assert_eq!(
            parse_mac("02:42:AC:11:00:02").unwrap(),
            [0x02, 0x42, 0xac, 0x11, 0x00, 0x02]
        );
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:2",
            "01:00:5e:00:00:01",
            "zz:42:ac:11:00:02",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_fixed_mac_and_the_network_meta_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        let mut meta = crate::NetworkMeta::default();
        meta.labels.insert("a".into(), "b".into());
        meta.ip_range = Some("198.18.7.128/25".parse().unwrap());
        let n = m
            .create(NetworkSpec {
                name: "metanet".into(),
                subnet: Some("198.18.7.0/24".parse().unwrap()),
                meta: meta.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(n.meta, meta);
        let mut req = AttachRequest::new("metanet", "c1", ns());
        req.mac = Some([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]);
        let ep = m.attach(req).await.unwrap();
        assert_eq!(ep.mac, "02:42:ac:11:00:02");
        // from the range; its first address is a host address of the subnet
        assert_eq!(ep.ip.to_string(), "198.18.7.128");
        // kept across a restart of the manager
        drop(m);
        let m = manager(dir.path());
        assert_eq!(m.get("metanet").await.unwrap().meta, meta);
    }

    #[tokio::test]
    async fn internal_networks_give_no_default_route_and_mtus_reach_the_plugs() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        for (name, internal, subnet) in [
            ("inner", true, "198.18.8.0/24"),
            ("outer", false, "198.18.9.0/24"),
        ] {
            m.create(NetworkSpec {
                name: name.into(),
                subnet: Some(subnet.parse().unwrap()),
                internal,
                ..Default::default()
            })
            .await
            .unwrap();
            m.attach(AttachRequest::new(name, &format!("c-{name}"), ns()))
                .await
                .unwrap();
        }
        let calls = m.host().calls.lock().unwrap().clone();
        let plug = |net: &str| {
            calls
                .iter()
                .find(|c| c.starts_with("plug") && c.contains(&format!("198.18.{net}.")))
                .cloned()
                .unwrap_or_else(|| panic!("no plug on 198.18.{net}: {calls:?}"))
        };
        assert!(plug("8").contains(" gateway "), "{calls:?}");
        assert!(plug("9").contains(" via "), "{calls:?}");
        assert!(!plug("9").contains(" mtu "), "{calls:?}");
        // A network's MTU option reaches its plugs.
        let mut meta = crate::NetworkMeta::default();
        meta.options
            .insert(crate::state::MTU_OPTION.into(), "1400".into());
        m.create(NetworkSpec {
            name: "small".into(),
            subnet: Some("198.18.10.0/24".parse().unwrap()),
            meta,
            ..Default::default()
        })
        .await
        .unwrap();
        m.attach(AttachRequest::new("small", "c-small", ns()))
            .await
            .unwrap();
        let calls = m.host().calls.lock().unwrap().clone();
        let small = calls
            .iter()
            .find(|c| c.starts_with("plug") && c.contains("198.18.10."))
            .unwrap();
        assert!(small.ends_with(" mtu 1400"), "{small}");
        assert_eq!(crate::state::parse_mtu("9000"), Ok(9000));
        for bad in ["20", "70000", "x"] {
            assert!(crate::state::parse_mtu(bad).unwrap_err().contains(bad));
        }
    }

    #[tokio::test]
    async fn default_network_carves_around_host_routes() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        m.host()
            .routes
            .lock()
            .unwrap()
            .push("10.199.0.0/23".parse().unwrap());
        let n = m.ensure_default().await.unwrap();
        assert_eq!(n.name, "bridge");
        assert_eq!(n.bridge, "strato0");
        assert_eq!(n.subnet.to_string(), "10.199.2.0/24");
        assert_eq!(n.gateway.to_string(), "10.199.2.1");
        assert!(!n.user_defined);
        assert_eq!(
            m.host().calls(),
            [
                "ensure_bridge strato0 10.199.2.1/24",
                "sysctl net/ipv4/ip_forward=1",
                "sysctl net/ipv4/conf/strato0/route_localnet=1",
                "apply_firewall strato",
            ]
        );
        // idempotent
        assert_eq!(m.ensure_default().await.unwrap(), n);
        let u = m
            .create(NetworkSpec {
                name: "u".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(u.subnet.to_string(), "10.199.3.0/24");
        assert_eq!(u.bridge, format!("stb-{:08x}", fnv1a("u")));
    }

    #[tokio::test]
    async fn dual_stack_networks_give_every_container_an_ipv6_address() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        // --ipv6 without a subnet: a /64 of the host's ULA pool, clear of
        // the host's own IPv6 routes
        let first = crate::carve(&m.config.pool6, 64, &[]).unwrap();
        m.host().routes6.lock().unwrap().push(first);
        let carved = m
            .create(NetworkSpec {
                name: "auto6".into(),
                ipv6: Some(Ipv6Spec::default()),
                ..Default::default()
            })
            .await
            .unwrap();
        let c = carved.ipv6.clone().unwrap();
        assert_eq!(
            c.subnet,
            crate::carve(&m.config.pool6, 64, &[first]).unwrap()
        );
        assert_ne!(c.subnet, first);
        assert_eq!(c.gateway, c.subnet.nth(1).unwrap());
        assert!(m.host().calls().contains(&format!(
            "ensure_bridge {} {}/24 {}/64",
            carved.bridge, carved.gateway, c.gateway
        )));
        assert!(m
            .host()
            .calls()
            .contains(&"sysctl net/ipv6/conf/all/forwarding=1".to_string()));
        // a given subnet, range and gateway (docker-py's)
        let n = m
            .create(NetworkSpec {
                name: "six".into(),
                subnet: Some("198.18.6.0/24".parse().unwrap()),
                ipv6: Some(Ipv6Spec {
                    subnet: Some("2001:389::/64".parse().unwrap()),
                    gateway: Some("2001:389::ffff".parse().unwrap()),
                    ip_range: Some("2001:389::/96".parse().unwrap()),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut r = AttachRequest::new("six", "c1", ns());
        r.names = vec!["web".into()];
        let ep = m.attach(r).await.unwrap();
        let v6 = ep.ipv6.unwrap();
        assert_eq!(v6.ip.to_string(), "2001:389::1");
        assert_eq!(
            (v6.prefix, v6.gateway.to_string().as_str()),
            (64, "2001:389::ffff")
        );
        assert!(m.host().calls().iter().any(|c| c.starts_with("plug")
            && c.ends_with("198.18.6.2/24 via 198.18.6.1 2001:389::1/64 2001:389::ffff")));
        let mut r = AttachRequest::new("six", "c2", ns());
        r.names = vec!["db".into()];
        r.ip6 = Some("2001:389::f00d".parse().unwrap());
        let ep2 = m.attach(r.clone()).await.unwrap();
        assert_eq!(ep2.ipv6.unwrap().ip.to_string(), "2001:389::f00d");
        // the same static address again: refused, and nothing is held
        r.container_id = "c3".into();
        let e = m.attach(r).await.unwrap_err().to_string();
        assert!(e.contains("in use by \"c2\""), "{e}");
        assert_eq!(m.endpoints("six").await.unwrap().len(), 2);
        let f = m.container_files("six", "c1", "web", "").await.unwrap();
        assert!(
            f.hosts.ends_with(
                "198.18.6.2\tweb\n2001:389::1\tweb\n198.18.6.3\tdb\n2001:389::f00d\tdb\n"
            ),
            "{}",
            f.hosts
        );
        // an IPv6 address on an IPv4-only network: a clear error, no address held
        m.ensure_default().await.unwrap();
        let mut r = AttachRequest::new("bridge", "c4", ns());
        r.ip6 = Some("fd00::5".parse().unwrap());
        let e = m.attach(r).await.unwrap_err();
        assert!(matches!(e, Error::NoIpv6 { .. }), "{e}");
        assert!(e.to_string().contains("--ipv6"), "{e}");
        let ep4 = m
            .attach(AttachRequest::new("bridge", "c4", ns()))
            .await
            .unwrap();
        assert!(ep4.ipv6.is_none());
        assert_eq!(
            ep4.ip,
            m.get("bridge").await.unwrap().subnet.nth(2).unwrap()
        );
        // detaching frees the IPv6 address too; state survives a restart
        m.detach("six", "c2").await.unwrap();
        drop(m);
        let m = manager(dir.path());
        assert_eq!(m.get("six").await.unwrap(), n);
        let mut r = AttachRequest::new("six", "c5", ns());
        r.ip6 = Some("2001:389::f00d".parse().unwrap());
        m.attach(r).await.unwrap();
        let fw = m.host().firewall.lock().unwrap().clone().unwrap().1;
        assert!(fw.contains("ip6 saddr 2001:389::/64 oifname"), "{fw}");
    }

    #[tokio::test]
    async fn the_daemon_can_make_the_default_network_dual_stack() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path());
        config.default_ipv6 = Some(Some("fd00:d::/64".parse().unwrap()));
        let m = NetworkManager::with_host(config, Recorder::default()).unwrap();
        let n = m.ensure_default().await.unwrap();
        let v6 = n.ipv6.unwrap();
        assert_eq!(v6.subnet.to_string(), "fd00:d::/64");
        assert_eq!(v6.gateway.to_string(), "fd00:d::1");
        let ep = m
            .attach(AttachRequest::new("bridge", "c1", ns()))
            .await
            .unwrap();
        assert_eq!(ep.ipv6.unwrap().ip.to_string(), "fd00:d::2");
        // --ipv6 alone: a /64 of the host's pool
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path());
        config.default_ipv6 = Some(None);
        let pool = config.pool6;
        let m = NetworkManager::with_host(config, Recorder::default()).unwrap();
        let v6 = m.ensure_default().await.unwrap().ipv6.unwrap();
        assert!(
            pool.covers(&v6.subnet) && v6.subnet.prefix() == 64,
            "{v6:?}"
        );
    }

    #[tokio::test]
    async fn bad_ipv6_settings_are_refused_and_nothing_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        m.create(NetworkSpec {
            name: "a".into(),
            ipv6: Some(Ipv6Spec {
                subnet: Some("fd00:1::/64".parse().unwrap()),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
        let calls = m.host().calls().len();
        let spec = |v6: Ipv6Spec| NetworkSpec {
            name: "b".into(),
            ipv6: Some(v6),
            ..Default::default()
        };
        let sub = |s: &str| Ipv6Spec {
            subnet: Some(s.parse().unwrap()),
            ..Default::default()
        };
        for (v6, want) in [
            (sub("fd00:1::/48"), "overlaps fd00:1::/64 of network \"a\""),
            (sub("ff02::/64"), "unicast prefix"),
            (sub("fc00::/8"), "unicast prefix"),
            (sub("fd00:2::/127"), "too small"),
            (
                Ipv6Spec {
                    gateway: Some("fd00:3::1".parse().unwrap()),
                    ..sub("fd00:2::/64")
                },
                "not a usable host address",
            ),
            (
                Ipv6Spec {
                    ip_range: Some("fd00:3::/96".parse().unwrap()),
                    ..sub("fd00:2::/64")
                },
                "not inside subnet",
            ),
            (
                Ipv6Spec {
                    ip_range: Some("fd00:3::/96".parse().unwrap()),
                    ..Default::default()
                },
                "need an IPv6 subnet",
            ),
        ] {
            let e = m.create(spec(v6)).await.unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        assert_eq!(m.list().await.len(), 1);
        assert_eq!(m.host().calls().len(), calls, "{:?}", m.host().calls());
    }

    #[tokio::test]
    async fn create_refuses_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        let spec = |name: &str, subnet: &str| NetworkSpec {
            name: name.into(),
            subnet: Some(subnet.parse().unwrap()),
            ..Default::default()
        };
        m.create(spec("a", "198.18.0.0/24")).await.unwrap();
        let e = m.create(spec("a", "198.18.1.0/24")).await.unwrap_err();
        assert!(matches!(e, Error::NetworkExists(_)), "{e}");
        let e = m.create(spec("b", "198.18.0.128/25")).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "subnet 198.18.0.128/25 overlaps 198.18.0.0/24 of network \"a\"; choose a disjoint subnet"
        );
        let e = m.create(spec("../x", "198.18.2.0/24")).await.unwrap_err();
        assert!(matches!(e, Error::InvalidName(_)), "{e}");
        for bad in [" x", "x ", "a\"b"] {
            let e = m.create(spec(bad, "198.18.2.0/24")).await.unwrap_err();
            assert!(matches!(e, Error::InvalidName(_)), "{bad:?}: {e}");
        }
        m.create(spec("test 01", "198.18.2.0/24")).await.unwrap();
        m.remove("test 01").await.unwrap();
        let mut s = spec("c", "198.18.3.0/24");
        s.bridge = Some("way-too-long-bridge".into());
        assert!(matches!(
            m.create(s).await.unwrap_err(),
            Error::InvalidBridgeName(_)
        ));
        let mut s = spec("c", "198.18.3.0/24");
        s.gateway = Some("198.18.4.1".parse().unwrap());
        assert!(matches!(
            m.create(s).await.unwrap_err(),
            Error::GatewayOutsideSubnet { .. }
        ));
        assert_eq!(m.list().await.len(), 1);
    }

    #[tokio::test]
    async fn attach_detach_persist_and_release() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        m.create(NetworkSpec {
            name: "n".into(),
            subnet: Some("198.18.9.0/29".parse().unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
        let mut req = AttachRequest::new("n", "c1", ns());
        req.names = vec!["web".into()];
        req.ports = vec!["8080:80".parse().unwrap()];
        let ep = m.attach(req.clone()).await.unwrap();
        assert_eq!(ep.ip.to_string(), "198.18.9.2");
        assert_eq!(ep.mac, "02:53:c6:12:09:02");
        assert_eq!(ep.gateway.to_string(), "198.18.9.1");
        assert_eq!(ep.host_veth, host_veth_name("n", "c1"));
        assert!(m.host().calls().contains(&format!(
            "plug {} {} /run/netns/x:eth0 198.18.9.2/29 via 198.18.9.1",
            ep_bridge(&m).await,
            ep.host_veth
        )));
        let fw = m.host().firewall.lock().unwrap().clone().unwrap().1;
        assert!(
            fw.contains("tcp dport 8080 dnat to 198.18.9.2:80 comment \"n/c1\""),
            "{fw}"
        );

        let e = m.attach(req.clone()).await.unwrap_err();
        assert!(matches!(e, Error::AlreadyAttached { .. }), "{e}");
        let mut r2 = AttachRequest::new("n", "c2", ns());
        r2.ports = vec!["127.0.0.1:8080:81".parse().unwrap()];
        let e = m.attach(r2.clone()).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "host port 8080/tcp on * is already published by container \"c1\"; choose another host port"
        );

        // a restarted daemon sees the same assignments
        drop(m);
        let m = manager(dir.path());
        assert_eq!(m.endpoints("n").await.unwrap(), std::slice::from_ref(&ep));
        r2.ports.clear();
        let ep2 = m.attach(r2).await.unwrap();
        assert_eq!(ep2.ip.to_string(), "198.18.9.3");

        m.detach("n", "c1").await.unwrap();
        assert!(m
            .host()
            .calls()
            .contains(&format!("delete_link {}", ep.host_veth)));
        let fw = m.host().firewall.lock().unwrap().clone().unwrap().1;
        assert!(!fw.contains("n/c1"), "{fw}");
        let e = m.detach("n", "c1").await.unwrap_err();
        assert!(matches!(e, Error::NotAttached { .. }), "{e}");
        let e = m.remove("n").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "network \"n\" still has 1 attached container(s); detach them first"
        );
        m.detach("n", "c2").await.unwrap();
        m.remove("n").await.unwrap();
        let fw = m.host().firewall.lock().unwrap().clone().unwrap().1;
        assert_eq!(
            fw,
            "table ip strato\ndelete table ip strato\ntable ip6 strato\ndelete table ip6 strato\n"
        );
        assert!(m.list().await.is_empty());
    }

    async fn ep_bridge(m: &NetworkManager<Recorder>) -> String {
        m.get("n").await.unwrap().bridge
    }

    /// An exited container's veth goes in the background; its address is
    /// free at once, and attaching the same container again (a restart)
    /// plugs a new veth only after the old one is deleted.
    #[tokio::test]
    async fn detach_exited_frees_now_and_a_reattach_waits_for_the_old_veth() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        m.create(NetworkSpec {
            name: "n".into(),
            subnet: Some("198.18.9.0/30".parse().unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
        // A /30 has one container address: it must be free again at once.
        let ep = m.attach(AttachRequest::new("n", "c1", ns())).await.unwrap();
        m.detach_exited("n", "c1").await.unwrap();
        assert!(m.endpoints("n").await.unwrap().is_empty());
        let again = m.attach(AttachRequest::new("n", "c1", ns())).await.unwrap();
        assert_eq!(again.ip, ep.ip);
        assert_eq!(again.host_veth, ep.host_veth);
        let calls = m.host().calls();
        let deleted = calls
            .iter()
            .position(|c| *c == format!("delete_link {}", ep.host_veth))
            .expect("the old veth was deleted");
        let plugged = calls
            .iter()
            .rposition(|c| c.starts_with("plug") && c.contains(&ep.host_veth))
            .expect("plugged again");
        assert!(deleted < plugged, "{calls:?}");
        let e = m.detach_exited("n", "c1").await;
        assert!(e.is_ok());
        let e = m.detach_exited("n", "c1").await.unwrap_err();
        assert!(matches!(e, Error::NotAttached { .. }), "{e}");
    }

    #[tokio::test]
    async fn exhaustion_and_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        m.create(NetworkSpec {
            name: "n".into(),
            subnet: Some("198.18.9.0/30".parse().unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
        // a failed plug releases the address and records nothing
        m.host().fail_on("plug");
        assert!(m.attach(AttachRequest::new("n", "c1", ns())).await.is_err());
        assert!(m.endpoints("n").await.unwrap().is_empty());
        // a failed firewall update (ports change the rules) undoes the veth too
        m.host().fail_on("apply_firewall");
        let mut published = AttachRequest::new("n", "c1", ns());
        published.ports = vec!["8080:80".parse().unwrap()];
        assert!(m.attach(published).await.is_err());
        assert!(m.endpoints("n").await.unwrap().is_empty());
        assert!(!m
            .host()
            .links
            .lock()
            .unwrap()
            .contains(&host_veth_name("n", "c1")));
        m.attach(AttachRequest::new("n", "c1", ns())).await.unwrap();
        let e = m
            .attach(AttachRequest::new("n", "c2", ns()))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "network \"n\" (198.18.9.0/30) has no free address left; detach containers or create the network with a larger subnet"
        );
    }

    #[tokio::test]
    async fn restore_drops_endpoints_whose_veth_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        m.ensure_default().await.unwrap();
        m.attach(AttachRequest::new("bridge", "gone", ns()))
            .await
            .unwrap();
        m.attach(AttachRequest::new("bridge", "alive", ns()))
            .await
            .unwrap();
        m.host()
            .links
            .lock()
            .unwrap()
            .remove(&host_veth_name("bridge", "gone"));
        m.restore().await.unwrap();
        let eps = m.endpoints("bridge").await.unwrap();
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].container_id, "alive");
    }

    #[tokio::test]
    async fn container_files_name_peers_on_user_networks_only() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        m.ensure_default().await.unwrap();
        m.create(NetworkSpec {
            name: "app".into(),
            subnet: Some("198.18.5.0/24".parse().unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
        for (net, id, name) in [
            ("app", "c1", "web"),
            ("app", "c2", "db"),
            ("bridge", "c1", "web"),
            ("bridge", "c3", "x"),
        ] {
            let mut r = AttachRequest::new(net, id, ns());
            r.names = vec![name.into()];
            m.attach(r).await.unwrap();
        }
        let f = m
            .container_files("app", "c1", "web", "nameserver 127.0.0.53\n")
            .await
            .unwrap();
        assert!(
            f.hosts.ends_with("198.18.5.2\tweb\n198.18.5.3\tdb\n"),
            "{}",
            f.hosts
        );
        assert_eq!(f.hostname, "web\n");
        assert_eq!(f.resolv_conf, "nameserver 198.18.5.1\noptions ndots:0\n");
        let f = m
            .container_files("bridge", "c1", "web", "nameserver 127.0.0.53\n")
            .await
            .unwrap();
        assert_eq!(f.resolv_conf, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        let f = m.container_files("bridge", "c1", "web", "").await.unwrap();
        assert!(!f.hosts.contains("\tx\n"), "{}", f.hosts);
        let e = m
            .attach({
                let mut r = AttachRequest::new("app", "c9", ns());
                r.names = vec!["bad name".into()];
                r
            })
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidHostname(_)), "{e}");
    }
    #[tokio::test]
    async fn unchanged_rules_are_not_reapplied() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        m.ensure_default().await.unwrap();
        let applies = |m: &NetworkManager<Recorder>| {
            m.host()
                .calls()
                .iter()
                .filter(|c| c.starts_with("apply_firewall"))
                .count()
        };
        assert_eq!(applies(&m), 1);
        // Endpoints without published ports leave the rules as they are.
        m.attach(AttachRequest::new("bridge", "c1", ns()))
            .await
            .unwrap();
        m.detach("bridge", "c1").await.unwrap();
        assert_eq!(applies(&m), 1);
        // Publishing changes them, and unpublishing changes them back.
        let mut req = AttachRequest::new("bridge", "c2", ns());
        req.ports = vec!["8080:80".parse().unwrap()];
        m.attach(req).await.unwrap();
        assert_eq!(applies(&m), 2);
        assert!(m
            .host()
            .firewall
            .lock()
            .unwrap()
            .clone()
            .unwrap()
            .1
            .contains("dnat"));
        m.detach("bridge", "c2").await.unwrap();
        assert_eq!(applies(&m), 3);
        // After a failure nothing is assumed: the next change reapplies.
        m.host().fail_on("apply_firewall");
        let mut req = AttachRequest::new("bridge", "c3", ns());
        req.ports = vec!["8081:80".parse().unwrap()];
        assert!(m.attach(req).await.is_err());
        m.attach(AttachRequest::new("bridge", "c4", ns()))
            .await
            .unwrap();
        assert_eq!(applies(&m), 5);
        // Restore applies whatever was there before.
        m.restore().await.unwrap();
        assert_eq!(applies(&m), 6);
    }

    #[tokio::test]
    async fn concurrent_attaches_get_distinct_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let m = std::sync::Arc::new(manager(dir.path()));
        m.ensure_default().await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let m = m.clone();
            tasks.push(tokio::spawn(async move {
                m.attach(AttachRequest::new("bridge", &format!("c{i}"), ns()))
                    .await
                    .unwrap()
            }));
        }
        let mut ips = std::collections::BTreeSet::new();
        for t in tasks {
            ips.insert(t.await.unwrap().ip);
        }
        assert_eq!(ips.len(), 16);
        assert_eq!(m.endpoints("bridge").await.unwrap().len(), 16);
        // The state file has them all.
        let saved = State::load(&dir.path().join("network.json")).unwrap();
        assert_eq!(saved.endpoints().count(), 16);
    }

    #[tokio::test]
    async fn endpoint_changes_go_to_a_journal_that_is_folded_in_when_long() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        m.ensure_default().await.unwrap();
        let path = dir.path().join("network.json");
        let journal = crate::state::journal_path(&path);
        let whole = || std::fs::metadata(&path).unwrap().modified().unwrap();
        m.attach(AttachRequest::new("bridge", "keep", ns()))
            .await
            .unwrap();
        let before = whole();
        let mut longest = 0;
        for i in 0..150 {
            let id = format!("c{i}");
            m.attach(AttachRequest::new("bridge", &id, ns()))
                .await
                .unwrap();
            m.detach_exited("bridge", &id).await.unwrap();
            let lines = std::fs::read_to_string(&journal)
                .map(|t| t.lines().count())
                .unwrap_or(0);
            longest = longest.max(lines);
            // What a restarted daemon would load is what runs now.
            assert_eq!(
                State::load(&path).unwrap(),
                *m.state.lock().await,
                "after {id}"
            );
        }
        // Folded into the file whole when it grew past 2 × endpoints + 64.
        assert!(longest <= 2 + 64, "{longest}");
        assert_ne!(whole(), before);
        let saved = State::load(&path).unwrap();
        assert_eq!(saved.endpoints().count(), 1);
        assert_eq!(saved.networks["bridge"].ipam.allocated().len(), 1);
        // A later whole save (a network change) leaves no journal.
        m.create(NetworkSpec {
            name: "other".into(),
            subnet: Some("198.18.99.0/24".parse().unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
        assert!(!journal.exists());
    }

    #[tokio::test]
    async fn a_detach_during_the_plug_wins() {
        let dir = tempfile::tempdir().unwrap();
        let m = std::sync::Arc::new(manager(dir.path()));
        m.ensure_default().await.unwrap();
        // Hold the plug until the endpoint has been detached.
        m.host().hold_plugs(true);
        let attach = {
            let m = m.clone();
            tokio::spawn(async move { m.attach(AttachRequest::new("bridge", "c1", ns())).await })
        };
        while m.endpoints("bridge").await.unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        m.detach("bridge", "c1").await.unwrap();
        m.host().hold_plugs(false);
        let e = attach.await.unwrap().unwrap_err();
        assert!(matches!(e, Error::NotAttached { .. }), "{e}");
        assert!(m.endpoints("bridge").await.unwrap().is_empty());
        assert!(!m
            .host()
            .links
            .lock()
            .unwrap()
            .contains(&host_veth_name("bridge", "c1")));
    }
    #[tokio::test]
    async fn a_vanished_bridge_is_made_again_at_attach() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        m.ensure_default().await.unwrap();
        m.attach(AttachRequest::new("bridge", "c1", ns()))
            .await
            .unwrap();
        let bridges = |m: &NetworkManager<Recorder>| {
            m.host()
                .calls()
                .iter()
                .filter(|c| c.starts_with("ensure_bridge"))
                .count()
        };
        // Known to exist: not looked at again.
        assert_eq!(bridges(&m), 1);
        m.host().links.lock().unwrap().remove("strato0");
        m.attach(AttachRequest::new("bridge", "c2", ns()))
            .await
            .unwrap();
        assert_eq!(bridges(&m), 2);
        assert!(m.host().links.lock().unwrap().contains("strato0"));
        assert_eq!(m.endpoints("bridge").await.unwrap().len(), 2);
    }
}
