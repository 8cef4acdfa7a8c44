//! The OS effects of networking behind one narrow trait, [`Host`]: links
//! and addresses through rtnetlink, sysctls through /proc/sys, the firewall
//! through `nft -f -` (or iptables-restore). [`LinuxHost`] is the real
//! implementation, [`Recorder`] a fake that records calls for unit tests.
//!
//! Namespace-specific netlink work never moves a caller's thread: a
//! short-lived `std::thread` enters the container's network namespace, opens
//! a netlink socket there (a socket stays bound to the namespace it was
//! created in) and exits; the socket is then driven on the caller's tokio
//! runtime. Nothing here forks; the firewall tool is spawned as a child
//! process (posix_spawn), which is safe in a multithreaded daemon.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use rtnetlink::packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, InfoVeth, LinkAttribute,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, TokioSocket};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::firewall;
use crate::state::{EndpointV6, State};
use crate::{Ipv4Net, Ipv6Net};

/// Where a container's network namespace is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Netns {
    /// A namespace file: `/proc/<pid>/ns/net`, a bind mount such as
    /// `/run/netns/<name>`.
    Path(PathBuf),
    /// A process in the namespace.
    Pid(u32),
}

impl Netns {
    /// The namespace file.
    pub fn path(&self) -> PathBuf {
        match self {
            Netns::Path(p) => p.clone(),
            Netns::Pid(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
        }
    }
}

/// What [`Host::plug`] creates: a veth pair whose host end joins `bridge`
/// and whose peer appears in `netns` as `ifname`, configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plug {
    pub bridge: String,
    pub host_veth: String,
    pub netns: Netns,
    pub ifname: String,
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// Route everything via `gateway` (the container's first network);
    /// later networks only reach their own subnet.
    pub default_route: bool,
    /// The IPv6 address and gateway on a dual-stack network (the default
    /// IPv6 route too, with `default_route`).
    pub ipv6: Option<EndpointV6>,
    /// The MTU of both ends (the network's `com.docker.network.driver.mtu`);
    /// `None`: the kernel's default.
    pub mtu: Option<u32>,
}

/// The OS effects the network manager needs.
pub trait Host: Send + Sync {
    /// Creates bridge `name` if missing, brings it up and gives it
    /// `gateway/prefix`, and on a dual-stack network the IPv6 `gateway6`
    /// (usable at once: no duplicate address detection).
    fn ensure_bridge(
        &self,
        name: &str,
        gateway: Ipv4Addr,
        prefix: u8,
        gateway6: Option<(Ipv6Addr, u8)>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Deletes link `name` in the host's namespace; `false` if it did not exist.
    fn delete_link(&self, name: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Whether link `name` exists in the host's namespace.
    fn link_exists(&self, name: &str) -> impl Future<Output = Result<bool>> + Send;

    /// The IPv4 prefixes routed on the host (to keep new subnets clear of them).
    fn host_routes(&self) -> impl Future<Output = Result<Vec<Ipv4Net>>> + Send;

    /// The IPv6 prefixes routed on the host, link-local and multicast ones
    /// left out (to keep carved IPv6 subnets clear of them).
    fn host_routes6(&self) -> impl Future<Output = Result<Vec<Ipv6Net>>> + Send;

    /// Creates and configures a container's interface; on failure leaves
    /// nothing behind.
    fn plug(&self, plug: &Plug) -> impl Future<Output = Result<()>> + Send;

    /// Writes a sysctl, `key` relative to /proc/sys (`net/ipv4/ip_forward`).
    fn sysctl(&self, key: &str, value: &str) -> Result<()>;

    /// Replaces strato's firewall rules with those for `state`.
    fn apply_firewall(&self, table: &str, state: &State)
        -> impl Future<Output = Result<()>> + Send;
}

/// Which firewall tool [`LinuxHost`] drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirewallBackend {
    /// `nft` if it is on PATH, else iptables.
    Auto,
    Nft,
    Iptables,
}

/// The real host.
#[derive(Debug)]
pub struct LinuxHost {
    backend: FirewallBackend,
    /// Bridge name to interface index, as last looked up: each plug names
    /// its bridge by index, and a lookup is a netlink round trip whose
    /// answer (the whole link) costs more to parse than the rest of the
    /// plug's requests. Forgotten when the link is deleted; an entry gone
    /// stale otherwise (the bridge deleted behind the daemon) fails the
    /// veth's creation, which then looks the bridge up again once. The
    /// kernel hands out interface indexes cyclically, so a stale index
    /// does not name another interface.
    bridges: Mutex<std::collections::HashMap<String, u32>>,
}

impl LinuxHost {
    pub fn new(backend: FirewallBackend) -> Self {
        Self {
            backend,
            bridges: Mutex::default(),
        }
    }

