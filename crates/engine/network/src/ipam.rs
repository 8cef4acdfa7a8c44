//! Address management of one network and family: which addresses are
//! handed out, to whom. Pure data; [`crate::state`] persists it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ipnet::{Family, IpNet};

/// The addresses of one network's subnet in one family ([`Ipam`] for IPv4,
/// [`Ipam6`] for IPv6). The gateway is reserved; the network address (and
/// IPv4's broadcast address) is never handed out. Allocation walks forward
/// from the last address given, like Docker, so an address just released
/// is not reused at once (stale neighbour entries in peers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "A: Serialize", deserialize = "A: DeserializeOwned"))]
pub struct IpamOf<A: Family> {
    subnet: IpNet<A>,
    gateway: A,
    /// address → owner (a container id)
    allocated: BTreeMap<A, String>,
    #[serde(default)]
    last: Option<A>,
    /// Dynamic allocation stays inside this part of the subnet.
    #[serde(default)]
    range: Option<IpNet<A>>,
    /// Never handed out (auxiliary addresses).
    #[serde(default)]
    reserved: Vec<A>,
}

/// IPv4 address management.
pub type Ipam = IpamOf<Ipv4Addr>;
/// IPv6 address management.
pub type Ipam6 = IpamOf<Ipv6Addr>;

impl<A: Family + Into<IpAddr>> IpamOf<A> {
    /// An empty pool for `subnet` with `gateway` reserved.
    pub fn new(subnet: IpNet<A>, gateway: A) -> Result<Self> {
        if subnet.prefix() > A::BITS - 2 {
            return Err(Error::SubnetTooSmall {
                subnet: subnet.to_string(),
            });
        }
        if !subnet.is_host(gateway) {
            return Err(Error::GatewayOutsideSubnet {
                gateway: gateway.into(),
                subnet: subnet.to_string(),
            });
        }
        Ok(Self {
            subnet,
            gateway,
            allocated: BTreeMap::new(),
            last: None,
            range: None,
            reserved: Vec::new(),
        })
    }

    /// Limits dynamic allocation to `range` (inside the subnet) and keeps
    /// `reserved` addresses (inside the subnet) from ever being handed out.
    pub fn restrict(mut self, range: Option<IpNet<A>>, reserved: Vec<A>) -> Result<Self> {
        if let Some(r) = range {
            if !self.subnet.covers(&r) {
                return Err(Error::RangeOutsideSubnet {
                    range: r.to_string(),
                    subnet: self.subnet.to_string(),
                });
            }
        }
        if let Some(ip) = reserved.iter().find(|ip| !self.subnet.contains(**ip)) {
            return Err(Error::AuxAddressOutsideSubnet {
                ip: (*ip).into(),
                subnet: self.subnet.to_string(),
            });
        }
        self.range = range;
        self.reserved = reserved;
        Ok(self)
    }

    /// The subnet.
    pub fn subnet(&self) -> IpNet<A> {
        self.subnet
    }

    /// The gateway (the bridge's address).
    pub fn gateway(&self) -> A {
        self.gateway
    }

    /// Addresses handed out, with their owners.
    pub fn allocated(&self) -> &BTreeMap<A, String> {
        &self.allocated
    }

    /// How many addresses can still be handed out (saturating).
    pub fn free(&self) -> u128 {
        // the network address, the gateway and IPv4's broadcast are never handed out
        let fixed = if A::BROADCAST { 3 } else { 2 };
        self.subnet
            .size()
            .saturating_sub(fixed)
            .saturating_sub((self.allocated.len() + self.reserved.len()) as u128)
    }

    /// Hands out the next free address to `owner`.
    pub fn allocate(&mut self, network: &str, owner: &str) -> Result<A> {
        let pool = self.range.unwrap_or(self.subnet);
        let size = pool.size();
        let start = self
            .last
            .and_then(|l| pool.offset(l))
            .map_or(0, |o| o.wrapping_add(1) % size);
        // Each step that finds no address lands on one that is taken,
        // reserved, the gateway, or the network or broadcast address; so
        // this many steps either find one or have seen the whole pool.
        let steps = size.min((self.allocated.len() + self.reserved.len() + 4) as u128);
        for i in 0..steps {
            let Some(ip) = pool.nth(start.wrapping_add(i) % size) else {
                continue;
            };
            if self.usable(ip) && !self.allocated.contains_key(&ip) {
                self.allocated.insert(ip, owner.to_string());
                self.last = Some(ip);
                return Ok(ip);
            }
        }
        Err(Error::NoFreeAddress {
            network: network.to_string(),
            subnet: self.subnet.to_string(),
        })
    }

