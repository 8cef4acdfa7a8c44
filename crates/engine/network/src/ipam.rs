//! Address management of one network: which addresses are handed out, to
//! whom. Pure data; [`crate::state`] persists it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::Ipv4Net;

/// The addresses of one network's subnet. The gateway is reserved; the
/// network and broadcast addresses are never handed out. Allocation walks
/// forward from the last address given, like Docker, so an address just
/// released is not reused at once (stale ARP entries in peers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipam {
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    /// address → owner (a container id)
    allocated: BTreeMap<Ipv4Addr, String>,
    #[serde(default)]
    last: Option<Ipv4Addr>,
    /// Dynamic allocation stays inside this part of the subnet.
    #[serde(default)]
    range: Option<Ipv4Net>,
    /// Never handed out (auxiliary addresses).
    #[serde(default)]
    reserved: Vec<Ipv4Addr>,
}

impl Ipam {
    /// An empty pool for `subnet` with `gateway` reserved.
    pub fn new(subnet: Ipv4Net, gateway: Ipv4Addr) -> Result<Self> {
        if subnet.prefix() > 30 {
            return Err(Error::SubnetTooSmall { subnet });
        }
        if !subnet.is_host(gateway) {
            return Err(Error::GatewayOutsideSubnet { gateway, subnet });
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
    pub fn restrict(mut self, range: Option<Ipv4Net>, reserved: Vec<Ipv4Addr>) -> Result<Self> {
        if let Some(r) = range {
            if !(self.subnet.contains(r.addr()) && r.prefix() >= self.subnet.prefix()) {
                return Err(Error::RangeOutsideSubnet {
                    range: r,
                    subnet: self.subnet,
                });
            }
        }
        if let Some(ip) = reserved.iter().find(|ip| !self.subnet.contains(**ip)) {
            return Err(Error::AuxAddressOutsideSubnet {
                ip: *ip,
                subnet: self.subnet,
            });
        }
        self.range = range;
        self.reserved = reserved;
        Ok(self)
    }

    /// The subnet.
    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    /// The gateway (the bridge's address).
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// Addresses handed out, with their owners.
    pub fn allocated(&self) -> &BTreeMap<Ipv4Addr, String> {
        &self.allocated
    }

    /// How many addresses can still be handed out.
    pub fn free(&self) -> u64 {
        // network, broadcast and gateway are never handed out
        (self.subnet.size() - 3).saturating_sub((self.allocated.len() + self.reserved.len()) as u64)
    }

    /// Hands out the next free address to `owner`.
    pub fn allocate(&mut self, network: &str, owner: &str) -> Result<Ipv4Addr> {
        let size = self.subnet.size();
        let start = match self.last {
            Some(l) if self.subnet.contains(l) => {
                u64::from(u32::from(l) - u32::from(self.subnet.addr())) + 1
            }
            _ => 1,
        };
        for i in 0..size {
            let n = (start + i) % size;
            let Some(ip) = self.subnet.nth(n) else {
                continue;
            };
            if self.usable(ip)
                && self.range.is_none_or(|r| r.contains(ip))
                && !self.allocated.contains_key(&ip)
            {
                self.allocated.insert(ip, owner.to_string());
                self.last = Some(ip);
                return Ok(ip);
            }
        }
        Err(Error::NoFreeAddress {
            network: network.to_string(),
            subnet: self.subnet,
        })
    }

    /// Hands out exactly `ip` to `owner`.
    pub fn allocate_exact(&mut self, network: &str, owner: &str, ip: Ipv4Addr) -> Result<()> {
        let unavailable = |reason: String| Error::AddressUnavailable {
            ip,
            network: network.to_string(),
            subnet: self.subnet,
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
            return Err(unavailable("it is the network or broadcast address".into()));
        }
        if let Some(o) = self.allocated.get(&ip) {
            return Err(unavailable(format!("it is in use by {o:?}")));
        }
        self.allocated.insert(ip, owner.to_string());
        Ok(())
    }

    /// Gives `ip` back; returns whether it was allocated.
    pub fn release(&mut self, ip: Ipv4Addr) -> bool {
        self.allocated.remove(&ip).is_some()
    }

    fn usable(&self, ip: Ipv4Addr) -> bool {
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
            Ipam::new("198.18.0.0/24".parse().unwrap(), ip("198.18.0.0")),
            Err(Error::GatewayOutsideSubnet { .. })
        ));
        assert!(matches!(
            Ipam::new("198.18.0.0/24".parse().unwrap(), ip("198.18.1.1")),
            Err(Error::GatewayOutsideSubnet { .. })
        ));
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
