//! [`Lessor`]: the leader's lease clock, a pure core: which leases expire when, given the leases the state machine
//! holds and the time now. The leader proposes a revoke for each lease [`Lessor::expired`] returns, so expiry is
//! replicated through Raft like any write.
//!
//! As etcd's lessor: only the leader keeps deadlines; a new leader (or a restarted lone member) gives every lease
//! a full TTL from when it took over ([`Lessor::promote`], etcd's `Promote`), so a failover never makes a lease
//! expire early; keep-alives renew to the full TTL; a lease past its deadline cannot be renewed.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::mvcc::Lease;

/// How long the leader waits before proposing the revoke of an expired lease again, when the first proposal did
/// not take effect (etcd's `expiredLeaseRetryInterval`).
pub const REVOKE_RETRY: Duration = Duration::from_secs(3);

/// One lease as the leader tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tracked {
    ttl: i64,
    /// When it expires (`None`: too far away to represent, never in practice).
    deadline: Option<Instant>,
    /// Its revoke has been proposed: it can no longer be renewed.
    revoking: bool,
}

/// The leader's deadlines of every live lease.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lessor {
    tracked: BTreeMap<i64, Tracked>,
}

/// `now` plus `ttl` seconds.
fn deadline(now: Instant, ttl: i64) -> Option<Instant> {
    now.checked_add(Duration::from_secs(u64::try_from(ttl).unwrap_or(0)))
}

impl Lessor {
    /// The lessor of a member that just became leader: every lease gets its full TTL from `now`.
    pub fn promote(leases: impl IntoIterator<Item = Lease>, now: Instant) -> Self {
        let mut lessor = Self::default();
        lessor.sync(leases, now);
        lessor
    }

    /// Brings the tracked set in line with the leases the state machine holds: a lease seen for the first time
    /// gets its full TTL from `now`; a lease gone (revoked) is forgotten; the others keep their deadlines.
    pub fn sync(&mut self, leases: impl IntoIterator<Item = Lease>, now: Instant) {
        let mut tracked = BTreeMap::new();
        for lease in leases {
            let entry = self.tracked.get(&lease.id).copied().unwrap_or(Tracked {
                ttl: lease.ttl,
                deadline: deadline(now, lease.ttl),
                revoking: false,
            });
            tracked.insert(lease.id, entry);
        }
        self.tracked = tracked;
    }

    /// Renews `lease` (live in the state machine) to its full TTL from `now`; answers the TTL, or `None` when the
    /// lease is past its deadline and waits for its revoke.
    pub fn renew(&mut self, lease: Lease, now: Instant) -> Option<i64> {
        let fresh = Tracked {
            ttl: lease.ttl,
            deadline: deadline(now, lease.ttl),
            revoking: false,
        };
        let tracked = self.tracked.entry(lease.id).or_insert(fresh);
        if tracked.revoking || tracked.deadline.is_some_and(|d| d <= now) {
            return None;
        }
        *tracked = fresh;
        Some(lease.ttl)
    }

