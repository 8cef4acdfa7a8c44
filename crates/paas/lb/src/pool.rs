//! A pool of members behind one listener: who may take traffic, how the next
//! one is chosen, and how many requests each is serving right now.
//!
//! Counting is lock-free (atomics per member and per pool); the member list
//! sits behind a read-write lock taken for the few nanoseconds of a pick or
//! an update. A [`Lease`] is one request (or TCP connection) in flight: it
//! counts on creation and uncounts when dropped, which the proxies arrange to
//! happen when the response body or the connection ends.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

/// How the next member is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// Each member in turn.
    #[default]
    RoundRobin,
    /// The member with the fewest requests in flight (ties in turn).
    LeastOutstanding,
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "round-robin" | "roundrobin" | "rr" => Ok(Algorithm::RoundRobin),
            "least-outstanding" | "least-outstanding-requests" | "least" => {
                Ok(Algorithm::LeastOutstanding)
            }
            other => Err(format!(
                "unknown load balancing algorithm {other:?}: use round-robin or least-outstanding"
            )),
        }
    }
}

/// One member (a container's address) of a pool.
#[derive(Debug)]
pub struct Member {
    id: String,
    addr: SocketAddr,
    in_flight: AtomicUsize,
    served: AtomicU64,
    failures: AtomicU64,
    draining: AtomicBool,
}

impl Member {
    /// The member's identifier (the PaaS uses the member id).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Counters of one member at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStats {
    /// Member id.
    pub id: String,
    /// Its address.
    pub addr: SocketAddr,
    /// Requests (HTTP) or connections (TCP) being served now.
    pub in_flight: usize,
    /// Requests or connections completed or started since it joined.
    pub served: u64,
    /// Times it could not be reached.
    pub failures: u64,
    /// Whether it is being drained (takes no new traffic).
    pub draining: bool,
}

/// Counters of a pool at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// The pool's name (cluster and proxy port, for the PaaS).
    pub name: String,
    /// Requests in flight across all members.
    pub in_flight: usize,
    /// Per member, in the order they were added.
    pub members: Vec<MemberStats>,
}

#[derive(Debug)]
struct Shared {
    in_flight: AtomicUsize,
    /// Woken whenever a lease ends, for `drain`.
    released: Notify,
}

/// A set of members and the choice among them. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Pool {
    name: String,
    algorithm: Algorithm,
    members: RwLock<Vec<Arc<Member>>>,
    next: AtomicUsize,
    shared: Arc<Shared>,
}

/// One request or connection being served by `member`; uncounts on drop.
#[derive(Debug)]
pub struct Lease {
    member: Arc<Member>,
    shared: Arc<Shared>,
}

impl Lease {
    /// The member serving it.
    pub fn member(&self) -> &Member {
        &self.member
    }

    /// Records that the member could not be reached (the lease still ends
    /// normally when dropped).
    pub fn failed(&self) {
        self.member.failures.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.member.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        // Only a drain waits for leases to end, and it marks the member
        // first (SeqCst on both sides: either this sees the mark, or the
        // drain sees the count already down).
        if self.member.draining.load(Ordering::SeqCst) {
            self.shared.released.notify_waiters();
        }
    }
}

