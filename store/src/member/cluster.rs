//! Membership at runtime: member list, add (as learner, or as voter once caught up), promote and remove, run on
//! the leader one at a time with openraft's `add_learner` / `change_membership`; and a member's own entry (its
//! client URLs) kept current in the membership. Decisions come from [`super::membership`].

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use navarch_bus::store::{
    Member, MemberAddRequest, MemberListResponse, ResponseHeader, StoreError, StoreRequest,
    StoreResponse,
};
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, RaftMetrics, ServerState};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinSet;

use super::membership::{self, Removal};
use super::service::{Failure, Service};
use crate::network::{self, RaftMessage, RaftReply};
use crate::types::{Membership, Node, NodeId};

/// A member's part in the cluster's membership.
pub struct Cluster {
    /// Turns true once this member has been removed from the cluster; it then stops serving.
    pub(crate) removed: Arc<watch::Sender<bool>>,
    /// Membership changes on this member, one at a time.
    changes: Mutex<()>,
    /// How long a voter has to answer a probe before a change counts it as down.
    probe_timeout: Duration,
}

impl Cluster {
    /// The cluster view of a member that learns of its removal through `removed`; `probe_timeout` is how long a
    /// probed voter has to answer.
    pub fn new(removed: Arc<watch::Sender<bool>>, probe_timeout: Duration) -> Self {
        Self {
            removed,
            changes: Mutex::new(()),
            probe_timeout,
        }
    }

    /// Whether this member has been removed.
    pub fn is_removed(&self) -> bool {
        *self.removed.borrow()
    }
}

/// How far `id` trails the leader as `metrics` (the leader's) see it: (matched index, entries behind), or `None`
/// when the leader has not heard from it.
fn replication_of(metrics: &RaftMetrics<NodeId, Node>, id: NodeId) -> Option<(u64, u64)> {
    let matched = metrics.replication.as_ref()?.get(&id)?.as_ref()?.index;
    let last = metrics.last_log_index.unwrap_or(0);
    Some((matched, last.saturating_sub(matched)))
}

impl Service {
    /// Answers the membership requests: the list on any member (after a read index, so it is current), changes on
    /// the leader only.
    pub(super) async fn membership(
        &self,
        request: &StoreRequest,
    ) -> Result<StoreResponse, Failure> {
        match request {
            StoreRequest::MemberList => {
                self.linearize().await?;
                self.member_list(None)
            }
            StoreRequest::MemberAdd(add) => self.change(self.member_add(add)).await,
            StoreRequest::MemberPromote(id) => self.change(self.member_promote(id.0)).await,
            StoreRequest::MemberRemove(id) => self.change(self.member_remove(id.0)).await,
            other => Err(Failure::Store(StoreError::Internal(format!(
                "not a membership request: {other:?}"
            )))),
        }
    }

