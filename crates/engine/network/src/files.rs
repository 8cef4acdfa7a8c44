//! Generators of a container's `/etc/hosts`, `/etc/resolv.conf` and
//! `/etc/hostname`. Pure functions: the engine writes the results into the
//! container's files.

use std::net::{IpAddr, Ipv4Addr};

use crate::error::{Error, Result};

/// One `/etc/hosts` line: an address and its names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEntry {
    pub ip: IpAddr,
    /// The first name is the canonical one.
    pub names: Vec<String>,
}

/// Nameservers used when the host has none a container can reach (only
/// loopback resolvers such as systemd-resolved's 127.0.0.53); Docker's
/// choice.
pub const FALLBACK_NAMESERVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// Checks a hostname (RFC 1123 labels; '_' tolerated as Docker does).
pub fn validate_hostname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidHostname(name.to_string()))
    }
}

/// `/etc/hostname`.
pub fn hostname(name: &str) -> Result<String> {
    validate_hostname(name)?;
    Ok(format!("{name}\n"))
}

/// `/etc/hosts`: the localhost lines, the container's own addresses (IPv4,
/// then IPv6 on a dual-stack network) and names, then `peers` (on
/// user-defined networks, the other containers, each address a line).
/// Peers with an invalid name are left out rather than let a name inject
/// lines.
pub fn hosts(own: &[HostEntry], peers: &[HostEntry]) -> Result<String> {
    for n in own.iter().flat_map(|e| &e.names) {
        validate_hostname(n)?;
    }
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    let mut line = |e: &HostEntry| {
        let names: Vec<&str> = e
            .names
            .iter()
            .filter(|n| validate_hostname(n).is_ok())
            .map(String::as_str)
            .collect();
        if !names.is_empty() {
            out.push_str(&format!("{}\t{}\n", e.ip, names.join(" ")));
        }
    };
    for e in own {
        line(e);
    }
    for p in peers {
        if !own.iter().any(|o| o.ip == p.ip) {
            line(p);
        }
    }
    Ok(out)
}

/// `/etc/resolv.conf` from the host's: `search` and `options` lines kept,
/// loopback nameservers dropped (unreachable from the container's network
/// namespace), and [`FALLBACK_NAMESERVERS`] used when none remain. IPv6
/// nameservers are dropped too: containers get IPv4 only.
pub fn resolv_conf(host: &str) -> String {
    let mut servers = Vec::new();
    let mut other = Vec::new();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(Ok(IpAddr::V4(ip))) = words.next().map(str::parse::<IpAddr>) {
                    if !ip.is_loopback() && !ip.is_unspecified() {
                        servers.push(ip.to_string());
                    }
                }
            }
            Some("search") | Some("domain") | Some("options") => {
                other.push(line.split_whitespace().collect::<Vec<_>>().join(" "))
            }
            _ => {}
        }
    }
    if servers.is_empty() {
        servers = FALLBACK_NAMESERVERS.iter().map(|s| s.to_string()).collect();
    }
    let mut out = String::new();
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    for o in other {
        out.push_str(&o);
        out.push('\n');
    }
    out
}

/// `/etc/resolv.conf` of a container on a user-defined network: the
/// network's embedded name server at `dns` (which forwards other names to
/// the host's resolvers), the host's `search` and `options` lines, and
/// `ndots:0` so single-label container names are asked as they are first.
pub fn resolv_conf_embedded(dns: Ipv4Addr, host: &str) -> String {
    let mut out = format!("nameserver {dns}\n");
    for line in resolv_conf(host).lines() {
        if !line.starts_with("nameserver") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str("options ndots:0\n");
    out
}

/// The host's resolv.conf to start from: systemd-resolved's upstream list
/// when the host's own points at its stub resolver.
pub fn host_resolv_conf_path() -> &'static str {
    const STUB: &str = "/run/systemd/resolve/resolv.conf";
    let main = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if main.contains("127.0.0.53") && std::path::Path::new(STUB).exists() {
        STUB
    } else {
        "/etc/resolv.conf"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(ip: &str, names: &[&str]) -> HostEntry {
        HostEntry {
            ip: ip.parse().unwrap(),
            names: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn hosts_with_peers() {
        let h = hosts(
            &[e("10.199.1.2", &["web", "abc123"])],
            &[e("10.199.1.3", &["db"]), e("10.199.1.2", &["web"])],
        )
        .unwrap();
        assert!(h.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"));
        assert!(
            h.ends_with("10.199.1.2\tweb abc123\n10.199.1.3\tdb\n"),
            "{h}"
        );
    }

    #[test]
    fn hosts_refuses_injection() {
        assert!(hosts(&[e("10.0.0.2", &["a\n1.2.3.4 evil"])], &[]).is_err());
        let h = hosts(
            &[e("10.0.0.2", &["a"])],
            &[
                e("10.0.0.3", &["b\n6.6.6.6\tevil"]),
                e("10.0.0.4", &["c d"]),
            ],
        )
        .unwrap();
        assert!(
            !h.contains("evil") && !h.contains("10.0.0.3") && !h.contains("10.0.0.4"),
            "{h}"
        );
    }

    #[test]
    fn hosts_of_a_dual_stack_network() {
        let h = hosts(
            &[e("10.199.1.2", &["web"]), e("fd00:1::2", &["web"])],
            &[
                e("10.199.1.3", &["db"]),
                e("fd00:1::3", &["db"]),
                // a peer line naming one of our addresses is left out
                e("fd00:1::2", &["other"]),
            ],
        )
        .unwrap();
        assert!(
            h.ends_with("10.199.1.2\tweb\nfd00:1::2\tweb\n10.199.1.3\tdb\nfd00:1::3\tdb\n"),
            "{h}"
        );
    }

    #[test]
    fn hostname_file() {
        assert_eq!(hostname("abc-1.example").unwrap(), "abc-1.example\n");
        for bad in ["", "-a", "a..b", "a b", "a/b", &"x".repeat(64)] {
            assert!(hostname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn resolv_drops_loopback_keeps_search() {
        let host = "# generated\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nnameserver ::1\n\
                    nameserver 2001:db8::1\nsearch  corp.example\noptions edns0 trust-ad\n";
        assert_eq!(
            resolv_conf(host),
            "nameserver 192.0.2.53\nsearch corp.example\noptions edns0 trust-ad\n"
        );
    }

    #[test]
    fn resolv_falls_back() {
        assert_eq!(
            resolv_conf("nameserver 127.0.0.53\nsearch x\n"),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch x\n"
        );
        assert_eq!(resolv_conf(""), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        assert_eq!(
            resolv_conf("nameserver garbage\n"),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
    }
}