impl Pool {
    /// An empty pool.
    pub fn new(name: impl Into<String>, algorithm: Algorithm) -> Pool {
        Pool {
            name: name.into(),
            algorithm,
            members: RwLock::new(Vec::new()),
            next: AtomicUsize::new(0),
            shared: Arc::new(Shared {
                in_flight: AtomicUsize::new(0),
                released: Notify::new(),
            }),
        }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds a member, or changes the address of the member with this id
    /// (its counters start again then). A draining member re-added is active.
    pub fn add(&self, id: impl Into<String>, addr: SocketAddr) {
        let id = id.into();
        let mut members = self.members.write().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = members.iter().find(|m| m.id == id) {
            if m.addr == addr {
                m.draining.store(false, Ordering::Release);
                return;
            }
        }
        members.retain(|m| m.id != id);
        members.push(Arc::new(Member {
            id,
            addr,
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            draining: AtomicBool::new(false),
        }));
    }

    /// Removes a member at once; requests it is serving finish normally.
    /// Returns whether it was there.
    pub fn remove(&self, id: &str) -> bool {
        let mut members = self.members.write().unwrap_or_else(|e| e.into_inner());
        let before = members.len();
        members.retain(|m| m.id != id);
        members.len() != before
    }

    /// Makes the pool exactly these members (id, address), keeping the
    /// counters of those already in it.
    pub fn set_members(&self, wanted: &[(String, SocketAddr)]) {
        {
            let mut members = self.members.write().unwrap_or_else(|e| e.into_inner());
            members.retain(|m| wanted.iter().any(|(id, a)| *id == m.id && *a == m.addr));
        }
        for (id, addr) in wanted {
            self.add(id.clone(), *addr);
        }
    }

    /// Number of members taking new traffic.
    pub fn active(&self) -> usize {
        let members = self.members.read().unwrap_or_else(|e| e.into_inner());
        members
            .iter()
            .filter(|m| !m.draining.load(Ordering::Acquire))
            .count()
    }

    /// Chooses a member for a new request and counts it in flight; `None`
    /// when no member takes traffic. `skip` lists members already tried.
    pub fn pick(&self, skip: &[SocketAddr]) -> Option<Lease> {
        let members = self.members.read().unwrap_or_else(|e| e.into_inner());
        let n = members.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let eligible =
            |m: &&Arc<Member>| !m.draining.load(Ordering::Acquire) && !skip.contains(&m.addr);
        let chosen = match self.algorithm {
            Algorithm::RoundRobin => (0..n).map(|i| &members[(start + i) % n]).find(eligible),
            Algorithm::LeastOutstanding => (0..n)
                .map(|i| &members[(start + i) % n])
                .filter(eligible)
                .min_by_key(|m| m.in_flight.load(Ordering::Acquire)),
        }?;
        chosen.in_flight.fetch_add(1, Ordering::AcqRel);
        chosen.served.fetch_add(1, Ordering::Relaxed);
        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        Some(Lease {
            member: Arc::clone(chosen),
            shared: Arc::clone(&self.shared),
        })
    }

    /// Stops sending new traffic to member `id` and waits until what it
    /// serves is done, or `timeout` passes. Returns whether it finished
    /// (false also when there is no such member). The member stays in the
    /// pool, draining, until [`Pool::remove`].
    pub async fn drain(&self, id: &str, timeout: Duration) -> bool {
        let member = {
            let members = self.members.read().unwrap_or_else(|e| e.into_inner());
            match members.iter().find(|m| m.id == id) {
                Some(m) => Arc::clone(m),
                None => return false,
            }
        };
        member.draining.store(true, Ordering::SeqCst);
        let wait = async {
            loop {
                let released = self.shared.released.notified();
                if member.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                released.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// Requests in flight across the pool.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Acquire)
    }

    /// All counters at once.
    pub fn stats(&self) -> PoolStats {
        let members = self.members.read().unwrap_or_else(|e| e.into_inner());
        PoolStats {
            name: self.name.clone(),
            in_flight: self.in_flight(),
            members: members
                .iter()
                .map(|m| MemberStats {
                    id: m.id.clone(),
                    addr: m.addr,
                    in_flight: m.in_flight.load(Ordering::Acquire),
                    served: m.served.load(Ordering::Relaxed),
                    failures: m.failures.load(Ordering::Relaxed),
                    draining: m.draining.load(Ordering::Acquire),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn pool(algo: Algorithm, n: u16) -> Pool {
        let p = Pool::new("web", algo);
        for i in 0..n {
            p.add(format!("m{i}"), addr(9000 + i));
        }
        p
    }

    #[test]
    fn round_robin_takes_each_in_turn() {
        let p = pool(Algorithm::RoundRobin, 3);
        let ports: Vec<u16> = (0..6)
            .map(|_| p.pick(&[]).unwrap().member().addr().port())
            .collect();
        assert_eq!(ports, [9000, 9001, 9002, 9000, 9001, 9002]);
    }

    #[test]
    fn least_outstanding_prefers_the_idle_member() {
        let p = pool(Algorithm::LeastOutstanding, 3);
        let a = p.pick(&[]).unwrap();
        let b = p.pick(&[]).unwrap();
        // Two members busy: the third is idle, whatever the turn.
        for _ in 0..5 {
            let c = p.pick(&[]).unwrap();
            assert_ne!(c.member().addr(), a.member().addr());
            assert_ne!(c.member().addr(), b.member().addr());
        }
        assert_eq!(p.in_flight(), 2);
        drop(a);
        drop(b);
        assert_eq!(p.in_flight(), 0);
    }

    #[test]
    fn leases_count_per_member_and_pool() {
        let p = pool(Algorithm::RoundRobin, 2);
        let l1 = p.pick(&[]).unwrap();
        let l2 = p.pick(&[]).unwrap();
        let l3 = p.pick(&[]).unwrap();
        let s = p.stats();
        assert_eq!(s.in_flight, 3);
        assert_eq!(s.members[0].in_flight, 2);
        assert_eq!(s.members[1].in_flight, 1);
        drop((l1, l2, l3));
        let s = p.stats();
        assert_eq!(s.in_flight, 0);
        assert_eq!(s.members[0].served, 2);
    }

    #[test]
    fn skip_and_empty_pools() {
        let p = pool(Algorithm::RoundRobin, 2);
        for _ in 0..4 {
            let l = p.pick(&[addr(9000)]).unwrap();
            assert_eq!(l.member().addr(), addr(9001));
        }
        assert!(p.pick(&[addr(9000), addr(9001)]).is_none());
        assert!(Pool::new("none", Algorithm::RoundRobin).pick(&[]).is_none());
    }

    #[test]
    fn set_members_keeps_counters_of_those_kept() {
        let p = pool(Algorithm::RoundRobin, 2);
        let held = p.pick(&[]).unwrap();
        assert_eq!(held.member().id(), "m0");
        p.set_members(&[("m0".into(), addr(9000)), ("m9".into(), addr(9009))]);
        let s = p.stats();
        let ids: Vec<&str> = s.members.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["m0", "m9"]);
        assert_eq!(s.members[0].in_flight, 1);
        assert!(p.remove("m9"));
        assert!(!p.remove("m9"));
    }

    #[tokio::test]
    async fn drain_stops_new_traffic_and_waits_for_the_rest() {
        let p = Arc::new(pool(Algorithm::RoundRobin, 2));
        let held = p.pick(&[]).unwrap();
        assert_eq!(held.member().id(), "m0");
        let p2 = Arc::clone(&p);
        let drained = tokio::spawn(async move { p2.drain("m0", Duration::from_secs(30)).await });
        tokio::task::yield_now().await;
        // While draining, m0 gets nothing new.
        for _ in 0..4 {
            assert_eq!(p.pick(&[]).unwrap().member().id(), "m1");
        }
        assert_eq!(p.active(), 1);
        drop(held);
        assert!(drained.await.unwrap());
        assert!(p.stats().members[0].draining);
        // Re-adding makes it active again.
        p.add("m0", addr(9000));
        assert_eq!(p.active(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_gives_up_after_the_timeout() {
        let p = pool(Algorithm::RoundRobin, 1);
        let _held = p.pick(&[]).unwrap();
        assert!(!p.drain("m0", Duration::from_secs(5)).await);
        assert!(!p.drain("nobody", Duration::from_secs(5)).await);
    }

    #[test]
    fn algorithm_names() {
        assert_eq!("rr".parse::<Algorithm>(), Ok(Algorithm::RoundRobin));
        assert_eq!(
            "least-outstanding".parse::<Algorithm>(),
            Ok(Algorithm::LeastOutstanding)
        );
        assert!("random"
            .parse::<Algorithm>()
            .unwrap_err()
            .contains("round-robin"));
    }
}
