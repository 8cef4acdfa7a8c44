//! A small IPv4 prefix type and the carving of subnets out of a pool.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An IPv4 prefix such as `10.199.0.0/24`. The address is always the
/// network address (host bits cleared).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl Ipv4Net {
    /// The prefix containing `addr` with `prefix` bits, host bits cleared.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self> {
        if prefix > 32 {
            return Err(Error::InvalidSubnet {
                input: format!("{addr}/{prefix}"),
                reason: "the prefix length must be at most 32".into(),
            });
        }
        Ok(Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    /// The network address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The number of addresses in the prefix.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The broadcast (last) address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.prefix))
    }

    /// The `n`th address of the prefix, if inside it.
    pub fn nth(&self, n: u64) -> Option<Ipv4Addr> {
        if n >= self.size() {
            return None;
        }
        let n = u32::try_from(n).ok()?;
        Some(Ipv4Addr::from(u32::from(self.addr) + n))
    }

    /// Whether `ip` lies inside the prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether `ip` is a usable host address (neither the network nor the
    /// broadcast address; for /31 and /32 every address is usable).
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && (self.prefix >= 31 || (ip != self.addr && ip != self.broadcast()))
    }

    /// Whether two prefixes share any address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let p = self.prefix.min(other.prefix);
        u32::from(self.addr) & mask(p) == u32::from(other.addr) & mask(p)
    }

    /// The subnets of length `prefix` inside this prefix, in order.
    pub fn subnets(&self, prefix: u8) -> impl Iterator<Item = Ipv4Net> + '_ {
        let count = if prefix < self.prefix || prefix > 32 {
            0
        } else {
            1u64 << u32::from(prefix - self.prefix)
        };
        let step = if prefix > 32 {
            0
        } else {
            1u64 << (32 - u32::from(prefix))
        };
        let base = u64::from(u32::from(self.addr));
        (0..count).filter_map(move |i| {
            let a = u32::try_from(base + i * step).ok()?;
            Some(Ipv4Net {
                addr: Ipv4Addr::from(a),
                prefix,
            })
        })
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidSubnet {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (a, p) = s.split_once('/').ok_or_else(|| bad("missing '/prefix'"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| bad("the prefix length is not a number"))?;
        if prefix > 32 {
            return Err(bad("the prefix length must be at most 32"));
        }
        let net = Ipv4Net::new(addr, prefix)?;
        if net.addr != addr {
            return Err(bad(&format!("host bits are set; did you mean {net}?")));
        }
        Ok(net)
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The first subnet of length `prefix` in `pool` that overlaps none of
/// `taken` (other networks' subnets and the host's own routes).
pub fn carve(pool: &Ipv4Net, prefix: u8, taken: &[Ipv4Net]) -> Result<Ipv4Net> {
    pool.subnets(prefix)
        .find(|s| !taken.iter().any(|t| t.overlaps(s)))
        .ok_or(Error::PoolExhausted {
            pool: *pool,
            prefix,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(n("10.199.0.0/16").to_string(), "10.199.0.0/16");
        assert_eq!(n("0.0.0.0/0").size(), 1 << 32);
        let e = "10.199.0.1/16".parse::<Ipv4Net>().unwrap_err().to_string();
        assert!(e.contains("did you mean 10.199.0.0/16"), "{e}");
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/x",
            "",
        ] {
            let e = bad.parse::<Ipv4Net>().unwrap_err().to_string();
            assert!(e.starts_with("invalid subnet"), "{e}");
        }
    }

    #[test]
    fn membership() {
        let s = n("198.18.4.0/24");
        assert!(s.contains("198.18.4.255".parse().unwrap()));
        assert!(!s.contains("198.18.5.0".parse().unwrap()));
        assert!(!s.is_host("198.18.4.0".parse().unwrap()));
        assert!(!s.is_host("198.18.4.255".parse().unwrap()));
        assert!(s.is_host("198.18.4.1".parse().unwrap()));
        assert_eq!(s.nth(1), Some("198.18.4.1".parse().unwrap()));
        assert_eq!(s.nth(256), None);
        assert_eq!(s.broadcast(), "198.18.4.255".parse::<Ipv4Addr>().unwrap());
    }

    #[test]
    fn overlap() {
        assert!(n("10.0.0.0/8").overlaps(&n("10.1.2.0/24")));
        assert!(n("10.1.2.0/24").overlaps(&n("10.0.0.0/8")));
        assert!(!n("10.1.2.0/24").overlaps(&n("10.1.3.0/24")));
        assert!(n("0.0.0.0/0").overlaps(&n("1.2.3.4/32")));
    }

    #[test]
    fn carving_skips_taken_and_reports_exhaustion() {
        let pool = n("10.199.0.0/22");
        let subs: Vec<_> = pool.subnets(24).map(|s| s.to_string()).collect();
        assert_eq!(
            subs,
            [
                "10.199.0.0/24",
                "10.199.1.0/24",
                "10.199.2.0/24",
                "10.199.3.0/24"
            ]
        );
        assert_eq!(carve(&pool, 24, &[]).unwrap(), n("10.199.0.0/24"));
        let taken = [n("10.199.0.0/24"), n("10.199.1.128/25")];
        assert_eq!(carve(&pool, 24, &taken).unwrap(), n("10.199.2.0/24"));
        let all = [n("10.199.0.0/23"), n("10.199.2.0/23")];
        let e = carve(&pool, 24, &all).unwrap_err().to_string();
        assert_eq!(
            e,
            "address pool 10.199.0.0/22 has no free /24 left; configure a larger pool or remove unused networks"
        );
        // A prefix shorter than the pool's yields nothing.
        assert!(carve(&pool, 16, &[]).is_err());
    }

    #[test]
    fn serde_roundtrip() {
        let s = serde_json::to_string(&n("198.18.0.0/15")).unwrap();
        assert_eq!(s, "\"198.18.0.0/15\"");
        assert_eq!(
            serde_json::from_str::<Ipv4Net>(&s).unwrap(),
            n("198.18.0.0/15")
        );
        assert!(serde_json::from_str::<Ipv4Net>("\"1.2.3.4/8\"").is_err());
    }
}
