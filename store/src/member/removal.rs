//! How a member removed from the cluster stops: it refuses requests (`Unavailable`), stops taking requests on
//! `store.rpc` and its Raft subject once those in flight are answered (see `serve_rpc` and
//! [`crate::network::serve`]), shuts its Raft down and syncs its data; [`UntilRemoved`] then resolves, so the
//! process can exit instead of disturbing the cluster with elections it cannot win.
//!
//! A member learns of its removal from the leader that removed it ([`RaftMessage::Removed`]), from a leader
//! answering its vote request ([`RaftReply::Removed`]), or from its own removal while it leads.
//!
//! [`RaftMessage::Removed`]: crate::network::RaftMessage::Removed
//! [`RaftReply::Removed`]: crate::network::RaftReply::Removed

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;

use super::{Service, StoreMember};

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
