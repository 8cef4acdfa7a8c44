//! IP prefixes of either family ([`IpNet`], with the [`Ipv4Net`] and
//! [`Ipv6Net`] aliases) and the carving of subnets out of a pool. One
//! generic type over the address as a `u128` keeps the two families' prefix
//! arithmetic in one place; no crate of the field offers prefix carving
//! with this error reporting, and it is a few lines.

use std::fmt;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An address family: its width and the conversions to and from bits.
pub trait Family:
    Copy + Ord + Hash + fmt::Debug + fmt::Display + FromStr + Send + Sync + 'static
{
    /// Bits in an address.
    const BITS: u8;
    /// `IPv4` or `IPv6`, for messages.
    const NAME: &'static str;
    /// Whether the last address of a subnet is its broadcast address
    /// (never handed out).
    const BROADCAST: bool;
    /// The address as an integer.
    fn bits(self) -> u128;
    /// The address of an integer (`b` fits [`Family::BITS`]).
    fn from_bits(b: u128) -> Self;
}

impl Family for Ipv4Addr {
    const BITS: u8 = 32;
    const NAME: &'static str = "IPv4";
    const BROADCAST: bool = true;
    fn bits(self) -> u128 {
        u128::from(u32::from(self))
    }
    fn from_bits(b: u128) -> Self {
        Ipv4Addr::from(u32::try_from(b & u128::from(u32::MAX)).unwrap_or(0))
    }
}

impl Family for Ipv6Addr {
    const BITS: u8 = 128;
    const NAME: &'static str = "IPv6";
    const BROADCAST: bool = false;
    fn bits(self) -> u128 {
        u128::from(self)
    }
    fn from_bits(b: u128) -> Self {
        Ipv6Addr::from(b)
    }
}

/// A prefix such as `10.199.0.0/24` or `fd00:1::/64`. The address is always
/// the network address (host bits cleared).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpNet<A> {
    addr: A,
    prefix: u8,
}

/// An IPv4 prefix.
pub type Ipv4Net = IpNet<Ipv4Addr>;
/// An IPv6 prefix.
pub type Ipv6Net = IpNet<Ipv6Addr>;

/// The netmask of `prefix` bits in an address of `width` bits, as the low
/// `width` bits of a `u128`.
fn mask(width: u8, prefix: u8) -> u128 {
    let all = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    if prefix == 0 {
        0
    } else {
        (all << (width - prefix)) & all
    }
}

impl<A: Family> IpNet<A> {
    /// The prefix containing `addr` with `prefix` bits, host bits cleared.
    pub fn new(addr: A, prefix: u8) -> Result<Self> {
        if prefix > A::BITS {
            return Err(Error::InvalidSubnet {
                input: format!("{addr}/{prefix}"),
                reason: format!("the prefix length must be at most {}", A::BITS),
            });
        }
        Ok(Self {
            addr: A::from_bits(addr.bits() & mask(A::BITS, prefix)),
            prefix,
        })
    }

    /// The network address.
    pub fn addr(&self) -> A {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The number of addresses in the prefix (`u128::MAX` for `::/0`).
    pub fn size(&self) -> u128 {
        1u128
            .checked_shl(u32::from(A::BITS - self.prefix))
            .unwrap_or(u128::MAX)
    }

    /// The last address (IPv4's broadcast address).
    pub fn last(&self) -> A {
        A::from_bits(self.addr.bits() | (!mask(A::BITS, self.prefix) & mask(A::BITS, A::BITS)))
    }

    /// The `n`th address of the prefix, if inside it.
    pub fn nth(&self, n: u128) -> Option<A> {
        if n >= self.size() {
            return None;
        }
        Some(A::from_bits(self.addr.bits() + n))
    }

    /// How far `ip` lies from the network address, if inside the prefix.
    pub fn offset(&self, ip: A) -> Option<u128> {
        self.contains(ip).then(|| ip.bits() - self.addr.bits())
    }

    /// Whether `ip` lies inside the prefix.
    pub fn contains(&self, ip: A) -> bool {
        ip.bits() & mask(A::BITS, self.prefix) == self.addr.bits()
    }

    /// Whether `other` lies wholly inside this prefix.
    pub fn covers(&self, other: &IpNet<A>) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// Whether `ip` is a usable host address: not the network address
    /// (IPv6's subnet-router anycast address) nor IPv4's broadcast address;
    /// in the two smallest prefixes every address is usable.
    pub fn is_host(&self, ip: A) -> bool {
        self.contains(ip)
            && (self.prefix >= A::BITS - 1
                || (ip != self.addr && !(A::BROADCAST && ip == self.last())))
    }

    /// Whether two prefixes share any address.
    pub fn overlaps(&self, other: &IpNet<A>) -> bool {
        let m = mask(A::BITS, self.prefix.min(other.prefix));
        self.addr.bits() & m == other.addr.bits() & m
    }

    /// The subnets of length `prefix` inside this prefix, in order.
    pub fn subnets(&self, prefix: u8) -> impl Iterator<Item = IpNet<A>> + '_ {
        let (count, step) = if prefix < self.prefix || prefix > A::BITS {
            (0, 0)
        } else {
            (
                1u128
                    .checked_shl(u32::from(prefix - self.prefix))
                    .unwrap_or(u128::MAX),
                1u128.checked_shl(u32::from(A::BITS - prefix)).unwrap_or(0),
            )
        };
        let base = self.addr.bits();
        (0..count).map(move |i| IpNet {
            addr: A::from_bits(base + i * step),
            prefix,
        })
    }
}

