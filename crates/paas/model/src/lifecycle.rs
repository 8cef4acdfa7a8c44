//! Member lifecycle: Stratos's member states and the moves between them.
//!
//! `Pending → Created → Initialized → Starting → Active → ReadyToShutdown →
//! Terminated`, where any live state may also end in `Terminated` (a crash,
//! a failed start) and a member still starting may be asked to shut down.
//! `Pending` is strato's addition: a member waiting for host capacity.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a member is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MemberStatus {
    /// Waiting for a host with room; nothing exists yet.
    Pending,
    /// Its container exists.
    Created,
    /// Its container was started.
    Initialized,
    /// Its process runs; its ports or health check are not answering yet.
    Starting,
    /// Serving: the load balancer sends it traffic.
    Active,
    /// Drained by the load balancer before it stops.
    ReadyToShutdown,
    /// Gone.
    Terminated,
}

impl MemberStatus {
    /// Whether the move `self → next` is allowed.
    pub fn can_become(self, next: MemberStatus) -> bool {
        use MemberStatus::*;
        matches!(
            (self, next),
            (Pending, Created)
                | (Created, Initialized)
                | (Initialized, Starting)
                | (Starting, Active)
                | (Active, ReadyToShutdown)
                | (Starting, ReadyToShutdown)
                | (
                    Pending | Created | Initialized | Starting | Active | ReadyToShutdown,
                    Terminated
                )
        )
    }

    /// Whether the member is gone for good.
    pub fn is_terminal(self) -> bool {
        self == MemberStatus::Terminated
    }

    /// Whether the load balancer may send it traffic.
    pub fn is_serving(self) -> bool {
        self == MemberStatus::Active
    }
}

impl fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::MemberStatus::{self, *};

    const ALL: [MemberStatus; 7] = [
        Pending,
        Created,
        Initialized,
        Starting,
        Active,
        ReadyToShutdown,
        Terminated,
    ];

    #[test]
    fn the_happy_path_is_allowed() {
        for w in ALL.windows(2) {
            assert!(w[0].can_become(w[1]), "{} -> {}", w[0], w[1]);
        }
    }

    #[test]
    fn no_way_back_and_nothing_after_terminated() {
        for (i, a) in ALL.iter().enumerate() {
            for b in &ALL[..=i] {
                assert!(!a.can_become(*b), "{a} -> {b}");
            }
            assert_eq!(a.can_become(Terminated), *a != Terminated);
        }
        assert!(!Pending.can_become(Active));
        assert!(!Created.can_become(Active));
        assert!(Starting.can_become(ReadyToShutdown));
        assert!(Active.is_serving() && !Starting.is_serving());
        assert!(Terminated.is_terminal());
    }
}
