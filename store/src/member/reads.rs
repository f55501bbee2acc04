//! Linearizable reads (ReadIndex). A read needs a *read index*: a log index that was committed when the read
//! began, learnt from a leader that confirmed with a heartbeat round that it still leads. The member then waits
//! until its own state machine has applied that index and reads locally. The leader gets the index from openraft
//! (`get_read_log_id`); any other member asks the leader for it (`RaftMessage::ReadIndex`), so reads spread over
//! every member.
//!
//! Concurrent reads share rounds ([`Rounds`]): a read joins the first round that starts after it arrived, so one
//! heartbeat round serves every read that arrived while the previous one was in flight.

use std::future::Future;
use std::sync::{Arc, Mutex};

use navarch_bus::store::StoreError;
use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::ServerState;
use tokio::sync::oneshot;

use super::service::{Failure, Service};
use crate::network::{self, RaftMessage, RaftReply};
use crate::types::{NodeId, Raft};

/// What a read index round gives: the index to wait for (`None`: nothing committed yet), or why there is none.
pub type ReadIndex = Result<Option<u64>, Failure>;

/// Rounds of one kind of request shared by concurrent callers. Each caller gets the result of the first round
/// that starts after it asked, so the result is as fresh as a round of its own would be.
pub struct Rounds<T> {
    state: Mutex<RoundState<T>>,
}

struct RoundState<T> {
    running: bool,
    waiting: Vec<oneshot::Sender<T>>,
}

impl<T: Clone + Send + 'static> Rounds<T> {
    /// No round yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(RoundState {
                running: false,
                waiting: Vec::new(),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RoundState<T>> {
        // The state stays consistent under a panic elsewhere: every change is one assignment.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the next round's result. When no round is running, `round` starts one in a task of its own,
    /// which goes on running rounds while callers wait. `None`: the round was dropped (the runtime is stopping).
    pub async fn join<F, Fut>(self: &Arc<Self>, round: F) -> Option<T>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send,
    {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut state = self.state();
            state.waiting.push(tx);
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            let rounds = self.clone();
            tokio::spawn(async move { rounds.drive(round).await });
        }
        rx.await.ok()
    }

    async fn drive<F, Fut>(&self, round: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = T>,
    {
        loop {
            let batch = {
                let mut state = self.state();
                if state.waiting.is_empty() {
                    state.running = false;
                    return;
                }
                std::mem::take(&mut state.waiting)
            };
            // Taken before the round starts: everyone in the batch asked before it.
            let result = round().await;
            for waiter in batch {
                let _ = waiter.send(result.clone());
            }
        }
    }
}

/// The read index rounds of one member: as leader, and as a member asking each leader it knows (reads for a new
/// leader never wait behind a round stuck on the old one).
pub struct ReadRounds {
    local: Arc<Rounds<ReadIndex>>,
    remote: Mutex<(NodeId, Arc<Rounds<ReadIndex>>)>,
}

impl ReadRounds {
    /// No round yet.
    pub fn new() -> Self {
        Self {
            local: Rounds::new(),
            remote: Mutex::new((0, Rounds::new())),
        }
    }

    /// The rounds asking `leader`.
    fn remote(&self, leader: NodeId) -> Arc<Rounds<ReadIndex>> {
        let mut remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        if remote.0 != leader {
            *remote = (leader, Rounds::new());
        }
        remote.1.clone()
    }
}

/// The read index as leader: openraft confirms leadership with a heartbeat round.
async fn local_round(raft: Raft, timeout: std::time::Duration) -> ReadIndex {
    match tokio::time::timeout(timeout, raft.get_read_log_id()).await {
        Err(_) => Err(Failure::Store(StoreError::Unavailable(format!(
            "leadership not confirmed within {timeout:?}"
        )))),
        Ok(Ok((read, _applied))) => Ok(read.map(|l| l.index)),
        Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
            let known = raft.metrics().borrow().current_leader;
            Err(Failure::Redirect(f.leader_id.or(known)))
        }
        Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)))) => {
            Err(Failure::Store(StoreError::Unavailable(e.to_string())))
        }
        Ok(Err(RaftError::Fatal(e))) => Err(Failure::Store(StoreError::Unavailable(e.to_string()))),
    }
}