impl Ipv4Net {
    /// The broadcast (last) address.
    pub fn broadcast(&self) -> Ipv4Addr {
        self.last()
    }
}

impl<A: Family> fmt::Display for IpNet<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<A: Family> FromStr for IpNet<A> {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidSubnet {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (a, p) = s.split_once('/').ok_or_else(|| bad("missing '/prefix'"))?;
        let addr: A = a
            .parse()
            .map_err(|_| bad(&format!("not an {} address", A::NAME)))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| bad("the prefix length is not a number"))?;
        if prefix > A::BITS {
            return Err(bad(&format!(
                "the prefix length must be at most {}",
                A::BITS
            )));
        }
        let net = IpNet::new(addr, prefix)?;
        if net.addr != addr {
            return Err(bad(&format!("host bits are set; did you mean {net}?")));
        }
        Ok(net)
    }
}

impl<A: Family> Serialize for IpNet<A> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de, A: Family> Deserialize<'de> for IpNet<A> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The first subnet of length `prefix` in `pool` that overlaps none of
/// `taken` (other networks' subnets and the host's own routes).
pub fn carve<A: Family>(pool: &IpNet<A>, prefix: u8, taken: &[IpNet<A>]) -> Result<IpNet<A>> {
    pool.subnets(prefix)
        .find(|s| !taken.iter().any(|t| t.overlaps(s)))
        .ok_or(Error::PoolExhausted {
            pool: pool.to_string(),
            prefix,
        })
}

/// A unique local IPv6 /48 (RFC 4193) for this host: `fd` and a 40-bit
/// global id derived from `seed` (the machine id), so two hosts pick
/// different prefixes, and one host always the same.
pub fn ula_pool(seed: &str) -> Ipv6Net {
    let a = u64::from(crate::firewall::fnv1a(seed));
    let b = u64::from(crate::firewall::fnv1a(&format!("{seed}/ula")));
    let global = ((a << 8) ^ b) & 0xff_ffff_ffff;
    let bits = (0xfdu128 << 120) | (u128::from(global) << 80);
    IpNet::new(Ipv6Addr::from(bits), 48).expect("/48 is a valid IPv6 prefix")
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

    fn n6(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_prefixes() {
        let s = n6("fd00:1::/64");
        assert_eq!(s.to_string(), "fd00:1::/64");
        assert_eq!(s.size(), 1 << 64);
        assert_eq!(
            s.last(),
            "fd00:1::ffff:ffff:ffff:ffff".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(s.nth(1), Some("fd00:1::1".parse().unwrap()));
        // no broadcast in IPv6: the last address is a host; the first is not
        assert!(s.is_host(s.last()));
        assert!(!s.is_host(s.addr()));
        assert!(s.contains("fd00:1::ffff".parse().unwrap()));
        assert!(!s.contains("fd00:2::1".parse().unwrap()));
        assert!(s.covers(&n6("fd00:1::/96")));
        assert!(!s.covers(&n6("fd00::/16")));
        assert!(n6("fd00::/16").overlaps(&s) && s.overlaps(&n6("fd00::/16")));
        assert_eq!(n6("::/0").size(), u128::MAX);
        let e = "fd00:1::1/64".parse::<Ipv6Net>().unwrap_err().to_string();
        assert!(e.contains("did you mean fd00:1::/64"), "{e}");
        for bad in [
            "fd00::/129",
            "fd00::",
            "10.0.0.0/8",
            "fd00::/x",
            "fd00:::/64",
        ] {
            let e = bad.parse::<Ipv6Net>().unwrap_err().to_string();
            assert!(e.starts_with("invalid subnet"), "{bad}: {e}");
        }
        let e = "fd00::/64".parse::<Ipv4Net>().unwrap_err().to_string();
        assert!(e.contains("not an IPv4 address"), "{e}");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"fd00:1::/64\"");
    }

    #[test]
    fn ipv6_carving_and_the_ula_pool() {
        let pool = ula_pool("0123456789abcdef");
        assert_eq!(pool, ula_pool("0123456789abcdef"));
        assert_ne!(pool, ula_pool("fedcba9876543210"));
        assert_eq!(pool.prefix(), 48);
        assert_eq!(pool.addr().segments()[0] >> 8, 0xfd);
        let first = carve(&pool, 64, &[]).unwrap();
        assert_eq!(first, IpNet::new(pool.addr(), 64).unwrap());
        let second = carve(&pool, 64, &[first]).unwrap();
        assert_eq!(second.addr().segments()[3], 1);
        let e = carve(&n6("fd00::/63"), 64, &[n6("fd00::/63")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "address pool fd00::/63 has no free /64 left; configure a larger pool or remove unused networks"
        );
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
