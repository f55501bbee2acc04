//! The leader's periodic duties: revoking expired leases and compacting history older than the retention. Every
//! member runs this task; it acts only while its member leads, and each act is a write through Raft, so what it
//! does is replicated and deterministic.

use std::sync::Arc;
use std::time::Duration;

use navarch_bus::store::StoreError;
use openraft::ServerState;
use tokio::time::{Instant, MissedTickBehavior};

use super::service::{Failure, Service};
use crate::compactor::Compactor;
use crate::mvcc::{Reader, Write};

/// How often expired leases are looked for (etcd's lessor checks every 500 ms).
pub const LEASE_CHECK: Duration = Duration::from_millis(500);

/// How often the duties run: every [`LEASE_CHECK`], or more often when the compactor samples more often.
pub fn interval(retention: Duration) -> Duration {
    let compaction = Compactor::new(retention).interval();
    if compaction.is_zero() {
        LEASE_CHECK
    } else {
        compaction.clamp(Duration::from_millis(10), LEASE_CHECK)
    }
}

/// Runs the duties until aborted.
pub async fn run(service: Arc<Service>, retention: Duration) {
    let mut ticks = tokio::time::interval(interval(retention));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut compactor = None;
    loop {
        ticks.tick().await;
        let metrics = service.raft.metrics().borrow().clone();
        if metrics.state != ServerState::Leader || metrics.current_leader != Some(service.id) {
            service.step_down();
            compactor = None;
            continue;
        }
        let now = Instant::now();
        let applied = metrics.last_applied.map(|l| l.index);
        match service.expired_leases(metrics.current_term, applied, now) {
            Ok(expired) => {
                for id in expired {
                    tracing::debug!(lease = id, "lease expired: revoking it");
                    settle(
                        "revoke an expired lease",
                        service.propose(Write::LeaseRevoke(id)).await,
                    );
                }
            }
            Err(e) => settle::<()>("check lease deadlines", Err(e)),
        }
        if retention.is_zero() {
            continue;
        }
        let compactor = compactor.get_or_insert_with(|| Compactor::new(retention));
        let revisions = match service.storage.reader().revisions() {
            Ok(revisions) => revisions,
            Err(e) => {
                settle::<()>("read revisions", Err(e.into()));
                continue;
            }
        };
        if let Some(target) = compactor.observe(now, revisions.current, revisions.compacted) {
            tracing::debug!(revision = target, "automatic compaction");
            settle(
                "compact automatically",
                service.propose(Write::Compact(target)).await,
            );
        }
    }
}

/// Logs what a duty's write failed with. A lease already gone or a revision already compacted means another
/// write got there first; the next tick retries the rest.
fn settle<T>(what: &str, outcome: Result<T, Failure>) {
    match outcome {
        Ok(_)
        | Err(Failure::Store(StoreError::LeaseNotFound { .. }))
        | Err(Failure::Store(StoreError::Compacted { .. })) => {}
        Err(Failure::Store(e)) => tracing::warn!(error = %e, "cannot {what}"),
        Err(Failure::Redirect(leader)) => {
            tracing::debug!(?leader, "cannot {what}: no longer the leader")
        }
    }
}
