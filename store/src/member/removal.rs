//! How a member removed from the cluster stops: it refuses requests (`Unavailable`), stops taking requests on
//! `store.rpc` and its Raft subject once those in flight are answered (see `serve_rpc` and
//! [`crate::network::serve`]), shuts its Raft down and syncs its data; [`UntilRemoved`] then resolves, so the
//! process can exit instead of disturbing the cluster with elections it cannot win.
//!
//! A member learns of its removal from the leader that removed it ([`RaftMessage::Removed`]), from its own removal
//! while it leads, or, when it missed both (it was down), from the leader's answer ([`RaftReply::Removed`]) to its
//! next vote request or to the check it makes on start and every few election timeouts ([`check_membership`]).
//!
//! [`RaftMessage::Removed`]: crate::network::RaftMessage::Removed
//! [`RaftReply::Removed`]: crate::network::RaftReply::Removed

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use navarch_bus::store::StoreError;
use openraft::ServerState;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::{Service, StoreMember};
use crate::network::{self, RaftMessage, RaftReply};

/// Waits for `removed`, then stops the member's Raft after `grace` (time for a removed leader's last heartbeats
/// to tell the others its removal is committed) and tells `left`.
pub(super) async fn leave(
    service: Arc<Service>,
    mut removed: watch::Receiver<bool>,
    grace: Duration,
    left: watch::Sender<bool>,
) {
    if removed.wait_for(|removed| *removed).await.is_err() {
        return;
    }
    tracing::warn!(
        id = service.id,
        "removed from the cluster: this member stops serving"
    );
    tokio::time::sleep(grace).await;
    if let Err(e) = service.raft.shutdown().await {
        tracing::error!(error = %e, "stopping raft of a removed member");
    }
    if let Err(e) = service.storage.sync() {
        tracing::error!(error = %e, "syncing the data of a removed member");
    }
    left.send_replace(true);
}

/// Asks the leader on start and every `every` whether this member is still in the cluster, until it is removed.
/// A learner removed while it was down learns of it no other way; a voter learns it before its next election.
pub(super) async fn check_membership(service: Arc<Service>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if service.cluster.is_removed() {
            return;
        }
        let metrics = service.raft.metrics().borrow().clone();
        // A leader knows; a member its own membership does not hold is waiting to be added.
        let in_own_membership = metrics
            .membership_config
            .membership()
            .get_node(&service.id)
            .is_some();
        if metrics.state == ServerState::Leader || !in_own_membership {
            continue;
        }
        let Some(mut leader) = metrics.current_leader else {
            continue;
        };
        let membership_log_id = *metrics.membership_config.log_id();
        // The leader it knows may have moved on: follow one hint.
        for _ in 0..2 {
            let check = RaftMessage::CheckMember {
                id: service.id,
                membership_log_id,
            };
            match network::call(&service.bus, leader, &check, every).await {
                Ok(RaftReply::Removed) => {
                    tracing::warn!(
                        leader,
                        "the leader says this member has been removed from the cluster"
                    );
                    service.cluster.removed.send_replace(true);
                    return;
                }
                Ok(RaftReply::Done(Err(StoreError::NotLeader { leader: Some(next) })))
                    if next != leader && next != service.id =>
                {
                    leader = next;
                }
                _ => break,
            }
        }
    }
}

/// Resolves once the member has been removed from the cluster and has stopped serving (never, while it is a
/// member).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct UntilRemoved;

impl Handler<UntilRemoved> for StoreMember {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: UntilRemoved, _: &mut Self::Context) -> Self::Result {
        let mut left = self.left.clone();
        Box::pin(async move {
            if left.wait_for(|left| *left).await.is_err() {
                // The member stopped for another reason: it was not removed.
                std::future::pending::<()>().await;
            }
        })
    }
}
