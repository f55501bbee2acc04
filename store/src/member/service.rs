//! [`Service`]: answers one [`StoreRequest`]: size and decoding checks, linearizable or serializable reads from the
//! state machine's fjall keyspaces, writes through Raft, and forwarding to the leader.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use navarch_bus::store::{
    LeaseId, ResponseHeader, StatusResponse, StoreError, StoreReply, StoreRequest, StoreResponse,
    TxnOpResponse,
};
use navarch_bus::{codec, Bus};
use tokio::sync::broadcast;

use super::cluster::Cluster;
use super::lease::Leading;
use super::proposer::Proposer;
use super::reads::ReadRounds;
use crate::mvcc::{self, Limits, Reader, Write};
use crate::network;
use crate::storage::{Notice, Storage};
use crate::types::{NodeId, Raft};

/// Why this member did not answer a request itself.
#[derive(Debug, Clone)]
pub(super) enum Failure {
    /// The answer is this error.
    Store(StoreError),
    /// Only the leader can answer; it is this member (when known).
    Redirect(Option<NodeId>),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<mvcc::Error> for Failure {
    fn from(e: mvcc::Error) -> Self {
        Failure::Store(e.into())
    }
}

/// Everything a request needs; shared by the tasks answering requests.
pub struct Service {
    pub(crate) id: NodeId,
    pub(crate) raft: Raft,
    pub(crate) storage: Storage,
    pub(crate) bus: Bus,
    pub(crate) limits: Limits,
    /// Largest request accepted, in bytes.
    pub(crate) max_request: usize,
    /// How long a request may wait for Raft.
    pub(crate) timeout: Duration,
    /// Shortest lease TTL granted, in seconds.
    pub(crate) min_lease_ttl: i64,
    /// The space quota, in counted bytes.
    pub(crate) quota_bytes: u64,
    /// The lease clock, while this member leads.
    pub(crate) leading: Mutex<Option<Leading>>,
    /// This member's part in membership changes.
    pub(crate) cluster: Cluster,
    /// Read index rounds shared by concurrent linearizable reads.
    pub(crate) reads: ReadRounds,
    /// What this member applies, in order, for local watchers (the etcd API's watches).
    pub(crate) changes: broadcast::Sender<Arc<Notice>>,
    /// Groups concurrent writes into log entries.
    pub(crate) proposer: Proposer,
}

impl Service {
    /// Answers the raw bytes of a request from `store.rpc`: refuses oversized and undecodable ones.
    pub async fn handle(&self, payload: &[u8]) -> StoreReply {
        if payload.len() > self.max_request {
            return Err(StoreError::RequestTooLarge {
                size: payload.len(),
                max: self.max_request,
            });
        }
        let request = codec::decode::<StoreRequest>(payload)
            .map_err(|e| StoreError::InvalidArgument(format!("undecodable store request: {e}")))?;
        self.execute(request, false).await
    }

    /// Answers `request`. A member that is not the leader passes it to the leader, unless it was `forwarded` to
    /// this member already.
    pub async fn execute(&self, request: StoreRequest, forwarded: bool) -> StoreReply {
        if self.cluster.is_removed() {
            return Err(StoreError::Unavailable(format!(
                "member {} has been removed from the cluster",
                self.id
            )));
        }
        let mut outcome = self.execute_here(&request).await;
        if let Err(Failure::Redirect(None)) = outcome {
            // No leader yet (an election is running): wait for one, then try once more.
            let known = self
                .raft
                .wait(Some(self.timeout))
                .metrics(|m| m.current_leader.is_some(), "a leader is known")
                .await;
            if known.is_ok() {
                outcome = self.execute_here(&request).await;
            }
        }
        if let Err(Failure::Redirect(None)) = outcome {
            // openraft names a leader only once this member's membership holds it (a new member may know the
            // leader before it has the log); the leader it has heard from will do.
            outcome = Err(Failure::Redirect(self.known_leader()));
        }
        match outcome {
            Ok(response) => Ok(self.stamp(response)),
            Err(Failure::Store(e)) => Err(e),
            Err(Failure::Redirect(Some(leader))) if !forwarded && leader != self.id => {
                self.forward(leader, request).await
            }
            Err(Failure::Redirect(leader)) => Err(StoreError::NotLeader { leader }),
        }
    }

    async fn execute_here(&self, request: &StoreRequest) -> Result<StoreResponse, Failure> {
        match request {
            StoreRequest::Range(range) => {
                if !range.serializable {
                    self.linearize().await?;
                }
                let range = range.clone();
                self.read(move |reader, limits| {
                    mvcc::range(reader, &range, limits).map(StoreResponse::Range)
                })
                .await
            }
            StoreRequest::History(history) => {
                self.linearize().await?;
                let history = history.clone();
                self.read(move |reader, limits| {
                    mvcc::history(reader, &history, limits).map(StoreResponse::History)
                })
                .await
            }
            StoreRequest::Put(put) => self.write(Write::Put(put.clone())).await,
            StoreRequest::Delete(delete) => self.write(Write::Delete(delete.clone())).await,
            StoreRequest::Txn(txn) => self.write(Write::Txn(txn.clone())).await,
            StoreRequest::Compact(revision) => self.write(Write::Compact(*revision)).await,
            StoreRequest::Status => self.status().map(StoreResponse::Status),
            StoreRequest::LeaseGrant(grant) => self.lease_grant(grant).await,
            StoreRequest::LeaseRevoke(LeaseId(id)) => self.write(Write::LeaseRevoke(*id)).await,
            StoreRequest::LeaseKeepAlive(LeaseId(id)) => self.lease_keep_alive(*id).await,
            StoreRequest::LeaseTimeToLive(request) => self.lease_time_to_live(request).await,
            StoreRequest::LeaseLeases => self.lease_leases().await,
            StoreRequest::Alarms { disarm } => self.alarms(*disarm).await,
            StoreRequest::MemberList
            | StoreRequest::MemberAdd(_)
            | StoreRequest::MemberRemove(_)
            | StoreRequest::MemberPromote(_) => self.membership(request).await,
        }
    }

