//! The crate's error type.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::Protocol;

/// Everything that can go wrong in strato's container networking. Each
/// message names the input that failed and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid subnet {input:?}: {reason}; write it in CIDR form, like 10.199.3.0/24")]
    InvalidSubnet { input: String, reason: String },

    #[error("invalid port mapping {input:?}: {reason}; write it as [ip:]hostPort:containerPort[/tcp|udp]")]
    InvalidPort { input: String, reason: String },

    #[error("invalid network name {0:?}: use 1 to 64 characters of letters, digits, '_', '.', '-' and inner spaces, starting with a letter or digit")]
    InvalidName(String),

    #[error("invalid bridge name {0:?}: a Linux interface name has 1 to 15 characters and no '/', ':' or whitespace")]
    InvalidBridgeName(String),

    #[error(
        "invalid container id {0:?}: use 1 to 128 characters of letters, digits, '_', '.' and '-'"
    )]
    InvalidContainerId(String),

    #[error("invalid hostname {0:?}: use letters, digits, '-' and '.', at most 253 characters")]
    InvalidHostname(String),

    #[error("invalid interface name {0:?}: a Linux interface name has 1 to 15 characters and no '/', ':' or whitespace")]
    InvalidIfname(String),

    #[error("network {0:?} already exists; pick another name or remove it first")]
    NetworkExists(String),

    #[error("no network named {0:?}; create it first")]
    NoSuchNetwork(String),

    #[error("bridge {bridge:?} is already used by network {network:?}; pick another bridge name")]
    BridgeInUse { bridge: String, network: String },

    #[error(
        "subnet {subnet} overlaps {other_subnet} of network {other:?}; choose a disjoint subnet"
    )]
    SubnetOverlap {
        subnet: String,
        other: String,
        other_subnet: String,
    },

    #[error(
        "subnet {subnet} is too small: a network needs room for a gateway and one container (a /30 in IPv4, a /126 in IPv6, or larger)"
    )]
    SubnetTooSmall { subnet: String },

    #[error("gateway {gateway} is not a usable host address of subnet {subnet}; pick one inside it, not its network or broadcast address")]
    GatewayOutsideSubnet { gateway: IpAddr, subnet: String },

    #[error(
        "invalid MAC address {0:?}: give six hex pairs like 02:42:ac:11:00:02 (a unicast address)"
    )]
    InvalidMac(String),

    #[error(
        "ip range {range} is not inside subnet {subnet}; give an --ip-range within the --subnet"
    )]
    RangeOutsideSubnet { range: String, subnet: String },

    #[error("auxiliary address {ip} is not inside subnet {subnet}; give --aux-address values within the --subnet")]
    AuxAddressOutsideSubnet { ip: IpAddr, subnet: String },

    #[error("address pool {pool} has no free /{prefix} left; configure a larger pool or remove unused networks")]
    PoolExhausted { pool: String, prefix: u8 },

    #[error("network {network:?} ({subnet}) has no free address left; detach containers or create the network with a larger subnet")]
    NoFreeAddress { network: String, subnet: String },

    #[error("address {ip} is not available in network {network:?} ({subnet}): {reason}")]
    AddressUnavailable {
        ip: IpAddr,
        network: String,
        subnet: String,
        reason: String,
    },

    #[error("network {network:?} has no IPv6 subnet, so {ip} cannot be given: create the network with --ipv6 (and an IPv6 --subnet), or leave --ip6 out")]
    NoIpv6 { network: String, ip: IpAddr },

    #[error("IPv6 is not available on this host (no /proc/sys/net/ipv6: the kernel runs without IPv6, e.g. booted with ipv6.disable=1); create the network without --ipv6")]
    Ipv6Unavailable,

    #[error("invalid IPv6 configuration of network {network:?}: {reason}")]
    InvalidIpv6 { network: String, reason: String },

    #[error("container {container:?} is already attached to network {network:?}; detach it first")]
    AlreadyAttached { container: String, network: String },

    #[error("container {container:?} is not attached to network {network:?}")]
    NotAttached { container: String, network: String },

    #[error("network {network:?} still has {count} attached container(s); detach them first")]
    NetworkInUse { network: String, count: usize },

    #[error("host port {port}/{protocol} on {host_ip} is already published by container {container:?}; choose another host port")]
    PortInUse {
        host_ip: String,
        port: u16,
        protocol: Protocol,
        container: String,
    },

    #[error("cannot read network state {path}: {source}")]
    StateRead {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("network state {path} is corrupt: {source}; fix or remove the file (all networks are then forgotten)")]
    StateParse {
        path: PathBuf,
        source: serde_json::Error,
    },

    #[error("cannot write network state {path}: {source}")]
    StateWrite {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot open network namespace {path}: {source}; is the container still running?")]
    Netns {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("netlink: {op} failed: {source}")]
    Netlink {
        op: String,
        source: rtnetlink::Error,
    },

    #[error("netlink: {op} failed: {source}")]
    NetlinkIo { op: String, source: std::io::Error },

    #[error("interface {0:?} not found")]
    LinkNotFound(String),

    #[error("cannot write sysctl {path}: {source}")]
    Sysctl {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("firewall: {0}")]
    Firewall(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
