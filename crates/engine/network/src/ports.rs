//! Published ports: `[ip:]hostPort:containerPort[/tcp|udp]`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// One published port: traffic to `host_ip:host_port` (any local address
/// when `host_ip` is `None`) goes to the container's `container_port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortMapping {
    /// Whether both mappings claim the same host port (same protocol and
    /// overlapping host addresses).
    pub fn conflicts(&self, other: &PortMapping) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && match (self.host_ip, other.host_ip) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

impl FromStr for PortMapping {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidPort {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (spec, protocol) = match s.rsplit_once('/') {
            Some((spec, "tcp")) => (spec, Protocol::Tcp),
            Some((spec, "udp")) => (spec, Protocol::Udp),
            Some(_) => return Err(bad("the protocol must be tcp or udp")),
            None => (s, Protocol::Tcp),
        };
        // From the right: the address may be IPv6, in brackets or not.
        let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
        let (host_ip, host, container) = match parts.as_slice() {
            [c, h] => (None, *h, *c),
            [c, h, ip] => {
                let bare = ip
                    .strip_prefix('[')
                    .and_then(|i| i.strip_suffix(']'))
                    .unwrap_or(ip);
                let ip: IpAddr = bare
                    .parse()
                    .map_err(|_| bad("the host address is not an IPv4 or IPv6 address"))?;
                let ip = if ip.is_unspecified() { None } else { Some(ip) };
                (ip, *h, *c)
            }
            _ => return Err(bad("expected two or three ':'-separated fields")),
        };
        let port = |p: &str, what: &str| -> Result<u16> {
            match p.parse::<u16>() {
                Ok(0) | Err(_) => Err(bad(&format!("the {what} port must be 1 to 65535"))),
                Ok(n) => Ok(n),
            }
        };
        Ok(PortMapping {
            host_ip,
            host_port: port(host, "host")?,
            container_port: port(container, "container")?,
            protocol,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_forms() {
        let p: PortMapping = "8080:80".parse().unwrap();
        assert_eq!(
            p,
            PortMapping {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp
            }
        );
        let p: PortMapping = "127.0.0.1:5353:53/udp".parse().unwrap();
        assert_eq!(p.host_ip, Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(p.protocol, Protocol::Udp);
        assert_eq!(p.to_string(), "127.0.0.1:5353:53/udp");
        let p: PortMapping = "0.0.0.0:1:2/tcp".parse().unwrap();
        assert_eq!(p.host_ip, None);
        assert_eq!(p.to_string(), "1:2/tcp");
        for v6 in ["[fd00::1]:8080:80", "fd00::1:8080:80"] {
            let p: PortMapping = v6.parse().unwrap();
            assert_eq!(p.host_ip, Some("fd00::1".parse().unwrap()), "{v6}");
            assert_eq!((p.host_port, p.container_port), (8080, 80));
            assert_eq!(p.to_string(), "[fd00::1]:8080:80/tcp");
        }
        let p: PortMapping = "[::]:1:2".parse().unwrap();
        assert_eq!(p.host_ip, None);
    }

    #[test]
    fn rejects_hostile_input() {
        for bad in [
            "",
            "80",
            "0:80",
            "80:0",
            "70000:80",
            "a:80",
            "80:80/sctp",
            "[::1:80:80",
            "[zz::1]:80:80",
            "1.2.3:80:80",
            "80:80/",
            "1:2:3:4",
            "80 :80",
            "80:80\n",
        ] {
            let e = bad.parse::<PortMapping>().unwrap_err().to_string();
            assert!(e.starts_with("invalid port mapping"), "{bad:?}: {e}");
            assert!(e.ends_with("[ip:]hostPort:containerPort[/tcp|udp]"), "{e}");
        }
    }

    #[test]
    fn conflicts() {
        let a: PortMapping = "8080:80".parse().unwrap();
        let b: PortMapping = "127.0.0.1:8080:81".parse().unwrap();
        let c: PortMapping = "127.0.0.2:8080:81".parse().unwrap();
        let d: PortMapping = "8080:80/udp".parse().unwrap();
        assert!(a.conflicts(&b) && b.conflicts(&a));
        assert!(!b.conflicts(&c));
        assert!(!a.conflicts(&d));
    }
}
