//! Root tests on the real host: a bridge network, two network namespaces
//! (made with `ip netns add` as a fixture), ping between them, published
//! ports reached from the host's loopback and from the other namespace, and
//! a clean teardown. All traffic stays inside this machine: the subnet is
//! from the benchmarking range 198.18.0.0/15, and every peer is one of the
//! test's own namespaces.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use strato_network::{
    AttachRequest, Config, FirewallBackend, LinuxHost, Netns, NetworkManager, NetworkSpec,
};

struct NetnsFixture {
    name: String,
}

impl NetnsFixture {
    fn new(name: String) -> Self {
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip (install iproute2)")
            .success();
        assert!(ok, "ip netns add {name}");
        Self { name }
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    fn exec(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("run ip netns exec")
    }
}

impl Drop for NetnsFixture {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `f` on a thread inside the namespace at `ns`.
fn in_netns<T: Send + 'static>(ns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(ns).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// Removes what a failed test left: links and the nft table.
struct Leftovers {
    links: Vec<String>,
    table: String,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for l in &self.links {
            if link_exists(l) {
                let _ = Command::new("ip").args(["link", "del", l]).status();
            }
        }
        for family in ["ip", "ip6"] {
            let _ = Command::new("nft")
                .args(["delete", "table", family, &self.table])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

fn thread_netns() -> PathBuf {
    std::fs::read_link("/proc/thread-self/ns/net").unwrap()
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn nft_table(table: &str) -> Option<String> {
    nft_table_of("ip", table)
}

fn nft_table_of(family: &str, table: &str) -> Option<String> {
    let out = Command::new("nft")
        .args(["list", "table", family, table])
        .output()
        .expect("run nft (install nftables)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn echo(addr: SocketAddr, msg: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(msg.as_bytes()).unwrap();
    let mut buf = vec![0u8; msg.len()];
    s.read_exact(&mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test's own names, told apart by `kind` and this process's id (tests
/// of other runs may share the host): the tag, the network, the nft table
/// and the bridge; and its manager's config in a temporary directory (kept
/// while the last member lives), using that table.
fn setup(kind: &str) -> (String, String, String, String, Config, tempfile::TempDir) {
    let tag = format!("{:05}", std::process::id() % 100_000);
    let table = format!("strato_test_{kind}{tag}");
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.table = table.clone();
    let (name, bridge) = (format!("nettest-{kind}-{tag}"), format!("stb{kind}{tag}"));
    (tag, name, table, bridge, config, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_attach_ping_publish_and_teardown() {
    let pid = std::process::id();
    let (tag, name, table, bridge, config, _dir) = setup("t");
    let third = pid % 256;
    let subnet = format!("198.18.{third}.0/24");
    let m =
        NetworkManager::with_host(config.clone(), LinuxHost::new(FirewallBackend::Nft)).unwrap();
    let before = thread_netns();
    let _leftovers = Leftovers {
        links: vec![
            bridge.clone(),
            strato_network::host_veth_name(&name, "ctr-a"),
            strato_network::host_veth_name(&name, "ctr-b"),
        ],
        table: table.clone(),
    };

    let net = m
        .create(NetworkSpec {
            name: name.clone(),
            bridge: Some(bridge.clone()),
            subnet: Some(subnet.parse().unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(link_exists(&bridge));
    assert_eq!(net.gateway.to_string(), format!("198.18.{third}.1"));
    assert_eq!(
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"))
            .unwrap()
            .trim(),
        "1"
    );

    let a = NetnsFixture::new(format!("strato-nt-{tag}-a"));
    let b = NetnsFixture::new(format!("strato-nt-{tag}-b"));
    // a as the engine makes a container's namespace (interfaces born with
    // IPv6 off), b as `ip netns add` does.
    in_netns(&a.path(), || {
        strato_network::interfaces_born_without_ipv6().unwrap()
    });
    let host_port = free_port();
    let mut ra = AttachRequest::new(&name, "ctr-a", Netns::Path(a.path()));
    ra.names = vec!["alpha".into()];
    ra.ports = vec![format!("{host_port}:8080").parse().unwrap()];
    let ea = m.attach(ra).await.unwrap();
    let mut rb = AttachRequest::new(&name, "ctr-b", Netns::Path(b.path()));
    rb.names = vec!["beta".into()];
    let eb = m.attach(rb).await.unwrap();
    assert_eq!(
        thread_netns(),
        before,
        "the caller's thread changed namespace"
    );
    assert!(link_exists(&ea.host_veth) && link_exists(&eb.host_veth));
    assert_eq!(
        std::fs::read_link(format!("/sys/class/net/{}/master", ea.host_veth))
            .unwrap()
            .file_name()
            .unwrap(),
        bridge.as_str()
    );

    // inside: eth0 with the address and MAC, lo up, default route
    let addr = String::from_utf8(a.exec(&["ip", "-4", "addr", "show", "eth0"]).stdout).unwrap();
    assert!(addr.contains(&format!("inet {}/24", ea.ip)), "{addr}");
    let link = String::from_utf8(a.exec(&["ip", "link", "show", "eth0"]).stdout).unwrap();
    assert!(link.contains(&ea.mac), "{link}");
    let lo = String::from_utf8(a.exec(&["ip", "link", "show", "lo"]).stdout).unwrap();
    assert!(lo.contains("UP"), "{lo}");
    let route =
        String::from_utf8(a.exec(&["ip", "-4", "route", "show", "default"]).stdout).unwrap();
    assert!(
        route.contains(&format!("default via {} dev eth0", ea.gateway)),
        "{route}"
    );

    // IPv6 off on both ends of each veth of this IPv4-only network; in the
    // namespaces, lo and the default (for interfaces made later) keep it.
    let sysctl = |ns: &NetnsFixture, key: &str| {
        let path = format!("/proc/sys/net/ipv6/conf/{key}/disable_ipv6");
        String::from_utf8(ns.exec(&["cat", &path]).stdout)
            .unwrap()
            .trim()
            .to_string()
    };
    for ns in [&a, &b] {
        assert_eq!(sysctl(ns, "eth0"), "1", "{}", ns.name);
        assert_eq!(sysctl(ns, "lo"), "0", "{}", ns.name);
        assert_eq!(sysctl(ns, "default"), "0", "{}", ns.name);
    }
    // The host ends (bridge ports) never get an IPv6 address: no duplicate
    // address detection or multicast reports flooded to the other ports.
    let inet6 = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    for veth in [&ea.host_veth, &eb.host_veth] {
        assert!(
            !inet6
                .lines()
                .any(|l| l.split_whitespace().last() == Some(veth)),
            "{veth} has an IPv6 address:\n{inet6}"
        );
    }

    // ping b → a across the bridge
    let ping = b.exec(&["ping", "-c1", "-W5", &ea.ip.to_string()]);
    assert!(
        ping.status.success(),
        "ping: {}",
        String::from_utf8_lossy(&ping.stdout)
    );

    // an echo server in a, on the container port
    let listener = in_netns(&a.path(), || TcpListener::bind("0.0.0.0:8080").unwrap());
    let server = std::thread::spawn(move || {
        for _ in 0..3 {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap();
            s.write_all(&buf[..n]).unwrap();
        }
    });
    let rules = nft_table(&table).expect("the strato table exists");
    assert!(
        rules.contains(&format!("dnat to {}:8080", ea.ip)),
        "{rules}"
    );
    let (ipa, gw) = (ea.ip, ea.gateway);
    let results = tokio::task::spawn_blocking(move || {
        let from_host = echo(SocketAddr::from(([127, 0, 0, 1], host_port)), "loopback");
        let bpath = PathBuf::from(format!("/run/netns/strato-nt-{tag}-b"));
        let (direct, hairpin) = in_netns(&bpath, move || {
            (
                echo(SocketAddr::from((ipa, 8080)), "direct"),
                echo(SocketAddr::from((gw, host_port)), "hairpin"),
            )
        });
        (from_host, direct, hairpin)
    })
    .await
    .unwrap();
    assert_eq!(
        results,
        ("loopback".into(), "direct".into(), "hairpin".into())
    );
    server.join().unwrap();

    // files for a: its own name and b's
    let files = m
        .container_files(&name, "ctr-a", "alpha", "nameserver 127.0.0.53\n")
        .await
        .unwrap();
    assert!(
        files
            .hosts
            .contains(&format!("{}\talpha\n{}\tbeta\n", ea.ip, eb.ip)),
        "{}",
        files.hosts
    );

    // a restarted manager finds the same state and reinstalls the same rules
    drop(m);
    let m = NetworkManager::with_host(config, LinuxHost::new(FirewallBackend::Nft)).unwrap();
    m.restore().await.unwrap();
    assert_eq!(
        m.endpoints(&name).await.unwrap(),
        vec![ea.clone(), eb.clone()]
    );
    assert_eq!(nft_table(&table).unwrap(), rules);

    // unpublishing removes a's DNAT only
    m.publish(&name, "ctr-a", vec![]).await.unwrap();
    let rules = nft_table(&table).unwrap();
    assert!(!rules.contains("dnat to"), "{rules}");
    assert!(rules.contains("masquerade"), "{rules}");

    m.detach(&name, "ctr-a").await.unwrap();
    m.detach(&name, "ctr-b").await.unwrap();
    assert!(!link_exists(&ea.host_veth) && !link_exists(&eb.host_veth));
    let inside = String::from_utf8(a.exec(&["ip", "link"]).stdout).unwrap();
    assert!(!inside.contains("eth0"), "{inside}");
    m.remove(&name).await.unwrap();
    assert!(!link_exists(&bridge));
    assert_eq!(nft_table(&table), None, "the strato table is gone");
    assert!(m.list().await.is_empty());
}

/// A dual-stack network: both namespaces get an IPv6 address usable at once
/// (no duplicate address detection) and a default IPv6 route, reach each
/// other over IPv6 (ping and TCP), a port published on every address is
/// reached on the bridge's IPv6 address, and teardown leaves no ip6 table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_namespaces_reach_each_other_over_ipv6() {
    let pid = std::process::id();
    let (tag, name, table, bridge, config, _dir) = setup("6");
    let third = (pid + 128) % 256;
    let m = NetworkManager::with_host(config, LinuxHost::new(FirewallBackend::Nft)).unwrap();
    let _leftovers = Leftovers {
        links: vec![
            bridge.clone(),
            strato_network::host_veth_name(&name, "ctr-a"),
            strato_network::host_veth_name(&name, "ctr-b"),
        ],
        table: table.clone(),
    };
    let subnet6 = format!("fd00:5354:{:x}::/64", pid % 65536);
    let net = m
        .create(NetworkSpec {
            name: name.clone(),
            bridge: Some(bridge.clone()),
            subnet: Some(format!("198.18.{third}.0/24").parse().unwrap()),
            ipv6: Some(strato_network::Ipv6Spec {
                subnet: Some(subnet6.parse().unwrap()),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let gw6 = net.ipv6.as_ref().unwrap().gateway;
    // The bridge's prefix is now a host route (kept clear of by carving).
    let routes6 = strato_network::Host::host_routes6(m.host()).await.unwrap();
    assert!(routes6.contains(&subnet6.parse().unwrap()), "{routes6:?}");
    assert!(
        routes6.iter().all(|r| !r.addr().is_multicast()),
        "{routes6:?}"
    );
    let a = NetnsFixture::new(format!("strato-n6-{tag}-a"));
    let b = NetnsFixture::new(format!("strato-n6-{tag}-b"));
    // a as the engine makes a container's namespace (interfaces born with
    // IPv6 off), b as `ip netns add` does.
    in_netns(&a.path(), || {
        strato_network::interfaces_born_without_ipv6().unwrap()
    });
    let host_port = free_port();
    let mut ra = AttachRequest::new(&name, "ctr-a", Netns::Path(a.path()));
    ra.ports = vec![format!("{host_port}:8080").parse().unwrap()];
    let ea = m.attach(ra).await.unwrap();
    let mut rb = AttachRequest::new(&name, "ctr-b", Netns::Path(b.path()));
    rb.ip6 = Some(
        format!("{}f00d", &subnet6[..subnet6.len() - 3])
            .parse()
            .unwrap(),
    );
    let eb = m.attach(rb).await.unwrap();
    let (a6, b6) = (ea.ipv6.unwrap().ip, eb.ipv6.unwrap().ip);
    assert_eq!(b6.segments()[7], 0xf00d);

    let addr = String::from_utf8(a.exec(&["ip", "-6", "addr", "show", "eth0"]).stdout).unwrap();
    assert!(addr.contains(&format!("inet6 {a6}/64")), "{addr}");
    assert!(!addr.contains("tentative"), "{addr}");
    let route =
        String::from_utf8(a.exec(&["ip", "-6", "route", "show", "default"]).stdout).unwrap();
    assert!(
        route.contains(&format!("default via {gw6} dev eth0")),
        "{route}"
    );
    let br = String::from_utf8(
        Command::new("ip")
            .args(["-6", "addr", "show", &bridge])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(br.contains(&format!("inet6 {gw6}/64")), "{br}");

    let ping = b.exec(&["ping", "-6", "-c1", "-W5", &a6.to_string()]);
    assert!(
        ping.status.success(),
        "ping -6: {}{}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );

    let listener = in_netns(&a.path(), || TcpListener::bind("[::]:8080").unwrap());
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap();
            s.write_all(&buf[..n]).unwrap();
        }
    });
    let rules6 = nft_table_of("ip6", &table).expect("the ip6 table exists");
    assert!(rules6.contains(&format!("dnat to [{a6}]:8080")), "{rules6}");
    let bpath = b.path();
    let results = tokio::task::spawn_blocking(move || {
        let direct = in_netns(&bpath, move || {
            echo(SocketAddr::from((a6, 8080)), "over-ipv6")
        });
        let published = echo(SocketAddr::from((gw6, host_port)), "published-v6");
        (direct, published)
    })
    .await
    .unwrap();
    assert_eq!(results, ("over-ipv6".into(), "published-v6".into()));
    server.join().unwrap();

    let files = m.container_files(&name, "ctr-b", "beta", "").await.unwrap();
    assert!(
        files.hosts.contains(&format!("{b6}\tbeta\n")),
        "{}",
        files.hosts
    );

    m.detach(&name, "ctr-a").await.unwrap();
    m.detach(&name, "ctr-b").await.unwrap();
    m.remove(&name).await.unwrap();
    assert!(!link_exists(&bridge));
    assert_eq!(nft_table(&table), None);
    assert_eq!(nft_table_of("ip6", &table), None, "the ip6 table is gone");
}

/// The host remembers a bridge's interface index between plugs: a bridge
/// deleted behind the manager is made again at the next attach, and one
/// deleted and made again by someone else (same name, new index) is the one
/// the next veth joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_replaced_behind_the_manager_is_found_again() {
    let pid = std::process::id();
    let (tag, name, table, bridge, config, _dir) = setup("r");
    let m = NetworkManager::with_host(config, LinuxHost::new(FirewallBackend::Nft)).unwrap();
    let ids = ["ctr-a", "ctr-b", "ctr-c"];
    let _leftovers = Leftovers {
        links: std::iter::once(bridge.clone())
            .chain(ids.iter().map(|c| strato_network::host_veth_name(&name, c)))
            .collect(),
        table: table.clone(),
    };
    m.create(NetworkSpec {
        name: name.clone(),
        bridge: Some(bridge.clone()),
        subnet: Some(format!("198.19.{}.0/24", (pid + 64) % 256).parse().unwrap()),
        ..Default::default()
    })
    .await
    .unwrap();
    let index = || {
        std::fs::read_to_string(format!("/sys/class/net/{bridge}/ifindex"))
            .unwrap()
            .trim()
            .to_string()
    };
    let master = |veth: &str| {
        std::fs::read_link(format!("/sys/class/net/{veth}/master"))
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let ip = |args: &[&str]| {
        assert!(
            Command::new("ip").args(args).status().unwrap().success(),
            "ip {args:?}"
        );
    };
    let ns = NetnsFixture::new(format!("strato-nt-{tag}-r"));
    let first = index();
    let ea = m
        .attach(AttachRequest::new(&name, ids[0], Netns::Path(ns.path())))
        .await
        .unwrap();
    assert_eq!(master(&ea.host_veth), bridge);
    m.detach(&name, ids[0]).await.unwrap();

    // Deleted: made again.
    ip(&["link", "del", &bridge]);
    let eb = m
        .attach(AttachRequest::new(&name, ids[1], Netns::Path(ns.path())))
        .await
        .unwrap();
    assert_eq!(master(&eb.host_veth), bridge);
    let second = index();
    assert_ne!(first, second);
    m.detach(&name, ids[1]).await.unwrap();

    // Replaced by someone else's bridge of the same name: that one is joined.
    ip(&["link", "del", &bridge]);
    ip(&["link", "add", "name", &bridge, "type", "bridge"]);
    let third = index();
    assert_ne!(second, third);
    let ec = m
        .attach(AttachRequest::new(&name, ids[2], Netns::Path(ns.path())))
        .await
        .unwrap();
    assert_eq!(master(&ec.host_veth), bridge);
    assert_eq!(index(), third);
    m.detach(&name, ids[2]).await.unwrap();
    m.remove(&name).await.unwrap();
}

#[test]
fn works_from_a_current_thread_runtime_without_spawning() {
    // The supervisor's case: one thread, a current-thread runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pid = std::process::id();
    let tag = format!("{:05}", pid % 100_000);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.table = format!("strato_test1_{tag}");
    // carve from a test pool instead of giving a subnet
    config.pool = format!("198.19.{}.0/24", pid % 256).parse().unwrap();
    config.subnet_prefix = 28;
    let bridge = format!("stbu{tag}");
    let _leftovers = Leftovers {
        links: vec![
            bridge.clone(),
            strato_network::host_veth_name(&format!("ct-{tag}"), "c"),
        ],
        table: config.table.clone(),
    };
    rt.block_on(async {
        let m = NetworkManager::with_host(config.clone(), LinuxHost::new(FirewallBackend::Nft))
            .unwrap();
        let net = m
            .create(NetworkSpec {
                name: format!("ct-{tag}"),
                bridge: Some(bridge.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(config.pool.overlaps(&net.subnet) && net.subnet.prefix() == 28);
        let ns = NetnsFixture::new(format!("strato-nt-{tag}-c"));
        let ep = m
            .attach(AttachRequest::new(&net.name, "c", Netns::Path(ns.path())))
            .await
            .unwrap();
        // failures leave nothing behind: a namespace that does not exist,
        // and an ifname already taken inside the namespace
        let e = m
            .attach(AttachRequest::new(
                &net.name,
                "d",
                Netns::Path("/nonexistent/ns".into()),
            ))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot open network namespace /nonexistent/ns"),
            "{e}"
        );
        let e = m
            .attach(AttachRequest::new(&net.name, "d", Netns::Path(ns.path())))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("netlink: creating veth"), "{e}");
        assert!(!link_exists(&strato_network::host_veth_name(
            &net.name, "d"
        )));
        assert_eq!(m.endpoints(&net.name).await.unwrap(), vec![ep.clone()]);
        let ping = ns.exec(&["ping", "-c1", "-W5", &ep.gateway.to_string()]);
        assert!(
            ping.status.success(),
            "{}",
            String::from_utf8_lossy(&ping.stdout)
        );
        m.detach(&net.name, "c").await.unwrap();
        m.remove(&net.name).await.unwrap();
        assert!(!link_exists(&bridge));
        assert_eq!(nft_table(&config.table), None);
    });
}

#[tokio::test]
async fn iptables_fallback_publishes_and_cleans_up() {
    let pid = std::process::id();
    let tag = format!("{:05}", pid % 100_000);
    let name = format!("ipt-{tag}");
    let bridge = format!("stbi{tag}");
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.table = format!("st3_{tag}");
    let prefix = config.table.to_ascii_uppercase();
    let _leftovers = Leftovers {
        links: vec![bridge.clone(), strato_network::host_veth_name(&name, "c")],
        table: config.table.clone(),
    };
    let m = NetworkManager::with_host(config, LinuxHost::new(FirewallBackend::Iptables)).unwrap();
    let net = m
        .create(NetworkSpec {
            name: name.clone(),
            bridge: Some(bridge.clone()),
            subnet: Some(
                format!("198.19.{}.0/24", (pid + 128) % 256)
                    .parse()
                    .unwrap(),
            ),
            ..Default::default()
        })
        .await
        .unwrap();
    let ns = NetnsFixture::new(format!("strato-nt-{tag}-i"));
    let host_port = free_port();
    let mut req = AttachRequest::new(&name, "c", Netns::Path(ns.path()));
    req.ports = vec![format!("127.0.0.1:{host_port}:7070").parse().unwrap()];
    let ep = m.attach(req).await.unwrap();
    let nat = || {
        String::from_utf8(
            Command::new("iptables")
                .args(["-w", "-t", "nat", "-S"])
                .output()
                .expect("run iptables (install iptables)")
                .stdout,
        )
        .unwrap()
    };
    let rules = nat();
    assert!(
        rules.contains(&format!("-A PREROUTING -j {prefix}-PRE")),
        "{rules}"
    );
    assert!(
        rules.contains(&format!("--to-destination {}:7070", ep.ip)),
        "{rules}"
    );

    let listener = in_netns(&ns.path(), || TcpListener::bind("0.0.0.0:7070").unwrap());
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        s.write_all(&buf[..n]).unwrap();
    });
    let got = tokio::task::spawn_blocking(move || {
        echo(SocketAddr::from(([127, 0, 0, 1], host_port)), "iptables")
    })
    .await
    .unwrap();
    assert_eq!(got, "iptables");
    server.join().unwrap();

    m.detach(&name, "c").await.unwrap();
    let rules = nat();
    assert!(!rules.contains(&format!("{prefix}-EP-")), "{rules}");
    m.remove(&net.name).await.unwrap();
    let rules = nat();
    assert!(!rules.contains(&prefix), "{rules}");
    assert!(!link_exists(&bridge));
}
