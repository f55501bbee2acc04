//! [`Proposer`]: group commit. Writes proposed while earlier ones are in flight travel together in one log entry
//! ([`Batch`]), so one fsync on each member and one replication message carry them all; the state machine still
//! gives each write its own revision, in order.
//!
//! openraft 0.9 appends (and fsyncs) each `client_write` as its own log entry before it looks at the next one, so
//! without grouping a member's throughput is bounded by its fsync rate. A proposer keeps at most
//! [`MAX_IN_FLIGHT`] entries in flight: writes arriving while all of them are busy wait and go out together in the
//! next one. An idle store proposes a lone write at once, so grouping costs no latency.
//!
//! An entry stays in flight only while this member leads in the term it was proposed in. openraft 0.9 answers the
//! proposer of an entry a new leader overwrote only when the entry is truncated as a conflict; when the deposed
//! leader catches up by installing a snapshot instead, the answer never comes, and a later entry applied at the
//! same index would be answered to the wrong proposer. So a proposal ends, answered "may have been applied", as
//! soon as the term changes or another member leads, and an answer from an entry of another term is never passed
//! on.

use std::sync::Arc;
use std::time::Duration;

use navarch_bus::store::{StoreError, StoreResponse};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::service::{unavailable, Failure};
use crate::mvcc::Write;
use crate::types::{Batch, Raft};

/// Entries proposed and not yet applied, at most.
pub const MAX_IN_FLIGHT: usize = 4;
/// Writes one entry carries, at most.
pub const MAX_BATCH_WRITES: usize = 1024;
/// Bytes (keys and values) one entry carries, at most; a larger write goes alone.
pub const MAX_BATCH_BYTES: usize = 512 << 10;

struct Pending {
    write: Write,
    bytes: usize,
    reply: oneshot::Sender<Result<StoreResponse, Failure>>,
}

/// Proposes writes in groups. Cheap to share: one task does the grouping.
pub struct Proposer {
    queue: mpsc::UnboundedSender<Pending>,
}

impl Proposer {
    /// Starts grouping writes for `raft`; the task ends when the proposer is dropped.
    /// `patience` bounds a proposal made while this member did not know itself leader.
    pub fn spawn(raft: Raft, patience: Duration) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(group(raft, pending, patience));
        Self { queue }
    }

    /// Proposes `write` and waits until its entry is applied: the state machine's answer to this write, or
    /// [`Failure::Redirect`] when this member does not lead.
    pub(super) async fn propose(&self, write: Write) -> Result<StoreResponse, Failure> {
        let (reply, answer) = oneshot::channel();
        let bytes = payload_bytes(&write);
        self.queue
            .send(Pending {
                write,
                bytes,
                reply,
            })
            .map_err(|_| unavailable("the store member is shutting down".into()))?;
        answer.await.map_err(|_| {
            unavailable(
                "the store member stopped before answering; the write may have been applied".into(),
            )
        })?
    }
}

/// Bytes of keys and values a write carries (what makes a log entry large).
fn payload_bytes(write: &Write) -> usize {
    use navarch_bus::store::TxnOp;
    let op_bytes = |op: &TxnOp| match op {
        TxnOp::Put(p) => p.key.len() + p.value.len(),
        TxnOp::Delete(d) => d.key.len() + d.range_end.len(),
        TxnOp::Range(r) => r.key.len() + r.range_end.len(),
    };
    match write {
        Write::Put(put) => put.key.len() + put.value.len(),
        Write::Delete(delete) => delete.key.len() + delete.range_end.len(),
        Write::Txn(txn) => {
            txn.compare
                .iter()
                .map(|c| {
                    c.key.len()
                        + match &c.target {
                            navarch_bus::store::CompareTarget::Value(v) => v.len(),
                            _ => 0,
                        }
                })
                .sum::<usize>()
                + txn.success.iter().map(op_bytes).sum::<usize>()
                + txn.failure.iter().map(op_bytes).sum::<usize>()
        }
        _ => 0,
    }
}

/// Collects what is queued into entries, one at a time as in-flight slots free up.
async fn group(raft: Raft, mut pending: mpsc::UnboundedReceiver<Pending>, patience: Duration) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut carried: Option<Pending> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(first) => first,
            None => match pending.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        // A caller that gave up (its deadline passed while the slots were busy) has been told the write may
        // still be applied; it is not proposed now.
        if first.reply.is_closed() {
            continue;
        }
        let mut bytes = first.bytes;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_WRITES {
            match pending.try_recv() {
                Ok(next) if bytes + next.bytes > MAX_BATCH_BYTES => {
                    carried = Some(next);
                    break;
                }
                Ok(next) if next.reply.is_closed() => {}
                Ok(next) => {
                    bytes += next.bytes;
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let (writes, replies): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|p| (p.write, p.reply)).unzip();
            let (term, leading) = {
                let metrics = raft.metrics();
                let m = metrics.borrow();
                (m.current_term, m.current_leader == Some(m.id))
            };
            let outcome = tokio::select! {
                biased;
                outcome = raft.client_write(Batch(writes)) => Some(outcome),
                () = deposed(&raft, term), if leading => None,
                // A member that does not lead is refused at once; this bounds the case where it just became
                // leader and the term read above is already stale.
                () = tokio::time::sleep(patience), if !leading => None,
            };
            drop(slot);
            match outcome {
                None => {
                    let lost = unavailable(format!(
                        "leadership changed (term {term}) before the write committed; it may still be applied"
                    ));
                    for reply in replies {
                        let _ = reply.send(Err(lost.clone()));
                    }
                }
                Some(Ok(response)) if response.log_id.leader_id.term != term => {
                    let stray = unavailable(format!(
                        "the answer came from an entry of term {} proposed in term {term}; the write may still \
                         be applied",
                        response.log_id.leader_id.term
                    ));
                    for reply in replies {
                        let _ = reply.send(Err(stray.clone()));
                    }
                }
                Some(Ok(response)) => {
                    let mut answers = response.data.0.into_iter();
                    for reply in replies {
                        let answer = answers.next().unwrap_or_else(|| {
                            Err(StoreError::Internal(
                                "write applied without an answer".into(),
                            ))
                        });
                        let _ = reply.send(answer.map_err(Failure::Store));
                    }
                }
                Some(Err(e)) => {
                    let refusal = match e {
                        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                            Failure::Redirect(f.leader_id)
                        }
                        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                            unavailable(e.to_string())
                        }
                        RaftError::Fatal(e) => unavailable(e.to_string()),
                    };
                    for reply in replies {
                        let _ = reply.send(Err(refusal.clone()));
                    }
                }
            }
        });
    }
}

/// Returns once this member no longer leads in `term`: the term moved on, or another member (or none) leads.
async fn deposed(raft: &Raft, term: u64) {
    let mut metrics = raft.metrics();
    let _ = metrics
        .wait_for(|m| m.current_term != term || m.current_leader != Some(m.id))
        .await;
}
