//! The firewall ruleset: egress masquerading, isolation between networks
//! and published ports, generated as text from the [`State`] (pure
//! functions) and applied as a whole.
//!
//! Everything lives in one nftables table (`ip strato` by default), which is
//! replaced in one atomic `nft -f -` transaction each time anything changes:
//! the host's own tables are never touched, and removing the last network
//! deletes the table. The shape:
//!
//! ```text
//! table ip strato {
//!     chain prerouting  { type nat hook prerouting priority dstnat; fib daddr type local jump ports }
//!     chain output      { type nat hook output priority -100; fib daddr type local jump ports }
//!     chain ports       { jump ep-<hash>  (one per endpoint with published ports) }
//!     chain ep-<hash>   { [ip daddr H] tcp dport P dnat to C:Q comment "<network>/<container>" }
//!     chain postrouting { type nat hook postrouting priority srcnat;
//!                         oifname BR ip saddr 127.0.0.0/8 masquerade      (host's 127.0.0.1:P reaching a container)
//!                         oifname BR ip saddr NET ct status dnat masquerade (hairpin: a container reaching a published port)
//!                         ip saddr NET oifname != BR masquerade           (egress) }
//!     chain forward     { type filter hook forward priority filter; iifname BR1 oifname BR2 drop (isolation) }
//! }
//! ```
//!
//! Dual-stack networks get the same shape in a second table, `ip6 strato`
//! (present only while one exists): IPv6 egress masquerading, isolation,
//! and ports published on every host address (`-p P:Q`) forwarded to the
//! containers' IPv6 addresses, except from `::1` (the kernel drops IPv6
//! loopback traffic leaving `lo`).
//!
//! The iptables fallback ([`iptables_restore`]) puts the same NAT rules in
//! chains of the `nat` table named after the table (`STRATO-…`), reached by
//! one jump from each built-in chain.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::state::{Endpoint, State};

/// The per-endpoint chain's name: stable, short, and free of characters
/// the nft parser would need quoted.
pub fn endpoint_chain(ep: &Endpoint) -> String {
    format!(
        "ep-{:08x}",
        fnv1a(&format!("{}/{}", ep.network, ep.container_id))
    )
}