    fn cached_bridge(&self, name: &str) -> Option<u32> {
        self.bridges
            .lock()
            .expect("bridges lock")
            .get(name)
            .copied()
    }

    fn remember_bridge(&self, name: &str, index: Option<u32>) {
        let mut bridges = self.bridges.lock().expect("bridges lock");
        match index {
            Some(i) => bridges.insert(name.to_string(), i),
            None => bridges.remove(name),
        };
    }
}

impl Default for LinuxHost {
    fn default() -> Self {
        Self::new(FirewallBackend::Auto)
    }
}

fn nl(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let op = op.into();
    move |source| Error::Netlink { op, source }
}

fn is_errno(e: &rtnetlink::Error, errno: i32) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -errno)
}

/// Runs `work` with a netlink handle on `socket` (or a new socket in the
/// caller's namespace), driving the connection alongside: no task is
/// spawned, so this works on any tokio runtime with I/O enabled.
/// The destinations (address, prefix length) of the host's routes that
/// `query` lists, default routes left out.
async fn route_destinations(
    query: rtnetlink::packet_route::route::RouteMessage,
    what: &'static str,
) -> Result<Vec<(RouteAddress, u8)>> {
    with_netlink(None, |h| async move {
        let routes: Vec<_> = h
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(nl(what))?;
        Ok(routes
            .iter()
            .filter(|r| r.header.destination_prefix_length > 0)
            .filter_map(|r| {
                r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(d) => {
                        Some((d.clone(), r.header.destination_prefix_length))
                    }
                    _ => None,
                })
            })
            .collect())
    })
    .await
}

async fn with_netlink<T, F, Fut>(socket: Option<Socket>, work: F) -> Result<T>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let io = |source| Error::NetlinkIo {
        op: "opening a netlink socket".into(),
        source,
    };
    let socket = match socket {
        Some(s) => s,
        None => Socket::new(NETLINK_ROUTE).map_err(io)?,
    };
    socket.set_non_blocking(true).map_err(io)?;
    // SAFETY: the descriptor comes from `into_raw_fd` of a socket we own, so
    // ownership passes to the TokioSocket exactly once.
    let socket = unsafe { TokioSocket::from_raw_fd(socket.into_raw_fd()) };
    let (conn, handle, _) = rtnetlink::from_socket(socket);
    tokio::select! {
        r = work(handle) => r,
        () = conn => Err(Error::NetlinkIo {
            op: "netlink connection".into(),
            source: std::io::Error::other("closed unexpectedly"),
        }),
    }
}

/// Opens a netlink socket inside the network namespace `ns` from a
/// short-lived thread, after writing `sysctls` (keys relative to
/// /proc/sys, whose `net` part is that of the writer's namespace) there,
/// IPv6 first turned off on `no_ipv6_on`. The caller's thread never
/// changes namespace.
async fn socket_in(
    ns: &Netns,
    sysctls: Vec<(String, String)>,
    no_ipv6_on: Option<String>,
) -> Result<Socket> {
    let path = ns.path();
    let file = std::fs::File::open(&path).map_err(|source| Error::Netns {
        path: path.clone(),
        source,
    })?;
    let fd = OwnedFd::from(file);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("strato-netns".into())
        .spawn(move || {
            let r = nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)
                .and_then(|()| {
                    if let Some(name) = &no_ipv6_on {
                        // Born with IPv6 off in a namespace made by
                        // `interfaces_born_without_ipv6`: no write, which
                        // would spin while any other start holds the rtnl lock.
                        if ipv6_conf(name, "disable_ipv6").as_deref() != Some("1") {
                            write_disable_ipv6(name)?;
                        }
                    }
                    restore_ipv6_default()?;
                    for (key, value) in &sysctls {
                        let path = Path::new("/proc/sys").join(key);
                        std::fs::write(&path, value).map_err(|e| {
                            std::io::Error::new(
                                e.kind(),
                                format!("writing {value} to {} there: {e}", path.display()),
                            )
                        })?;
                    }
                    Socket::new(NETLINK_ROUTE)
                });
            let _ = tx.send(r);
            // the thread ends here, taking its namespace with it
        })
        .map_err(|source| Error::Netns {
            path: path.clone(),
            source,
        })?;
    let r = rx.await;
    let _ = thread.join();
    match r {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(source)) => Err(Error::Netns { path, source }),
        Err(_) => Err(Error::Netns {
            path,
            source: std::io::Error::other("namespace thread died"),
        }),
    }
}