    /// Whole seconds `lease` has left (its full TTL if it was never tracked, as a new leader would give it), or
    /// -1 when it is past its deadline (etcd's answer for an expired lease).
    pub fn remaining(&self, lease: Lease, now: Instant) -> i64 {
        let Some(tracked) = self.tracked.get(&lease.id) else {
            return lease.ttl;
        };
        match tracked.deadline {
            _ if tracked.revoking => -1,
            None => tracked.ttl,
            Some(deadline) if deadline <= now => -1,
            Some(deadline) => i64::try_from((deadline - now).as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// Leases whose deadline has passed and whose revoke is due: each is marked revoking and comes back only
    /// after [`REVOKE_RETRY`], should its revoke not have taken effect by then.
    pub fn expired(&mut self, now: Instant) -> Vec<i64> {
        let mut due = Vec::new();
        for (id, tracked) in &mut self.tracked {
            if tracked.deadline.is_some_and(|d| d <= now) {
                tracked.revoking = true;
                tracked.deadline = now.checked_add(REVOKE_RETRY);
                due.push(*id);
            }
        }
        due
    }

    /// Number of leases tracked.
    pub fn len(&self) -> usize {
        self.tracked.len()
    }

    /// Whether no lease is tracked.
    pub fn is_empty(&self) -> bool {
        self.tracked.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: i64, ttl: i64) -> Lease {
        Lease { id, ttl }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn leases_expire_after_their_ttl_and_not_before() {
        let t0 = Instant::now();
        let mut lessor = Lessor::promote([lease(1, 5), lease(2, 10)], t0);
        assert_eq!(lessor.expired(t0 + secs(4)), Vec::<i64>::new());
        assert_eq!(lessor.remaining(lease(1, 5), t0 + secs(4)), 1);
        assert_eq!(lessor.expired(t0 + secs(5)), vec![1]);
        assert_eq!(
            lessor.expired(t0 + secs(6)),
            Vec::<i64>::new(),
            "a revoke in flight is not proposed again at once"
        );
        assert_eq!(lessor.remaining(lease(1, 5), t0 + secs(6)), -1);
        assert_eq!(
            lessor.renew(lease(1, 5), t0 + secs(6)),
            None,
            "an expired lease cannot be renewed"
        );
        assert_eq!(
            lessor.expired(t0 + secs(5) + REVOKE_RETRY),
            vec![1],
            "a revoke that did not take effect is proposed again"
        );
        assert_eq!(lessor.expired(t0 + secs(10)), vec![2]);
    }

    #[test]
    fn renewal_restarts_the_full_ttl() {
        let t0 = Instant::now();
        let mut lessor = Lessor::promote([lease(7, 3)], t0);
        assert_eq!(lessor.renew(lease(7, 3), t0 + secs(2)), Some(3));
        assert!(lessor.expired(t0 + secs(4)).is_empty());
        assert_eq!(lessor.remaining(lease(7, 3), t0 + secs(4)), 1);
        assert_eq!(lessor.expired(t0 + secs(5)), vec![7]);
    }

    #[test]
    fn a_new_leader_gives_every_lease_a_full_ttl_from_its_promotion() {
        let t0 = Instant::now();
        // The old leader's clock is lost with it: the lease had 1 s left there, the new leader gives it 10 again.
        let later = t0 + secs(9);
        let mut lessor = Lessor::promote([lease(1, 10)], later);
        assert!(lessor.expired(t0 + secs(18)).is_empty());
        assert_eq!(lessor.expired(t0 + secs(19)), vec![1]);
    }

    #[test]
    fn sync_tracks_new_leases_and_forgets_revoked_ones() {
        let t0 = Instant::now();
        let mut lessor = Lessor::promote([lease(1, 5)], t0);
        lessor.sync([lease(1, 5), lease(2, 5)], t0 + secs(1));
        assert_eq!(lessor.len(), 2);
        assert_eq!(lessor.expired(t0 + secs(5)), vec![1], "1 kept its deadline");
        assert_eq!(lessor.expired(t0 + secs(6)), vec![2], "2 started at sync");
        lessor.sync([lease(2, 5)], t0 + secs(9));
        assert_eq!(lessor.len(), 1);
        lessor.sync([], t0 + secs(9));
        assert!(lessor.is_empty());
        // A lease renewed before any sync saw it is tracked from the renewal.
        assert_eq!(lessor.renew(lease(3, 4), t0 + secs(10)), Some(4));
        assert_eq!(lessor.remaining(lease(3, 4), t0 + secs(11)), 3);
        assert_eq!(lessor.remaining(lease(4, 4), t0 + secs(11)), 4);
    }

    #[test]
    fn huge_ttls_never_overflow() {
        let t0 = Instant::now();
        let mut lessor = Lessor::promote([lease(1, i64::MAX), lease(2, -5)], t0);
        assert_eq!(lessor.expired(t0 + secs(1)), vec![2]);
        assert!(lessor.remaining(lease(1, i64::MAX), t0) > 0);
    }
}