    /// Runs one change on the leader, after any change in progress here, within the request timeout.
    async fn change<F>(&self, change: F) -> Result<StoreResponse, Failure>
    where
        F: Future<Output = Result<StoreResponse, Failure>>,
    {
        self.ensure_leader()?;
        let _one_at_a_time = self.cluster.changes.lock().await;
        self.ensure_leader()?;
        match tokio::time::timeout(self.timeout, change).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Store(StoreError::Unavailable(format!(
                "membership change not done within {:?}; it may still be applied",
                self.timeout
            )))),
        }
    }

    /// Fails with a redirect unless this member leads.
    fn ensure_leader(&self) -> Result<(), Failure> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        if metrics.state == ServerState::Leader && metrics.current_leader == Some(self.id) {
            Ok(())
        } else {
            Err(Failure::Redirect(metrics.current_leader))
        }
    }

    /// The membership this member knows (the newest one in its log, committed or not).
    fn current_membership(&self) -> Membership {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone()
    }

    /// The answer to a membership request: every member, and the one added.
    fn member_list(&self, member: Option<Member>) -> Result<StoreResponse, Failure> {
        let revision = self.storage.reader().state()?.revisions.current;
        Ok(StoreResponse::Members(MemberListResponse {
            header: ResponseHeader {
                revision,
                ..Default::default()
            },
            member,
            members: membership::members(&self.current_membership()),
        }))
    }

    async fn member_add(&self, add: &MemberAddRequest) -> Result<StoreResponse, Failure> {
        let subjects = self.bus.subjects().clone();
        let (id, node) =
            membership::plan_add(&self.current_membership(), add, |id| subjects.raft(id))?;
        tracing::info!(id, name = %node.name, learner = add.is_learner, "adding store member");
        let added = self
            .raft
            .add_learner(id, node, false)
            .await
            .map_err(|e| change_error(e, id))?;
        if !add.is_learner {
            // A voter that cannot keep up would weaken the quorum from the start: it votes once in sync.
            if !self.caught_up(id, added.log_id.index).await {
                return Err(Failure::Store(StoreError::Unhealthy(format!(
                    "member {id} was added as a learner but has not caught up with the leader (is it running?); \
                     promote it once it is in sync"
                ))));
            }
            self.promote(id).await?;
        }
        let member = membership::members(&self.current_membership())
            .into_iter()
            .find(|m| m.id == id);
        self.member_list(member)
    }

    async fn member_promote(&self, id: NodeId) -> Result<StoreResponse, Failure> {
        self.promote(id).await?;
        self.member_list(None)
    }

    /// Makes learner `id` a voter if it is in sync and the voters afterwards have a quorum up.
    async fn promote(&self, id: NodeId) -> Result<(), Failure> {
        let lag = replication_of(&self.raft.metrics().borrow(), id).map(|(_, lag)| lag);
        let max_lag = self.raft.config().replication_lag_threshold;
        let voters = membership::plan_promote(&self.current_membership(), id, lag, max_lag)?;
        membership::check_quorum(&voters, &self.probe(&voters).await)?;
        tracing::info!(id, "promoting store member to voter");
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
            .await
            .map_err(|e| change_error(e, id))?;
        Ok(())
    }

    async fn member_remove(&self, id: NodeId) -> Result<StoreResponse, Failure> {
        let current = self.current_membership();
        let others: BTreeSet<NodeId> = current.voter_ids().filter(|v| *v != id).collect();
        let healthy = self.probe(&others).await;
        let change = match membership::plan_remove(&current, id, &healthy)? {
            Removal::Learner => ChangeMembers::RemoveNodes(BTreeSet::from([id])),
            Removal::Voter => ChangeMembers::RemoveVoters(BTreeSet::from([id])),
        };
        tracing::info!(id, "removing store member");
        self.raft
            .change_membership(change, false)
            .await
            .map_err(|e| change_error(e, id))?;
        if id == self.id {
            // This member leaves: it answers this request, then stops (see `removal`).
            self.cluster.removed.send_replace(true);
        } else {
            // The removed member never receives the entry that removes it: tell it. If it misses this, the
            // leader tells it when it asks or stands for election (`network::server::member_removed`).
            let (bus, by, timeout) = (self.bus.clone(), self.id, self.cluster.probe_timeout);
            tokio::spawn(async move {
                let _ = network::call(&bus, id, &RaftMessage::Removed { by }, timeout).await;
            });
        }
        self.member_list(None)
    }

    /// Waits (half the request timeout, leaving the other half to promote it) for learner `id` to hold the log up
    /// to `index` and trail the leader by no more than openraft's replication lag threshold.
    async fn caught_up(&self, id: NodeId, index: u64) -> bool {
        let max_lag = self.raft.config().replication_lag_threshold;
        self.raft
            .wait(Some(self.timeout / 2))
            .metrics(
                |m| {
                    replication_of(m, id)
                        .is_some_and(|(matched, lag)| matched >= index && lag <= max_lag)
                },
                "learner caught up",
            )
            .await
            .is_ok()
    }

    /// Which of `ids` answer a ping in time (this member always counts as up).
    async fn probe(&self, ids: &BTreeSet<NodeId>) -> BTreeSet<NodeId> {
        let mut pings = JoinSet::new();
        for id in ids.iter().copied().filter(|id| *id != self.id) {
            let (bus, timeout) = (self.bus.clone(), self.cluster.probe_timeout);
            pings.spawn(async move {
                let answer = network::call(&bus, id, &RaftMessage::Ping, timeout).await;
                matches!(answer, Ok(RaftReply::Pong(pong)) if pong == id).then_some(id)
            });
        }
        let mut up = BTreeSet::from([self.id]);
        while let Some(answer) = pings.join_next().await {
            up.extend(answer.ok().flatten());
        }
        up
    }

    /// Records `node` (its address and client URLs; its name stays) as what the cluster knows of member `id`.
    /// Answers [`RaftMessage::SetNode`] on the leader.
    pub(super) async fn set_node(&self, id: NodeId, node: Node) -> Result<(), StoreError> {
        let done = self
            .change(async {
                let current = self.current_membership();
                let Some(known) = current.get_node(&id) else {
                    return Err(Failure::Store(StoreError::MemberNotFound { id }));
                };
                let wanted = Node {
                    addr: node.addr.clone(),
                    name: known.name.clone(),
                    client_urls: node.client_urls.clone(),
                };
                if *known != wanted {
                    membership::check_idle(&current)?;
                    self.raft
                        .change_membership(
                            ChangeMembers::SetNodes(BTreeMap::from([(id, wanted)])),
                            true,
                        )
                        .await
                        .map_err(|e| change_error(e, id))?;
                }
                self.member_list(None)
            })
            .await;
        match done {
            Ok(_) => Ok(()),
            Err(Failure::Store(e)) => Err(e),
            Err(Failure::Redirect(leader)) => Err(StoreError::NotLeader { leader }),
        }
    }

    /// Keeps this member's entry in the membership saying `node` (its client URLs), asking the leader to record
    /// it when it differs; returns once it says so. Runs for the member's lifetime.
    pub(super) async fn publish_self(self: Arc<Self>, node: Node) {
        loop {
            let known = self
                .raft
                .wait(Some(Duration::from_secs(10)))
                .metrics(
                    |m| {
                        m.current_leader.is_some()
                            && m.membership_config
                                .membership()
                                .get_node(&self.id)
                                .is_some()
                    },
                    "a leader and a place in the membership",
                )
                .await;
            if let Ok(metrics) = known {
                let membership = metrics.membership_config.membership();
                if membership
                    .get_node(&self.id)
                    .is_some_and(|known| known.client_urls == node.client_urls)
                {
                    return;
                }
                let result = match metrics.current_leader {
                    Some(leader) if leader == self.id => self.set_node(self.id, node.clone()).await,
                    Some(leader) => {
                        let message = RaftMessage::SetNode {
                            id: self.id,
                            node: node.clone(),
                        };
                        match network::call(&self.bus, leader, &message, self.timeout * 2).await {
                            Ok(RaftReply::Done(result)) => result,
                            Ok(other) => Err(StoreError::Internal(format!("{other:?}"))),
                            Err(e) => Err(StoreError::Unavailable(e.to_string())),
                        }
                    }
                    None => Ok(()),
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, "cannot record this member's client URLs yet");
                }
            }
            if self.cluster.is_removed() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// What a failed `add_learner` / `change_membership` means to the client.
fn change_error(e: RaftError<NodeId, ClientWriteError<NodeId, Node>>, id: NodeId) -> Failure {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => Failure::Redirect(f.leader_id),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            Failure::Store(match e {
                ChangeMembershipError::InProgress(_) => {
                    StoreError::Unhealthy("another membership change is in progress".into())
                }
                ChangeMembershipError::LearnerNotFound(_) => StoreError::MemberNotFound { id },
                ChangeMembershipError::EmptyMembership(_) => {
                    StoreError::Unhealthy("the change would leave no voter".into())
                }
            })
        }
        RaftError::Fatal(e) => Failure::Store(StoreError::Unavailable(e.to_string())),
    }
}