/// The read index from `leader`. When it cannot give one (an older version), the read is redirected to it.
async fn remote_round(
    bus: navarch_bus::Bus,
    leader: NodeId,
    timeout: std::time::Duration,
) -> ReadIndex {
    match network::call(&bus, leader, &RaftMessage::ReadIndex, timeout).await {
        Ok(RaftReply::ReadIndex(Ok(index))) => Ok(index),
        Ok(RaftReply::ReadIndex(Err(StoreError::NotLeader { leader }))) => {
            Err(Failure::Redirect(leader))
        }
        Ok(RaftReply::ReadIndex(Err(e))) => Err(Failure::Store(e)),
        Ok(other) => {
            tracing::debug!(leader, reply = ?other, "the leader gives no read index; forwarding the read");
            Err(Failure::Redirect(Some(leader)))
        }
        Err(navarch_bus::Error::NoResponders { .. }) => Err(Failure::Redirect(Some(leader))),
        Err(e) => Err(Failure::Store(StoreError::Unavailable(format!(
            "no read index from leader {leader}: {e}"
        )))),
    }
}

impl Service {
    /// Waits until a read on this member's state machine is linearizable: it has applied a read index learnt
    /// after this call began.
    pub(super) async fn linearize(&self) -> Result<(), Failure> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let leading = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            metrics.state == ServerState::Leader && metrics.current_leader == Some(self.id)
        };
        let index = if leading {
            match self.local_read_index().await {
                // Not the leader any more: ask the one that is.
                Err(Failure::Redirect(Some(leader))) if leader != self.id => {
                    self.remote_read_index().await?
                }
                other => other?,
            }
        } else {
            self.remote_read_index().await?
        };
        let Some(index) = index else { return Ok(()) };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.raft
            .wait(Some(left))
            .applied_index_at_least(Some(index), "the read index is applied")
            .await
            .map(drop)
            .map_err(|e| {
                Failure::Store(StoreError::Unavailable(format!(
                    "this member did not apply up to the read index {index} in time: {e}"
                )))
            })
    }

    /// A read index as leader, from the next shared round. Answers `RaftMessage::ReadIndex` too.
    pub(super) async fn local_read_index(&self) -> ReadIndex {
        let (raft, timeout) = (self.raft.clone(), self.timeout);
        let round = move || local_round(raft.clone(), timeout);
        self.joined(self.reads.local.join(round)).await
    }

    /// A read index from the leader this member knows, from the next shared round. Without a leader, the read
    /// is redirected (and waits for one).
    async fn remote_read_index(&self) -> ReadIndex {
        let known = self.raft.metrics().borrow().current_leader;
        let Some(leader) = known.filter(|leader| *leader != self.id) else {
            return Err(Failure::Redirect(known));
        };
        let (bus, timeout) = (self.bus.clone(), self.timeout);
        let round = move || remote_round(bus.clone(), leader, timeout);
        self.joined(self.reads.remote(leader).join(round)).await
    }

    async fn joined(&self, round: impl Future<Output = Option<ReadIndex>>) -> ReadIndex {
        match tokio::time::timeout(self.timeout, round).await {
            Ok(Some(index)) => index,
            Ok(None) => Err(Failure::Store(StoreError::Unavailable(
                "the member is stopping".into(),
            ))),
            Err(_) => Err(Failure::Store(StoreError::Unavailable(format!(
                "no read index within {:?}",
                self.timeout
            )))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_rounds_that_start_after_they_ask() {
        let rounds = Rounds::<u64>::new();
        let started = Arc::new(AtomicU64::new(0));
        let round = {
            let started = started.clone();
            move || {
                let started = started.clone();
                async move {
                    let number = started.fetch_add(1, Ordering::SeqCst) + 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    number
                }
            }
        };
        // 100 callers at once: the first starts round 1; the others, arriving while it runs, share round 2.
        let mut callers = Vec::new();
        for _ in 0..100 {
            let (rounds, round) = (rounds.clone(), round.clone());
            let asked_after = started.load(Ordering::SeqCst);
            callers.push(tokio::spawn(async move {
                (asked_after, rounds.join(round).await)
            }));
            tokio::task::yield_now().await;
        }
        for caller in callers {
            let (asked_after, got) = caller.await.expect("caller");
            let got = got.expect("a round");
            assert!(
                got > asked_after,
                "round {got} started after the caller asked (after round {asked_after})"
            );
        }
        assert!(
            started.load(Ordering::SeqCst) <= 2,
            "{} rounds",
            started.load(Ordering::SeqCst)
        );

        // Later, a lone caller gets a round of its own.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(rounds.join(round).await, Some(3));
    }
}