async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>> {
    let mut s = handle.link().get().match_name(name.to_string()).execute();
    match s.try_next().await {
        Ok(m) => Ok(m.map(|m| m.header.index)),
        Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
        Err(e) => Err(nl(format!("looking up link {name:?}"))(e)),
    }
}

async fn set_up(handle: &Handle, index: u32, name: &str) -> Result<()> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(nl(format!("setting link {name:?} up")))
}

async fn ensure_address(
    handle: &Handle,
    index: u32,
    name: &str,
    ip: IpAddr,
    prefix: u8,
) -> Result<()> {
    let addrs: Vec<_> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(nl(format!("listing addresses of {name:?}")))?;
    let present = addrs.iter().any(|a| {
        a.header.prefix_len == prefix
            && a.attributes.iter().any(|at| {
                matches!(at, AddressAttribute::Local(x) | AddressAttribute::Address(x) if *x == ip)
            })
    });
    if present {
        return Ok(());
    }
    add_address(handle, index, name, ip, prefix).await
}

/// Adds `ip/prefix` to link `index` (`name` for errors); one there already
/// is no error.
async fn add_address(
    handle: &Handle,
    index: u32,
    name: &str,
    ip: IpAddr,
    prefix: u8,
) -> Result<()> {
    let mut req = handle.address().add(index, ip, prefix);
    if ip.is_ipv6() {
        // No duplicate address detection: the address is ours by IPAM, and
        // a tentative address could not be used for a second or more.
        let m = req.message_mut();
        m.header.flags = AddressHeaderFlags::Nodad;
        m.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(e) if is_errno(&e, libc::EEXIST) => Ok(()),
        Err(e) => Err(nl(format!("adding {ip}/{prefix} to {name:?}"))(e)),
    }
}

/// Inside the container's namespace: lo up, `ifname` up with its address,
/// default route via the gateway.
async fn configure_inside(handle: Handle, p: &Plug) -> Result<()> {
    // By name: no lookup of lo's index.
    handle
        .link()
        .set(LinkUnspec::new_with_name("lo").up().build())
        .execute()
        .await
        .map_err(nl("setting link \"lo\" up"))?;
    let idx = link_index(&handle, &p.ifname)
        .await?
        .ok_or_else(|| Error::LinkNotFound(p.ifname.clone()))?;
    // The interface was just made: it has no address to look for first.
    add_address(&handle, idx, &p.ifname, IpAddr::V4(p.ip), p.prefix).await?;
    set_up(&handle, idx, &p.ifname).await?;
    if let Some(v6) = &p.ipv6 {
        add_address(&handle, idx, &p.ifname, IpAddr::V6(v6.ip), v6.prefix).await?;
    }
    if !p.default_route {
        return Ok(());
    }
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(p.gateway)
        .output_interface(idx)
        .build();
    handle
        .route()
        .add(route)
        .execute()
        .await
        .map_err(nl(format!(
            "adding the default route via {} in the container",
            p.gateway
        )))?;
    let Some(v6) = &p.ipv6 else {
        return Ok(());
    };
    let route = RouteMessageBuilder::<Ipv6Addr>::new()
        .gateway(v6.gateway)
        .output_interface(idx)
        .build();
    handle
        .route()
        .add(route)
        .execute()
        .await
        .map_err(nl(format!(
            "adding the default IPv6 route via {} in the container",
            v6.gateway
        )))
}