    /// Reads from a consistent view on a blocking thread: a large range must not stall the runtime's workers.
    async fn read<F>(&self, read: F) -> Result<StoreResponse, Failure>
    where
        F: FnOnce(&crate::storage::FjallReader, &Limits) -> Result<StoreResponse, mvcc::Error>
            + Send
            + 'static,
    {
        let (storage, limits) = (self.storage.clone(), self.limits);
        tokio::task::spawn_blocking(move || read(&storage.reader(), &limits))
            .await
            .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
            .map_err(Failure::from)
    }

    /// The leader this member has heard from, if any.
    fn known_leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Proposes a client's write, once it passed validation and the space quota, and waits until it is committed
    /// and applied.
    pub(super) async fn write(&self, write: Write) -> Result<StoreResponse, Failure> {
        // Refuse what the state machine would refuse anyway before it costs a log entry.
        mvcc::validate(&write)?;
        self.check_quota(&write).await?;
        self.propose(write).await
    }

    /// Proposes a write and waits until it is committed and applied. Writes proposed concurrently share log
    /// entries ([`Proposer`]).
    pub(super) async fn propose(&self, write: Write) -> Result<StoreResponse, Failure> {
        match tokio::time::timeout(self.timeout, self.proposer.propose(write)).await {
            Err(_) => Err(unavailable(format!(
                "write not committed within {:?}; it may still be applied",
                self.timeout
            ))),
            Ok(answer) => answer,
        }
    }

    /// Passes `request` to `leader`. A request the leader may have received is never reported as safe to resend.
    /// The leader bounds its own work by the request timeout; waiting half as long again gets its answer rather
    /// than a guess.
    async fn forward(&self, leader: NodeId, request: StoreRequest) -> StoreReply {
        let patience = self.timeout + self.timeout / 2;
        match network::forward(&self.bus, leader, request, patience).await {
            Ok(reply) => reply,
            Err(navarch_bus::Error::NoResponders { .. }) => Err(StoreError::NotLeader {
                leader: Some(leader),
            }),
            Err(e) => Err(StoreError::Unavailable(format!(
                "forwarded to leader {leader}: {e}; the request may have been applied"
            ))),
        }
    }

    /// This member's own view, without asking the leader (as etcd's status).
    fn status(&self) -> Result<StatusResponse, Failure> {
        let reader = self.storage.reader();
        let state = reader.state()?;
        let ledger = reader.ledger()?;
        let metrics = self.raft.metrics().borrow().clone();
        Ok(StatusResponse {
            header: ResponseHeader {
                revision: state.revisions.current,
                ..Default::default()
            },
            leader: metrics.current_leader.unwrap_or(0),
            raft_index: metrics.last_log_index.unwrap_or(0),
            raft_applied_index: metrics.last_applied.map_or(0, |l| l.index),
            compact_revision: state.revisions.compacted,
            db_size: self.storage.disk_space(),
            db_size_in_use: ledger.bytes,
            keys: state.revisions.keys,
        })
    }

    /// Fills in who answered and in which term.
    fn stamp(&self, mut response: StoreResponse) -> StoreResponse {
        let term = self.raft.metrics().borrow().current_term;
        for header in headers_mut(&mut response) {
            header.raft_term = term;
            header.member_id = self.id;
        }
        response
    }
}

pub(super) fn unavailable(message: String) -> Failure {
    Failure::Store(StoreError::Unavailable(message))
}

/// Every header in a response, nested transaction answers included.
fn headers_mut(response: &mut StoreResponse) -> Vec<&mut ResponseHeader> {
    match response {
        StoreResponse::Range(r) => vec![&mut r.header],
        StoreResponse::Put(r) => vec![&mut r.header],
        StoreResponse::Delete(r) => vec![&mut r.header],
        StoreResponse::History(r) => vec![&mut r.header],
        StoreResponse::Compact(h) => vec![h],
        StoreResponse::Status(r) => vec![&mut r.header],
        StoreResponse::Lease(r) => vec![&mut r.header],
        StoreResponse::LeaseRevoke(h) => vec![h],
        StoreResponse::LeaseTimeToLive(r) => vec![&mut r.header],
        StoreResponse::LeaseLeases(r) => vec![&mut r.header],
        StoreResponse::Members(r) => vec![&mut r.header],
        StoreResponse::Alarms(r) => vec![&mut r.header],
        StoreResponse::Txn(r) => {
            let mut headers = vec![&mut r.header];
            for op in &mut r.responses {
                headers.push(match op {
                    TxnOpResponse::Range(r) => &mut r.header,
                    TxnOpResponse::Put(r) => &mut r.header,
                    TxnOpResponse::Delete(r) => &mut r.header,
                });
            }
            headers
        }
    }
}
