//! Serves a member's Raft subject: each message is answered in its own task, so a slow snapshot chunk never holds
//! up heartbeats. Raft's own messages and pings are answered here; what needs the member (forwarded requests, read
//! indexes, membership notices) goes to the member's handler.

use std::future::Future;
use std::time::Duration;

use navarch_bus::store::StoreError;
use navarch_bus::{codec, Bus, Subscription};
use openraft::{RaftMetrics, ServerState};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{RaftMessage, RaftReply};
use crate::types::{LogId, Node, NodeId, Raft};

/// How long pulling a large message body from its sender may take.
const PULL_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers every message of `subscription` (the member's Raft subject) until it ends or `stop` turns true; then
/// lets the answers in flight finish (up to [`PULL_TIMEOUT`]) and returns, which drops the subscription.
/// [`RaftMessage::Forward`], [`RaftMessage::ReadIndex`], [`RaftMessage::Removed`] and [`RaftMessage::SetNode`] go
/// to `member`. Dropping the
/// returned future (aborting its task) also stops the answers in flight.
pub async fn serve<F, Fut>(
    bus: Bus,
    raft: Raft,
    mut subscription: Subscription,
    member: F,
    mut stop: watch::Receiver<bool>,
) where
    F: Fn(RaftMessage) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = RaftReply> + Send,
{
    let mut in_flight = JoinSet::new();
    loop {
        let message = tokio::select! {
            message = subscription.next() => match message {
                Some(message) => message,
                None => break,
            },
            _ = stop.wait_for(|stop| *stop) => break,
        };
        while in_flight.try_join_next().is_some() {}
        let (bus, raft, member) = (bus.clone(), raft.clone(), member.clone());
        in_flight.spawn(async move {
            // A message too large for one bus message (a big entry, a forwarded 1.5 MiB write) is pulled.
            let reply = match bus
                .request_body(&message, codec::DECODE_LIMIT, PULL_TIMEOUT)
                .await
            {
                Ok(payload) => answer(&raft, &payload, member).await,
                Err(e) => RaftReply::Undecodable(format!("could not read the message body: {e}")),
            };
            if let Err(e) = bus.respond_encoded(&message, &reply).await {
                tracing::debug!(error = %e, "cannot answer a raft message");
            }
        });
    }
    drop(subscription);
    let _ = tokio::time::timeout(PULL_TIMEOUT, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
}

async fn answer<F, Fut>(raft: &Raft, payload: &[u8], member: F) -> RaftReply
where
    F: Fn(RaftMessage) -> Fut,
    Fut: Future<Output = RaftReply>,
{
    match codec::decode::<RaftMessage>(payload) {
        Err(e) => RaftReply::Undecodable(e.to_string()),
        Ok(RaftMessage::AppendEntries(rpc)) => {
            RaftReply::AppendEntries(raft.append_entries(rpc).await)
        }
        Ok(RaftMessage::Vote(rpc)) => {
            let candidate = rpc.vote.leader_id().voted_for();
            let removed = candidate.is_some_and(|candidate| {
                member_removed(
                    &raft.metrics().borrow(),
                    candidate,
                    rpc.last_log_id.as_ref(),
                )
            });
            if removed {
                RaftReply::Removed
            } else {
                RaftReply::Vote(raft.vote(rpc).await)
            }
        }
        Ok(RaftMessage::CheckMember {
            id,
            membership_log_id,
        }) => {
            let metrics = raft.metrics().borrow().clone();
            if member_removed(&metrics, id, membership_log_id.as_ref()) {
                RaftReply::Removed
            } else if metrics.current_leader == Some(metrics.id) {
                RaftReply::Done(Ok(()))
            } else {
                RaftReply::Done(Err(StoreError::NotLeader {
                    leader: metrics.current_leader,
                }))
            }
        }
        Ok(RaftMessage::InstallSnapshot(rpc)) => {
            RaftReply::InstallSnapshot(raft.install_snapshot(rpc).await)
        }
        Ok(RaftMessage::Ping) => RaftReply::Pong(raft.metrics().borrow().id),
        Ok(message) => member(message).await,
    }
}

/// Whether `member`, whose log ends at `last_log_id`, has been removed as this leader (`metrics`) sees it: this
/// leader's membership does not hold it, and its log ends before that membership, so it missed its own removal (a
/// member never receives the entry that removes it). Only the leader decides: its membership is the newest, and a
/// member added after this membership (by a newer leader) has a later log than it. The position of the newest
/// membership in the member's log will do for `last_log_id` too: if that membership holds the member, either this
/// leader's log holds it as well (and a later membership here removed the member) or a newer leader wrote it.
pub fn member_removed(
    metrics: &RaftMetrics<NodeId, Node>,
    member: NodeId,
    last_log_id: Option<&LogId>,
) -> bool {
    let membership = &metrics.membership_config;
    metrics.state == ServerState::Leader
        && metrics.current_leader == Some(metrics.id)
        && membership.membership().get_node(&member).is_none()
        && last_log_id < membership.log_id().as_ref()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use openraft::{CommittedLeaderId, Membership, StoredMembership};

    use super::*;

    fn leader_of(voters: &[NodeId], membership_index: u64) -> RaftMetrics<NodeId, Node> {
        let nodes: BTreeMap<NodeId, Node> =
            voters.iter().map(|id| (*id, Node::default())).collect();
        let config = vec![voters.iter().copied().collect::<BTreeSet<_>>()];
        let mut metrics = RaftMetrics::new_initial(1);
        metrics.state = ServerState::Leader;
        metrics.current_leader = Some(1);
        metrics.membership_config = Arc::new(StoredMembership::new(
            Some(LogId::new(CommittedLeaderId::new(2, 1), membership_index)),
            Membership::new(config, nodes),
        ));
        metrics
    }

    fn log(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(2, 1), index)
    }

    #[test]
    fn only_a_leader_tells_a_member_it_was_removed() {
        let metrics = leader_of(&[1, 2], 10);
        // Member 3 was removed at index 10 and never saw it.
        assert!(member_removed(&metrics, 3, Some(&log(9))));
        assert!(member_removed(&metrics, 3, None));
        // A member of the membership is never told so.
        assert!(!member_removed(&metrics, 2, Some(&log(9))));
        // A member whose log reaches past this membership was added after it, by a newer leader.
        assert!(!member_removed(&metrics, 3, Some(&log(11))));
        let mut follower = metrics.clone();
        follower.state = ServerState::Follower;
        follower.current_leader = Some(2);
        assert!(!member_removed(&follower, 3, Some(&log(9))));
    }
}