/// Turns IPv6 off on interface `name` of the calling thread's network
/// namespace; nothing to do where that namespace has no IPv6.
fn write_disable_ipv6(name: &str) -> std::io::Result<()> {
    let path = Path::new("/proc/sys/net/ipv6/conf")
        .join(name)
        .join("disable_ipv6");
    match std::fs::write(path, "1") {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Makes interfaces added later to the calling thread's (new) network
/// namespace start with IPv6 off, as a container's interface on an
/// IPv4-only network must: call it from the thread that made the namespace,
/// before any interface is added. The container's end of a veth is then born
/// that way; turning IPv6 off on it afterwards was a sysctl write that takes
/// the rtnl lock by `trylock` and restarts the syscall until it gets it,
/// spinning while any other start creates links or addresses (0.6 ms of CPU
/// per start at 8 in parallel). The namespace's default is the one write
/// that takes no lock; [`LinuxHost`]'s plug puts it back once the interface
/// exists. Nothing to do where the namespace has no IPv6.
pub fn interfaces_born_without_ipv6() -> std::io::Result<()> {
    match std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1") {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Gives back the namespace's default that [`interfaces_born_without_ipv6`]
/// changed: the value `lo` was created with (with the namespace, so before
/// that change), for interfaces made in the container later.
fn restore_ipv6_default() -> std::io::Result<()> {
    let default = ipv6_conf("default", "disable_ipv6");
    let lo = ipv6_conf("lo", "disable_ipv6");
    match (default.as_deref(), lo) {
        (Some("1"), Some(lo)) if lo != "1" => {
            std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", lo)
        }
        _ => Ok(()),
    }
}

/// The IPv6 sysctl `key` of interface `name` (or `default`, `all`) in the
/// calling thread's network namespace, trimmed; `None` without IPv6.
fn ipv6_conf(name: &str, key: &str) -> Option<String> {
    let path = Path::new("/proc/sys/net/ipv6/conf").join(name).join(key);
    std::fs::read_to_string(path)
        .ok()
        .map(|v| v.trim().to_string())
}

/// The sysctls of an interface that gets a static IPv6 address: IPv6 on
/// (a host may default it off), no duplicate address detection, no
/// router advertisements (the routes are ours).
fn ipv6_sysctls(ifname: &str) -> Vec<(String, String)> {
    ["disable_ipv6=0", "accept_dad=0", "accept_ra=0"]
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (format!("net/ipv6/conf/{ifname}/{k}"), v.to_string()))
        .collect()
}

impl LinuxHost {
    async fn nft(&self, script: String) -> Result<()> {
        run_with_stdin("nft", &["-f", "-"], script).await
    }

    async fn iptables(&self, table: &str, state: &State) -> Result<()> {
        let prefix = firewall::iptables_prefix(table);
        // Chains of endpoints that no longer publish anything.
        let listing = run_output("iptables", &["-w", "-t", "nat", "-S"]).await?;
        let wanted = firewall::iptables_restore(table, state);
        let stale: Vec<String> = listing
            .lines()
            .filter_map(|l| l.strip_prefix("-N "))
            .filter(|c| {
                c.starts_with(&format!("{prefix}-EP-")) && !wanted.contains(&format!(":{c} "))
            })
            .map(str::to_string)
            .collect();
        if state.networks.is_empty() {
            for (builtin, ours) in firewall::iptables_hooks(table) {
                while run_output("iptables", &["-w", "-t", "nat", "-D", builtin, "-j", &ours])
                    .await
                    .is_ok()
                {}
            }
            let mine: Vec<String> = listing
                .lines()
                .filter_map(|l| l.strip_prefix("-N "))
                .filter(|c| c.starts_with(&format!("{prefix}-")))
                .map(str::to_string)
                .collect();
            for c in &mine {
                run_output("iptables", &["-w", "-t", "nat", "-F", c]).await?;
            }
            for c in &mine {
                run_output("iptables", &["-w", "-t", "nat", "-X", c]).await?;
            }
            return Ok(());
        }
        run_with_stdin("iptables-restore", &["-w", "--noflush"], wanted).await?;
        for (builtin, ours) in firewall::iptables_hooks(table) {
            let check = ["-w", "-t", "nat", "-C", builtin, "-j", &ours];
            if run_output("iptables", &check).await.is_err() {
                run_output("iptables", &["-w", "-t", "nat", "-I", builtin, "-j", &ours]).await?;
            }
        }
        for c in &stale {
            run_output("iptables", &["-w", "-t", "nat", "-F", c]).await?;
            run_output("iptables", &["-w", "-t", "nat", "-X", c]).await?;
        }
        Ok(())
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(tool).is_file())
}

async fn run_with_stdin(tool: &str, args: &[&str], input: String) -> Result<()> {
    let fail = |what: String| Error::Firewall(format!("{tool} {}: {what}", args.join(" ")));
    let mut child = tokio::process::Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            fail(format!(
                "cannot run it ({e}); install the nftables (or iptables) package"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .await
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

async fn run_output(tool: &str, args: &[&str]) -> Result<String> {
    let fail = |what: String| Error::Firewall(format!("{tool} {}: {what}", args.join(" ")));
    let out = tokio::process::Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| fail(format!("cannot run it ({e}); install the iptables package")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(fail(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl Host for LinuxHost {
    async fn ensure_bridge(
        &self,
        name: &str,
        gateway: Ipv4Addr,
        prefix: u8,
        gateway6: Option<(Ipv6Addr, u8)>,
    ) -> Result<()> {
        with_netlink(None, |h| async move {
            let index = match link_index(&h, name).await? {
                Some(i) => i,
                None => {
                    match h.link().add(LinkBridge::new(name).build()).execute().await {
                        Ok(()) => {}
                        Err(e) if is_errno(&e, libc::EEXIST) => {}
                        Err(e) => return Err(nl(format!("creating bridge {name:?}"))(e)),
                    }
                    link_index(&h, name)
                        .await?
                        .ok_or_else(|| Error::LinkNotFound(name.to_string()))?
                }
            };
            ensure_address(&h, index, name, IpAddr::V4(gateway), prefix).await?;
            if let Some((gw6, prefix6)) = gateway6 {
                if !Path::new("/proc/sys/net/ipv6").exists() {
                    return Err(Error::Ipv6Unavailable);
                }
                for (key, value) in ipv6_sysctls(name) {
                    self.sysctl(&key, &value)?;
                }
                ensure_address(&h, index, name, IpAddr::V6(gw6), prefix6).await?;
            }
            // A fixed MAC: a bridge with a kernel-chosen one takes the
            // lowest of its ports' whenever a port comes or goes, and every
            // container's ARP entry for the gateway then goes stale for
            // seconds (DNS and egress through the gateway stall).
            let mac = crate::manager::mac_for(gateway);
            h.link()
                .set(
                    LinkUnspec::new_with_index(index)
                        .address(mac.to_vec())
                        .build(),
                )
                .execute()
                .await
                .map_err(nl(format!("setting the address of bridge {name:?}")))?;
            set_up(&h, index, name).await?;
            self.remember_bridge(name, Some(index));
            Ok(())
        })
        .await
    }

    async fn delete_link(&self, name: &str) -> Result<bool> {
        self.remember_bridge(name, None);
        with_netlink(None, |h| async move {
            let Some(index) = link_index(&h, name).await? else {
                return Ok(false);
            };
            match h.link().del(index).execute().await {
                Ok(()) => Ok(true),
                Err(e) if is_errno(&e, libc::ENODEV) => Ok(false),
                Err(e) => Err(nl(format!("deleting link {name:?}"))(e)),
            }
        })
        .await
    }

    async fn link_exists(&self, name: &str) -> Result<bool> {
        with_netlink(None, |h| async move {
            Ok(link_index(&h, name).await?.is_some())
        })
        .await
    }

    async fn host_routes(&self) -> Result<Vec<Ipv4Net>> {
        let routes = route_destinations(
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            "listing the host's routes",
        )
        .await?;
        Ok(routes
            .into_iter()
            .filter_map(|(dest, len)| match dest {
                RouteAddress::Inet(ip) => Ipv4Net::new(ip, len).ok(),
                _ => None,
            })
            .filter(|n| !n.addr().is_loopback())
            .collect())
    }

    async fn host_routes6(&self) -> Result<Vec<Ipv6Net>> {
        let routes = route_destinations(
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
            "listing the host's IPv6 routes",
        )
        .await?;
        Ok(routes
            .into_iter()
            .filter_map(|(dest, len)| match dest {
                RouteAddress::Inet6(ip) => Ipv6Net::new(ip, len).ok(),
                _ => None,
            })
            .filter(|n| {
                let a = n.addr();
                !a.is_loopback() && !a.is_multicast() && (a.segments()[0] & 0xffc0) != 0xfe80
            })
            .collect())
    }

    async fn plug(&self, p: &Plug) -> Result<()> {
        let ns_file = std::fs::File::open(p.netns.path()).map_err(|source| Error::Netns {
            path: p.netns.path(),
            source,
        })?;
        let ns_fd = std::os::fd::AsRawFd::as_raw_fd(&ns_file);
        // The veth is created with its peer already in the container's
        // namespace under its final name: nothing to move or rename later.
        // An error here made nothing; one in `configured`, after the veth
        // was made, deletes it.
        let configured = with_netlink(None, |h| async move {
            let veth = |bridge: u32| {
                let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
                    .name(p.ifname.clone())
                    .address(p.mac.to_vec())
                    .setns_by_fd(ns_fd);
                let mut host = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
                    .name(p.host_veth.clone())
                    .controller(bridge);
                if let Some(mtu) = p.mtu {
                    peer = peer.mtu(mtu);
                    host = host.mtu(mtu);
                }
                let msg = host
                    .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
                    .build();
                h.link().add(msg).execute()
            };
            let looked_up = || async {
                let index = link_index(&h, &p.bridge)
                    .await?
                    .ok_or_else(|| Error::LinkNotFound(p.bridge.clone()))?;
                self.remember_bridge(&p.bridge, Some(index));
                Ok::<_, Error>(index)
            };
            let made = match self.cached_bridge(&p.bridge) {
                Some(index) => match veth(index).await {
                    // Possibly a stale index: once more with a fresh one.
                    Err(e) if !is_errno(&e, libc::EEXIST) => {
                        self.remember_bridge(&p.bridge, None);
                        veth(looked_up().await?).await
                    }
                    r => r,
                },
                None => veth(looked_up().await?).await,
            };
            made.map_err(nl(format!(
                "creating veth {:?} with peer {:?} in {}",
                p.host_veth,
                p.ifname,
                p.netns.path().display()
            )))?;
            // The veth exists: from here a failure deletes it. Its two ends
            // are set up at once, each over its own socket.
            // A bridge port needs no IPv6 address. Left on, each new port's
            // duplicate address detection and multicast reports went to
            // every other port of the bridge: work in proportion to the
            // containers already running, at every start. The port is set
            // up with no IPv6 address generation, in the same message: the
            // kernel applies it before the link is up, so no address ever
            // exists. (Not disable_ipv6: that sysctl takes the rtnl lock by
            // trylock and restarts until it gets it, spinning while other
            // starts make links.) By name: no lookup of the index.
            let host_end = async {
                let up = || LinkUnspec::new_with_name(&p.host_veth).up();
                let no_addresses = up()
                    .append_extra_attribute(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                        vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
                    )]))
                    .build();
                match h.link().set(no_addresses).execute().await {
                    // A kernel without IPv6 has no addresses to generate.
                    Err(e) if is_errno(&e, libc::EAFNOSUPPORT) => {
                        h.link().set(up().build()).execute().await
                    }
                    r => r,
                }
                .map_err(nl(format!("setting link {:?} up", p.host_veth)))
            };
            let inside = async {
                // On an IPv4-only network the container's interface gets no
                // IPv6 either (as Docker 26+), for the same reason as the
                // host end; a namespace without IPv6 at all has nothing to
                // turn off.
                let socket = if p.ipv6.is_some() {
                    socket_in(&p.netns, ipv6_sysctls(&p.ifname), None).await?
                } else {
                    socket_in(&p.netns, Vec::new(), Some(p.ifname.clone())).await?
                };
                with_netlink(Some(socket), |h| configure_inside(h, p)).await
            };
            let (host_end, inside) = tokio::join!(host_end, inside);
            Ok(host_end.and(inside))
        })
        .await?;
        drop(ns_file);
        if let Err(e) = configured {
            let _ = self.delete_link(&p.host_veth).await;
            return Err(e);
        }
        Ok(())
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = Path::new("/proc/sys").join(key);
        std::fs::write(&path, value).map_err(|source| Error::Sysctl { path, source })
    }

    async fn apply_firewall(&self, table: &str, state: &State) -> Result<()> {
        let use_nft = match self.backend {
            FirewallBackend::Nft => true,
            FirewallBackend::Iptables => false,
            FirewallBackend::Auto => on_path("nft") || !on_path("iptables-restore"),
        };
        if use_nft {
            self.nft(firewall::nft_script(table, state)).await
        } else {
            self.iptables(table, state).await
        }
    }
}

/// A fake [`Host`] that records what was asked of it; failures can be
/// injected with [`Recorder::fail_on`].
#[derive(Debug, Default)]
pub struct Recorder {
    /// One line per call, e.g. `ensure_bridge strato0 10.199.0.1/24`.
    pub calls: Mutex<Vec<String>>,
    /// Links that exist.
    pub links: Mutex<std::collections::BTreeSet<String>>,
    /// Routes the host reports.
    pub routes: Mutex<Vec<Ipv4Net>>,
    /// IPv6 routes the host reports.
    pub routes6: Mutex<Vec<Ipv6Net>>,
    /// The last firewall applied: (table, nft script).
    pub firewall: Mutex<Option<(String, String)>>,
    fail: Mutex<Option<String>>,
    /// While set, `plug` waits (to test what happens meanwhile).
    hold: std::sync::atomic::AtomicBool,
}

impl Recorder {
    /// Makes the next call whose record starts with `prefix` fail.
    pub fn fail_on(&self, prefix: &str) {
        *self.fail.lock().unwrap() = Some(prefix.to_string());
    }

    /// Makes `plug` wait until called again with `false`.
    pub fn hold_plugs(&self, hold: bool) {
        self.hold.store(hold, std::sync::atomic::Ordering::SeqCst);
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn record(&self, call: String) -> Result<()> {
        let mut fail = self.fail.lock().unwrap();
        let failing = fail.as_deref().is_some_and(|f| call.starts_with(f));
        self.calls.lock().unwrap().push(call.clone());
        if failing {
            *fail = None;
            return Err(Error::Firewall(format!("injected failure: {call}")));
        }
        Ok(())
    }
}

impl Host for Recorder {
    async fn ensure_bridge(
        &self,
        name: &str,
        gateway: Ipv4Addr,
        prefix: u8,
        gateway6: Option<(Ipv6Addr, u8)>,
    ) -> Result<()> {
        let v6 = gateway6.map_or(String::new(), |(g, p)| format!(" {g}/{p}"));
        self.record(format!("ensure_bridge {name} {gateway}/{prefix}{v6}"))?;
        self.links.lock().unwrap().insert(name.to_string());
        Ok(())
    }

    async fn delete_link(&self, name: &str) -> Result<bool> {
        self.record(format!("delete_link {name}"))?;
        Ok(self.links.lock().unwrap().remove(name))
    }

    async fn link_exists(&self, name: &str) -> Result<bool> {
        Ok(self.links.lock().unwrap().contains(name))
    }

    async fn host_routes(&self) -> Result<Vec<Ipv4Net>> {
        Ok(self.routes.lock().unwrap().clone())
    }

    async fn host_routes6(&self) -> Result<Vec<Ipv6Net>> {
        Ok(self.routes6.lock().unwrap().clone())
    }

    async fn plug(&self, p: &Plug) -> Result<()> {
        while self.hold.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        if !self.links.lock().unwrap().contains(&p.bridge) {
            return Err(Error::LinkNotFound(p.bridge.clone()));
        }
        let v6 = p.ipv6.map_or(String::new(), |v| {
            format!(" {}/{} {}", v.ip, v.prefix, v.gateway)
        });
        self.record(
            format!(
                "plug {} {} {}:{} {}/{} {} {}{v6}",
                p.bridge,
                p.host_veth,
                p.netns.path().display(),
                p.ifname,
                p.ip,
                p.prefix,
                if p.default_route { "via" } else { "gateway" },
                p.gateway
            ) + &p.mtu.map(|m| format!(" mtu {m}")).unwrap_or_default(),
        )?;
        self.links.lock().unwrap().insert(p.host_veth.clone());
        Ok(())
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.record(format!("sysctl {key}={value}"))
    }

    async fn apply_firewall(&self, table: &str, state: &State) -> Result<()> {
        self.record(format!("apply_firewall {table}"))?;
        *self.firewall.lock().unwrap() =
            Some((table.to_string(), firewall::nft_script(table, state)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netns_paths() {
        assert_eq!(Netns::Pid(42).path(), PathBuf::from("/proc/42/ns/net"));
        assert_eq!(
            Netns::Path("/run/netns/x".into()).path(),
            PathBuf::from("/run/netns/x")
        );
    }

    #[tokio::test]
    async fn recorder_injects_one_failure() {
        let r = Recorder::default();
        r.fail_on("sysctl");
        assert!(r.sysctl("a", "1").is_err());
        assert!(r.sysctl("a", "1").is_ok());
        assert!(r.delete_link("x").await.is_ok());
        assert_eq!(r.calls(), ["sysctl a=1", "sysctl a=1", "delete_link x"]);
    }
}
