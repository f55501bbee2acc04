//! Serving leases, alarms and the space quota: grants, revokes and alarms go through Raft; keep-alives and
//! time-to-live are answered by the leader from its [`Lessor`]; the quota is checked before a write that adds
//! data is proposed (etcd's quota check at the front door), raising the replicated NOSPACE alarm.

use std::sync::MutexGuard;

use navarch_bus::store::{
    Alarm, AlarmKind, AlarmResponse, LeaseGrantRequest, LeaseLeasesResponse, LeaseResponse,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, ResponseHeader, StoreError, StoreResponse,
};
use tokio::time::Instant;

use super::service::{Failure, Service};
use crate::lessor::Lessor;
use crate::mvcc::{self, Lease, Reader, Write};

/// The lease clock of a leader: the term it leads in, and the applied log index its lessor last synced at.
#[derive(Debug)]
pub struct Leading {
    term: u64,
    synced: Option<u64>,
    lessor: Lessor,
}

fn header(revision: i64) -> ResponseHeader {
    ResponseHeader {
        revision,
        ..Default::default()
    }
}

impl Service {
    fn leading(&self) -> MutexGuard<'_, Option<Leading>> {
        // A panic while holding the lock leaves deadlines that are still valid.
        self.leading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the lessor of `term`, promoting one (every lease a full TTL from `now`) if this member has none
    /// for that term yet. The state machine is read under the lock, so a grant applied before the lock is seen.
    fn with_lessor<T>(
        &self,
        term: u64,
        applied: Option<u64>,
        now: Instant,
        f: impl FnOnce(&mut Lessor, &crate::storage::FjallReader) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let mut leading = self.leading();
        let reader = self.storage.reader();
        let fresh = leading.as_ref().is_none_or(|l| l.term != term);
        let stale = leading.as_ref().is_some_and(|l| l.synced != applied);
        if fresh || stale {
            let mut leases = Vec::new();
            reader.leases(&mut |lease| {
                leases.push(lease);
                true
            })?;
            match leading.as_mut().filter(|_| !fresh) {
                Some(l) => {
                    l.lessor.sync(leases, now);
                    l.synced = applied;
                }
                None => {
                    *leading = Some(Leading {
                        term,
                        synced: applied,
                        lessor: Lessor::promote(leases, now),
                    })
                }
            }
        }
        match leading.as_mut() {
            Some(l) => f(&mut l.lessor, &reader),
            None => Err(StoreError::Internal("lessor vanished".into()).into()),
        }
    }

    /// The leader's periodic lease duty: syncs the lessor with the state machine and answers the leases whose
    /// revoke is due. Only called while this member leads in `term`.
    pub(super) fn expired_leases(
        &self,
        term: u64,
        applied: Option<u64>,
        now: Instant,
    ) -> Result<Vec<i64>, Failure> {
        self.with_lessor(term, applied, now, |lessor, _| Ok(lessor.expired(now)))
    }

    /// Forgets the lease clock: this member no longer leads.
    pub(super) fn step_down(&self) {
        *self.leading() = None;
    }

    /// This member's term and applied index, once a linearizable check confirmed it leads.
    async fn lead(&self) -> Result<(u64, Option<u64>), Failure> {
        self.linearize().await?;
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(self.id) {
            return Err(Failure::Redirect(metrics.current_leader));
        }
        Ok((metrics.current_term, metrics.last_applied.map(|l| l.index)))
    }

    /// Grants a lease of at least the minimum TTL, through Raft; its clock starts when the grant is applied.
    pub(super) async fn lease_grant(
        &self,
        request: &LeaseGrantRequest,
    ) -> Result<StoreResponse, Failure> {
        let lease = Lease {
            id: request.id,
            ttl: request.ttl.max(self.min_lease_ttl),
        };
        self.write(Write::LeaseGrant(lease)).await
    }