/// FNV-1a, 32 bits: names derived from ids (chains, veths) must not change
/// between runs or builds, which `std`'s hashers do not promise.
pub(crate) fn fnv1a(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Whether a mapping applies to the IPv4 (`v6` false) or IPv6 table: one
/// on any host address applies to both.
fn in_family(p: &crate::PortMapping, v6: bool) -> bool {
    p.host_ip.is_none_or(|ip| ip.is_ipv6() == v6)
}

/// The DNAT rule of mapping `p` to the container address `to` (an IPv6
/// one in brackets), in the table of `to`'s family.
fn dnat_rule(ep: &Endpoint, p: &crate::PortMapping, to: &str) -> String {
    let daddr = match p.host_ip {
        Some(IpAddr::V4(ip)) => format!("ip daddr {ip} "),
        Some(IpAddr::V6(ip)) => format!("ip6 daddr {ip} "),
        None => String::new(),
    };
    format!(
        "{daddr}{proto} dport {hp} dnat to {to}:{cp} comment \"{net}/{ctr}\"",
        proto = p.protocol,
        hp = p.host_port,
        cp = p.container_port,
        net = ep.network,
        ctr = ep.container_id,
    )
}

/// The nft script replacing tables `ip <table>` and `ip6 <table>` with the
/// rules for `state` (or deleting them when there are no networks, or no
/// dual-stack ones).
pub fn nft_script(table: &str, state: &State) -> String {
    let mut s = String::new();
    // Declaring the tables first makes the deletes succeed on a first run.
    for family in ["ip", "ip6"] {
        let _ = writeln!(s, "table {family} {table}");
        let _ = writeln!(s, "delete table {family} {table}");
    }
    if state.networks.is_empty() {
        return s;
    }
    family_table(&mut s, table, state, false);
    if state.networks.values().any(|n| n.network.ipv6.is_some()) {
        family_table(&mut s, table, state, true);
    }
    s
}

/// One nft table: `ip <table>` (`v6` false) or `ip6 <table>`, with the
/// rules of that family. The IPv6 table covers dual-stack networks only,
/// and has no loopback rule: the kernel never routes ::1 off `lo`.
fn family_table(s: &mut String, table: &str, state: &State, v6: bool) {
    let (family, addr) = if v6 { ("ip6", "ip6") } else { ("ip", "ip") };
    let _ = writeln!(s, "table {family} {table} {{");
    s.push_str(
        "\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         \t\tfib daddr type local jump ports\n\t}\n",
    );
    let not_loopback = if v6 { "ip6 daddr != ::1 " } else { "" };
    let _ = write!(
        s,
        "\tchain output {{\n\t\ttype nat hook output priority -100; policy accept;\n\
         \t\t{not_loopback}fib daddr type local jump ports\n\t}}\n"
    );
    // Each endpoint with mappings of this family, and its address in it.
    let with_ports: Vec<(&Endpoint, String)> = state
        .endpoints()
        .filter(|e| e.ports.iter().any(|p| in_family(p, v6)))
        .filter_map(|e| match (v6, e.ipv6) {
            (false, _) => Some((e, e.ip.to_string())),
            (true, Some(a)) => Some((e, format!("[{}]", a.ip))),
            (true, None) => None,
        })
        .collect();
    s.push_str("\tchain ports {\n");
    for (ep, _) in &with_ports {
        let _ = writeln!(s, "\t\tjump {}", endpoint_chain(ep));
    }
    s.push_str("\t}\n");
    for (ep, to) in &with_ports {
        let _ = writeln!(s, "\tchain {} {{", endpoint_chain(ep));
        for p in ep.ports.iter().filter(|p| in_family(p, v6)) {
            let _ = writeln!(s, "\t\t{}", dnat_rule(ep, p, to));
        }
        s.push_str("\t}\n");
    }
    s.push_str(
        "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n",
    );
    // The networks of this family, with their subnet in it.
    let nets: Vec<(&crate::state::Network, String)> = state
        .networks
        .values()
        .filter_map(|n| {
            let net = &n.network;
            match (v6, &net.ipv6) {
                (false, _) => Some((net, net.subnet.to_string())),
                (true, Some(c)) => Some((net, c.subnet.to_string())),
                (true, None) => None,
            }
        })
        .collect();
    for (n, net) in &nets {
        let (br, name) = (&n.bridge, &n.name);
        if !v6 {
            let _ = writeln!(
                s,
                "\t\toifname \"{br}\" ip saddr 127.0.0.0/8 masquerade comment \"{name} localnet\""
            );
        }
        let _ = writeln!(
            s,
            "\t\toifname \"{br}\" {addr} saddr {net} ct status dnat masquerade comment \"{name} hairpin\""
        );
        if !n.internal {
            let _ = writeln!(
                s,
                "\t\t{addr} saddr {net} oifname != \"{br}\" masquerade comment \"{name} egress\""
            );
        }
    }
    s.push_str("\t}\n");
    s.push_str("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n");
    for (a, _) in &nets {
        for b in state.networks.values().map(|n| &n.network) {
            if a.name != b.name {
                let _ = writeln!(
                    s,
                    "\t\tiifname \"{}\" oifname \"{}\" drop comment \"isolate {} from {}\"",
                    a.bridge, b.bridge, a.name, b.name
                );
            }
        }
        if a.internal {
            let _ = writeln!(
                s,
                "\t\tiifname \"{br}\" oifname != \"{br}\" drop comment \"{} internal\"",
                a.name,
                br = a.bridge
            );
        }
    }
    s.push_str("\t}\n}\n");
}

/// The chain prefix of the iptables fallback for `table`.
pub fn iptables_prefix(table: &str) -> String {
    table.to_ascii_uppercase().replace(['.', '/'], "_")
}

/// The built-in `nat` chains and the strato chain each jumps to.
pub fn iptables_hooks(table: &str) -> [(&'static str, String); 3] {
    let p = iptables_prefix(table);
    [
        ("PREROUTING", format!("{p}-PRE")),
        ("OUTPUT", format!("{p}-OUT")),
        ("POSTROUTING", format!("{p}-POST")),
    ]
}

/// The `iptables-restore --noflush` input that (re)defines the fallback's
/// chains for `state`. The chains it declares are flushed by the restore;
/// endpoint chains no longer wanted are deleted by the caller.
pub fn iptables_restore(table: &str, state: &State) -> String {
    let p = iptables_prefix(table);
    let with_ports: Vec<&Endpoint> = state.endpoints().filter(|e| !e.ports.is_empty()).collect();
    let mut s = String::from("*nat\n");
    for c in ["PRE", "OUT", "POST", "PORTS"] {
        let _ = writeln!(s, ":{p}-{c} - [0:0]");
    }
    for ep in &with_ports {
        let _ = writeln!(
            s,
            ":{p}-{} - [0:0]",
            endpoint_chain(ep).to_ascii_uppercase()
        );
    }
    let _ = writeln!(s, "-A {p}-PRE -m addrtype --dst-type LOCAL -j {p}-PORTS");
    let _ = writeln!(s, "-A {p}-OUT -m addrtype --dst-type LOCAL -j {p}-PORTS");
    for ep in &with_ports {
        let chain = format!("{p}-{}", endpoint_chain(ep).to_ascii_uppercase());
        let _ = writeln!(s, "-A {p}-PORTS -j {chain}");
        // iptables is the IPv4 fallback: IPv6 host addresses are refused
        // at attach time when nft is missing.
        for m in ep.ports.iter().filter(|m| in_family(m, false)) {
            let daddr = m
                .host_ip
                .map(|ip| format!("-d {ip}/32 "))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "-A {chain} {daddr}-p {proto} -m {proto} --dport {hp} -m comment --comment \"{net}/{ctr}\" -j DNAT --to-destination {ip}:{cp}",
                proto = m.protocol,
                hp = m.host_port,
                net = ep.network,
                ctr = ep.container_id,
                ip = ep.ip,
                cp = m.container_port
            );
        }
    }
    for n in state.networks.values().map(|n| &n.network) {
        let (br, net) = (&n.bridge, n.subnet);
        let _ = writeln!(s, "-A {p}-POST -s 127.0.0.0/8 -o {br} -j MASQUERADE");
        let _ = writeln!(
            s,
            "-A {p}-POST -s {net} -o {br} -m conntrack --ctstate DNAT -j MASQUERADE"
        );
        if !n.internal {
            let _ = writeln!(s, "-A {p}-POST -s {net} ! -o {br} -j MASQUERADE");
        }
    }
    s.push_str("COMMIT\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::Ipam;
    use crate::state::{Network, NetworkState};
    use std::collections::BTreeMap;

    fn net(name: &str, bridge: &str, subnet: &str, internal: bool) -> NetworkState {
        let subnet: crate::Ipv4Net = subnet.parse().unwrap();
        let gw = subnet.nth(1).unwrap();
        NetworkState {
            network: Network {
                name: name.into(),
                bridge: bridge.into(),
                subnet,
                gateway: gw,
                user_defined: true,
                internal,
                meta: Default::default(),
                ipv6: None,
            },
            ipam: Ipam::new(subnet, gw).unwrap(),
            ipam6: None,
            endpoints: BTreeMap::new(),
        }
    }

    fn ep(network: &str, id: &str, ip: &str, ports: &[&str]) -> Endpoint {
        Endpoint {
            network: network.into(),
            container_id: id.into(),
            names: vec![],
            ip: ip.parse().unwrap(),
            prefix: 24,
            gateway: "198.18.1.1".parse().unwrap(),
            mac: String::new(),
            host_veth: String::new(),
            ifname: "eth0".into(),
            ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
            ipv6: None,
        }
    }

    fn state() -> State {
        let mut s = State::default();
        let mut a = net("a", "stb-a", "198.18.1.0/24", false);
        a.endpoints.insert(
            "c1".into(),
            ep(
                "a",
                "c1",
                "198.18.1.2",
                &["8080:80", "127.0.0.1:5353:53/udp"],
            ),
        );
        a.endpoints
            .insert("c2".into(), ep("a", "c2", "198.18.1.3", &[]));
        s.networks.insert("a".into(), a);
        s.networks
            .insert("b".into(), net("b", "stb-b", "198.18.2.0/24", true));
        s
    }

    #[test]
    fn empty_state_deletes_the_table() {
        assert_eq!(
            nft_script("strato", &State::default()),
            "table ip strato\ndelete table ip strato\ntable ip6 strato\ndelete table ip6 strato\n"
        );
        // IPv4-only networks: no ip6 table beyond its deletion
        let s = nft_script("strato", &state());
        assert!(!s.contains("table ip6 strato {"), "{s}");
    }

    #[test]
    fn dual_stack_rules_live_in_the_ip6_table() {
        let mut st = state();
        let a = st.networks.get_mut("a").unwrap();
        a.network.ipv6 = Some(crate::state::Ipv6Config {
            subnet: "fd00:1::/64".parse().unwrap(),
            gateway: "fd00:1::1".parse().unwrap(),
            ip_range: None,
            aux_addresses: BTreeMap::new(),
        });
        a.endpoints.get_mut("c1").unwrap().ipv6 = Some(crate::state::EndpointV6 {
            ip: "fd00:1::2".parse().unwrap(),
            prefix: 64,
            gateway: "fd00:1::1".parse().unwrap(),
        });
        a.endpoints
            .get_mut("c1")
            .unwrap()
            .ports
            .push("[fd00:1::1]:9090:90".parse().unwrap());
        let s = nft_script("strato", &st);
        let v6 = &s[s.find("table ip6 strato {").expect("an ip6 table")..];
        let v4 = &s[..s.find("table ip6 strato {").unwrap()];
        // A mapping on an IPv6 host address: the ip6 table alone.
        assert!(
            v6.contains("ip6 daddr fd00:1::1 tcp dport 9090 dnat to [fd00:1::2]:90"),
            "{v6}"
        );
        assert!(!v4.contains("9090"), "{v4}");
        let chain = endpoint_chain(&ep("a", "c1", "198.18.1.2", &[]));
        // the mappings on every address and on an IPv6 one, not the IPv4 one
        assert!(
            v6.contains(&format!(
                "\tchain {chain} {{\n\t\ttcp dport 8080 dnat to [fd00:1::2]:80 comment \"a/c1\"\n\t\tip6 daddr"
            )),
            "{v6}"
        );
        assert!(!v6.contains("5353"), "{v6}");
        assert!(v6.contains("ip6 daddr != ::1 fib daddr type local jump ports"));
        assert!(v6.contains("ip6 saddr fd00:1::/64 oifname != \"stb-a\" masquerade"));
        assert!(v6.contains("iifname \"stb-a\" oifname \"stb-b\" drop"));
        assert!(!v6.contains("198.18."), "{v6}");
        assert_eq!(s.matches('{').count(), s.matches('}').count());
    }

    #[test]
    fn nft_ruleset_shape() {
        let s = nft_script("strato", &state());
        let chain = endpoint_chain(&ep("a", "c1", "198.18.1.2", &[]));
        assert!(s.starts_with(
            "table ip strato\ndelete table ip strato\ntable ip6 strato\ndelete table ip6 strato\ntable ip strato {\n"
        ));
        assert!(
            s.contains(&format!("\tchain ports {{\n\t\tjump {chain}\n\t}}\n")),
            "{s}"
        );
        assert!(
            s.contains(&format!(
                "\tchain {chain} {{\n\t\ttcp dport 8080 dnat to 198.18.1.2:80 comment \"a/c1\"\n\
             \t\tip daddr 127.0.0.1 udp dport 5353 dnat to 198.18.1.2:53 comment \"a/c1\"\n\t}}\n"
            )),
            "{s}"
        );
        // c2 publishes nothing: no chain for it
        assert_eq!(s.matches("chain ep-").count(), 1);
        assert!(s.contains("ip saddr 198.18.1.0/24 oifname != \"stb-a\" masquerade"));
        // b is internal: no egress, and nothing leaves its bridge
        assert!(!s.contains("ip saddr 198.18.2.0/24 oifname != \"stb-b\" masquerade"));
        assert!(s.contains("iifname \"stb-b\" oifname != \"stb-b\" drop"));
        assert!(s.contains("oifname \"stb-a\" ip saddr 127.0.0.0/8 masquerade"));
        assert!(s.contains("oifname \"stb-a\" ip saddr 198.18.1.0/24 ct status dnat masquerade"));
        assert!(s.contains("iifname \"stb-a\" oifname \"stb-b\" drop"));
        assert!(s.contains("iifname \"stb-b\" oifname \"stb-a\" drop"));
        assert_eq!(s.matches('{').count(), s.matches('}').count());
    }

    #[test]
    fn removing_a_container_removes_exactly_its_rules() {
        let mut st = state();
        let before = nft_script("strato", &st);
        st.networks.get_mut("a").unwrap().endpoints.remove("c1");
        let after = nft_script("strato", &st);
        let removed: Vec<&str> = before
            .lines()
            .filter(|l| !after.lines().any(|m| m == *l))
            .collect();
        // the jump, the chain header and its two rules (the closing brace is shared)
        assert_eq!(removed.len(), 4, "{removed:?}");
        assert!(
            removed
                .iter()
                .all(|l| l.contains("ep-") || l.contains("a/c1")),
            "{removed:?}"
        );
        assert!(!after.contains("a/c1"));
    }

    #[test]
    fn chain_names_are_stable() {
        let e = ep("bridge", "abc", "198.18.1.2", &[]);
        assert_eq!(endpoint_chain(&e), endpoint_chain(&e.clone()));
        assert_eq!(fnv1a(""), 0x811c_9dc5);
        assert_eq!(fnv1a("a"), 0xe40c_292c);
    }

    #[test]
    fn iptables_fallback_shape() {
        let s = iptables_restore("strato", &state());
        let chain = endpoint_chain(&ep("a", "c1", "198.18.1.2", &[])).to_ascii_uppercase();
        assert!(s.starts_with("*nat\n:STRATO-PRE - [0:0]\n"));
        assert!(s.contains(&format!("-A STRATO-PORTS -j STRATO-{chain}\n")));
        assert!(s.contains(&format!(
            "-A STRATO-{chain} -d 127.0.0.1/32 -p udp -m udp --dport 5353 -m comment --comment \"a/c1\" -j DNAT --to-destination 198.18.1.2:53\n"
        )));
        assert!(s.contains("-A STRATO-POST -s 198.18.1.0/24 ! -o stb-a -j MASQUERADE\n"));
        assert!(!s.contains("-s 198.18.2.0/24 ! -o stb-b"));
        assert!(s.ends_with("COMMIT\n"));
        assert_eq!(
            iptables_hooks("strato")[0],
            ("PREROUTING", "STRATO-PRE".to_string())
        );
    }
}