    /// Hands out exactly `ip` to `owner`.
    pub fn allocate_exact(&mut self, network: &str, owner: &str, ip: A) -> Result<()> {
        let unavailable = |reason: String| Error::AddressUnavailable {
            ip: ip.into(),
            network: network.to_string(),
            subnet: self.subnet.to_string(),
            reason,
        };
        if !self.subnet.contains(ip) {
            return Err(unavailable("it is outside the subnet".into()));
        }
        if ip == self.gateway {
            return Err(unavailable("it is the gateway".into()));
        }
        if self.reserved.contains(&ip) {
            return Err(unavailable("it is an auxiliary address".into()));
        }
        if !self.usable(ip) {
            return Err(unavailable(if A::BROADCAST {
                "it is the network or broadcast address".into()
            } else {
                "it is the subnet's first address (the subnet-router anycast address)".into()
            }));
        }
        if let Some(o) = self.allocated.get(&ip) {
            return Err(unavailable(format!("it is in use by {o:?}")));
        }
        self.allocated.insert(ip, owner.to_string());
        Ok(())
    }

    /// Where dynamic allocation goes on from (the last address it gave).
    pub(crate) fn cursor(&self) -> Option<A> {
        self.last
    }

    /// Replays a journaled change: `ip` is `owner`'s, the cursor at `last`.
    pub(crate) fn replay(&mut self, ip: Option<(A, &str)>, last: Option<A>) {
        if let Some((ip, owner)) = ip {
            self.allocated.insert(ip, owner.to_string());
        }
        self.last = last;
    }

    /// Gives `ip` back; returns whether it was allocated.
    pub fn release(&mut self, ip: A) -> bool {
        self.allocated.remove(&ip).is_some()
    }