    /// Renews a lease to its full TTL; an unknown or expired lease is not found.
    pub(super) async fn lease_keep_alive(&self, id: i64) -> Result<StoreResponse, Failure> {
        let (term, applied) = self.lead().await?;
        let now = Instant::now();
        self.with_lessor(term, applied, now, |lessor, reader| {
            let lease = reader.lease(id)?;
            let ttl = lease.and_then(|lease| lessor.renew(lease, now));
            let ttl = ttl.ok_or(StoreError::LeaseNotFound { id })?;
            Ok(StoreResponse::Lease(LeaseResponse {
                header: header(reader.revisions()?.current),
                id,
                ttl,
            }))
        })
    }

    /// A lease's remaining time (-1 when it does not exist or has expired, as etcd answers), granted TTL and
    /// keys.
    pub(super) async fn lease_time_to_live(
        &self,
        request: &LeaseTimeToLiveRequest,
    ) -> Result<StoreResponse, Failure> {
        let (term, applied) = self.lead().await?;
        let now = Instant::now();
        self.with_lessor(term, applied, now, |lessor, reader| {
            let mut response = LeaseTimeToLiveResponse {
                header: header(reader.revisions()?.current),
                id: request.id,
                ttl: -1,
                ..Default::default()
            };
            if let Some(lease) = reader.lease(request.id)? {
                response.ttl = lessor.remaining(lease, now);
                response.granted_ttl = lease.ttl;
                if request.keys {
                    reader.lease_keys(lease.id, &mut |key| {
                        response.keys.push(key);
                        true
                    })?;
                }
            }
            Ok(StoreResponse::LeaseTimeToLive(response))
        })
    }

    /// Every live lease.
    pub(super) async fn lease_leases(&self) -> Result<StoreResponse, Failure> {
        self.linearize().await?;
        let reader = self.storage.reader();
        let mut leases = Vec::new();
        reader.leases(&mut |lease| {
            leases.push(lease.id);
            true
        })?;
        Ok(StoreResponse::LeaseLeases(LeaseLeasesResponse {
            header: header(reader.revisions()?.current),
            leases,
        }))
    }

    /// The active alarms; with `disarm`, NOSPACE is first cleared if the counted size is back within the quota
    /// (otherwise it stays: the next write would raise it again).
    pub(super) async fn alarms(&self, disarm: bool) -> Result<StoreResponse, Failure> {
        self.linearize().await?;
        let ledger = self.storage.reader().ledger()?;
        let out_of_space = ledger.alarms.iter().any(|a| a.kind == AlarmKind::NoSpace);
        if disarm && out_of_space && ledger.bytes <= self.quota_bytes {
            return self.propose(Write::AlarmDisarm(AlarmKind::NoSpace)).await;
        }
        let revision = self.storage.reader().revisions()?.current;
        Ok(StoreResponse::Alarms(AlarmResponse {
            header: header(revision),
            alarms: ledger.alarms,
        }))
    }

    /// Refuses a write that would take the counted size past the quota, raising the NOSPACE alarm through Raft
    /// first so every member refuses such writes until it is disarmed.
    pub(super) async fn check_quota(&self, write: &Write) -> Result<(), Failure> {
        let cost = mvcc::write_cost(write);
        if cost == 0 {
            return Ok(());
        }
        let ledger = self.storage.reader().ledger()?;
        if ledger.bytes.saturating_add(cost) <= self.quota_bytes {
            return Ok(());
        }
        let alarm = Alarm {
            member_id: self.id,
            kind: AlarmKind::NoSpace,
        };
        if !ledger.alarms.iter().any(|a| a.kind == AlarmKind::NoSpace) {
            tracing::warn!(
                bytes = ledger.bytes,
                quota = self.quota_bytes,
                "space quota exhausted: raising the NOSPACE alarm"
            );
            self.propose(Write::AlarmRaise(alarm)).await?;
        }
        Err(StoreError::NoSpace.into())
    }
}
