//! Container networking of the strato engine: Linux bridge networks, address
//! management, veth endpoints in containers' network namespaces, egress
//! masquerading, published ports, and the per-container `/etc/hosts`,
//! `/etc/resolv.conf` and `/etc/hostname`.
//!
//! The entry point is [`NetworkManager`] (async, tokio): [`NetworkManager::open`]
//! with a [`Config`], then `ensure_default`, `create`, `attach`, `publish`,
//! `detach`, `remove`, `restore` and `container_files`.
//!
//! - Links, addresses and routes go through rtnetlink, never `ip`. Work
//!   inside a container's namespace uses a netlink socket opened there by a
//!   short-lived thread ([`host`]); no caller thread changes namespace and
//!   nothing forks.
//! - The state (networks, address allocations, endpoints, ports) is one
//!   JSON file, `<state_dir>/network.json`, written atomically, with the
//!   endpoint changes since in a journal beside it, `network.json.log`
//!   ([`state`]).
//! - Firewall rules live in their own nftables tables, `ip strato` and
//!   `ip6 strato`, replaced atomically with `nft -f -` on each change
//!   ([`firewall`] shows their shape); without `nft`, iptables chains
//!   `STRATO-*` in the `nat` table (IPv4 only).
//! - A network may be dual-stack (`--ipv6`): its bridge and every container
//!   get an IPv6 address too (without duplicate address detection, so it is
//!   usable at once), with a default IPv6 route via the bridge.
//! - All OS effects sit behind the [`Host`] trait; [`Recorder`] fakes it.
//!
//! Host requirements (Debian packages): `nftables` (or `iptables`) for the
//! firewall. The root integration tests also use `iproute2` (`ip netns` as
//! a fixture) and `iputils-ping`.

pub mod error;
pub mod files;
pub mod firewall;
pub mod host;
pub mod ipam;
mod ipnet;
mod manager;
mod ports;
pub mod state;

pub use error::{Error, Result};
pub use host::{
    interfaces_born_without_ipv6, FirewallBackend, Host, LinuxHost, Netns, Plug, Recorder,
};
pub use ipam::{Ipam, Ipam6};
pub use ipnet::{carve, ula_pool, Family, IpNet, Ipv4Net, Ipv6Net};
pub use manager::{
    host_veth_name, mac_for, parse_mac, AttachRequest, Config, ContainerFiles, Ipv6Spec,
    NetworkManager, NetworkSpec, DEFAULT_BRIDGE, DEFAULT_NETWORK, DEFAULT_POOL,
};
pub use ports::{PortMapping, Protocol};
pub use state::{Endpoint, EndpointV6, Ipv6Config, Network, NetworkMeta};