    fn usable(&self, ip: A) -> bool {
        self.subnet.is_host(ip) && ip != self.gateway && !self.reserved.contains(&ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn allocates_in_order_skipping_gateway() {
        let mut p = Ipam::new("198.18.0.0/29".parse().unwrap(), ip("198.18.0.1")).unwrap();
        assert_eq!(p.free(), 5);
        let got: Vec<_> = (0..5)
            .map(|i| p.allocate("n", &format!("c{i}")).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                "198.18.0.2",
                "198.18.0.3",
                "198.18.0.4",
                "198.18.0.5",
                "198.18.0.6"
            ]
            .map(ip)
        );
        assert_eq!(p.free(), 0);
        let e = p.allocate("n", "c9").unwrap_err().to_string();
        assert_eq!(
            e,
            "network \"n\" (198.18.0.0/29) has no free address left; detach containers or create the network with a larger subnet"
        );
    }

    #[test]
    fn release_then_reuse_only_after_wrapping() {
        let mut p = Ipam::new("198.18.0.0/29".parse().unwrap(), ip("198.18.0.1")).unwrap();
        let a = p.allocate("n", "a").unwrap();
        let b = p.allocate("n", "b").unwrap();
        assert!(p.release(a));
        assert!(!p.release(a));
        // next is after b, not the freshly released a
        assert_eq!(p.allocate("n", "c").unwrap(), ip("198.18.0.4"));
        assert_eq!(b, ip("198.18.0.3"));
        p.allocate("n", "d").unwrap();
        p.allocate("n", "e").unwrap();
        // wraps around to a
        assert_eq!(p.allocate("n", "f").unwrap(), a);
        assert_eq!(p.allocated().get(&a).unwrap(), "f");
    }

    #[test]
    fn a_range_bounds_dynamic_addresses_and_aux_addresses_are_kept() {
        let p = Ipam::new("172.28.0.0/16".parse().unwrap(), ip("172.28.5.254")).unwrap();
        let mut p = p
            .restrict(
                Some("172.28.5.0/24".parse().unwrap()),
                vec![ip("172.28.5.1"), ip("172.28.1.5")],
            )
            .unwrap();
        // the range's first address is a host of the /16: handed out, as dockerd does
        assert_eq!(p.allocate("n", "a").unwrap(), ip("172.28.5.0"));
        assert_eq!(p.allocate("n", "a2").unwrap(), ip("172.28.5.2"));
        // a static address may lie outside the range, never on an aux address
        p.allocate_exact("n", "b", ip("172.28.9.9")).unwrap();
        let e = p.allocate_exact("n", "c", ip("172.28.1.5")).unwrap_err();
        assert!(e.to_string().contains("auxiliary"), "{e}");
        let outside = Ipam::new("172.28.0.0/16".parse().unwrap(), ip("172.28.0.1"))
            .unwrap()
            .restrict(Some("10.0.0.0/24".parse().unwrap()), vec![]);
        assert!(matches!(outside, Err(Error::RangeOutsideSubnet { .. })));
        let aux = Ipam::new("172.28.0.0/16".parse().unwrap(), ip("172.28.0.1"))
            .unwrap()
            .restrict(None, vec![ip("10.0.0.1")]);
        assert!(matches!(aux, Err(Error::AuxAddressOutsideSubnet { .. })));
    }

    #[test]
    fn gateway_not_first_address() {
        let mut p = Ipam::new("198.18.0.0/30".parse().unwrap(), ip("198.18.0.2")).unwrap();
        assert_eq!(p.allocate("n", "a").unwrap(), ip("198.18.0.1"));
        assert!(p.allocate("n", "b").is_err());
    }

    #[test]
    fn exact_allocation_checks() {
        let mut p = Ipam::new("198.18.0.0/24".parse().unwrap(), ip("198.18.0.1")).unwrap();
        p.allocate_exact("n", "a", ip("198.18.0.77")).unwrap();
        for (bad, why) in [
            ("198.18.0.77", "in use by \"a\""),
            ("198.18.0.1", "gateway"),
            ("198.18.0.0", "network or broadcast"),
            ("198.18.0.255", "network or broadcast"),
            ("198.18.1.5", "outside"),
        ] {
            let e = p.allocate_exact("n", "b", ip(bad)).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn rejects_bad_subnets_and_gateways() {
        assert!(matches!(
            Ipam::new("198.18.0.0/31".parse().unwrap(), ip("198.18.0.0")),
            Err(Error::SubnetTooSmall { .. })
        ));
        assert!(matches!(
            Ipam6::new("fd00::/127".parse().unwrap(), "fd00::1".parse().unwrap()),
            Err(Error::SubnetTooSmall { .. })
        ));
        assert!(matches!(
            Ipam::new("198.18.0.0/24".parse().unwrap(), ip("198.18.0.0")),
            Err(Error::GatewayOutsideSubnet { .. })
        ));
        assert!(matches!(
            Ipam::new("198.18.0.0/24".parse().unwrap(), ip("198.18.1.1")),
            Err(Error::GatewayOutsideSubnet { .. })
        ));
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_allocation_in_a_range_with_the_gateway_at_its_end() {
        // docker-py's pool: a /64, dynamic addresses from the first /96,
        // the gateway at ::ffff
        let p = Ipam6::new("2001:389::/64".parse().unwrap(), ip6("2001:389::ffff")).unwrap();
        assert_eq!(p.free(), (1 << 64) - 2);
        let mut p = p
            .restrict(
                Some("2001:389::/96".parse().unwrap()),
                vec![ip6("2001:389::1")],
            )
            .unwrap();
        assert_eq!(p.allocate("n", "a").unwrap(), ip6("2001:389::2"));
        assert_eq!(p.allocate("n", "b").unwrap(), ip6("2001:389::3"));
        p.allocate_exact("n", "c", ip6("2001:389::f00d")).unwrap();
        for (bad, why) in [
            ("2001:389::f00d", "in use by \"c\""),
            ("2001:389::ffff", "gateway"),
            ("2001:389::", "subnet-router anycast"),
            ("2001:389::1", "auxiliary"),
            ("2001:38a::5", "outside"),
        ] {
            let e = p
                .allocate_exact("n", "d", ip6(bad))
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        // the last address of a /64 is a host address (no broadcast)
        p.allocate_exact("n", "e", ip6("2001:389::ffff:ffff:ffff:ffff"))
            .unwrap();
        let outside = Ipam6::new("2001:389::/64".parse().unwrap(), ip6("2001:389::1"))
            .unwrap()
            .restrict(Some("2001:390::/96".parse().unwrap()), vec![]);
        assert!(matches!(outside, Err(Error::RangeOutsideSubnet { .. })));
    }

    #[test]
    fn a_full_ipv6_range_is_reported_without_scanning_the_subnet() {
        let p = Ipam6::new("fd00::/64".parse().unwrap(), ip6("fd00::1")).unwrap();
        let mut p = p
            .restrict(Some("fd00::/126".parse().unwrap()), vec![])
            .unwrap();
        // ::0 is the network address and ::1 the gateway: two left
        assert_eq!(p.allocate("n", "a").unwrap(), ip6("fd00::2"));
        assert_eq!(p.allocate("n", "b").unwrap(), ip6("fd00::3"));
        let e = p.allocate("n", "c").unwrap_err().to_string();
        assert_eq!(
            e,
            "network \"n\" (fd00::/64) has no free address left; detach containers or create the network with a larger subnet"
        );
        assert!(p.release(ip6("fd00::2")));
        assert_eq!(p.allocate("n", "c").unwrap(), ip6("fd00::2"));
        let j = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Ipam6>(&j).unwrap(), p);
    }

    #[test]
    fn survives_json() {
        let mut p = Ipam::new("198.18.0.0/24".parse().unwrap(), ip("198.18.0.1")).unwrap();
        p.allocate("n", "a").unwrap();
        let j = serde_json::to_string(&p).unwrap();
        let mut q: Ipam = serde_json::from_str(&j).unwrap();
        assert_eq!(p, q);
        assert_eq!(q.allocate("n", "b").unwrap(), ip("198.18.0.3"));
    }
}
