//! Serves a member's Raft subject: each message is answered in its own task, so a slow snapshot chunk never holds
//! up heartbeats.

use std::future::Future;

use navarch_bus::store::{StoreReply, StoreRequest};
use navarch_bus::{codec, Bus, Subscription};
use tokio::task::JoinSet;

use super::{RaftMessage, RaftReply};

/// How long pulling a large message body from its sender may take.
const PULL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
use crate::types::Raft;

/// Answers every message of `subscription` (the member's Raft subject) until it ends. Forwarded client requests go
/// to `forward`. Dropping the returned future (aborting its task) also stops the answers in flight.
pub async fn serve<F, Fut>(bus: Bus, raft: Raft, mut subscription: Subscription, forward: F)
where
    F: Fn(StoreRequest) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = StoreReply> + Send,
{
    let mut in_flight = JoinSet::new();
    while let Some(message) = subscription.next().await {
        while in_flight.try_join_next().is_some() {}
        let (bus, raft, forward) = (bus.clone(), raft.clone(), forward.clone());
        in_flight.spawn(async move {
            // A message too large for one bus message (a big entry, a forwarded 1.5 MiB write) is pulled.
            let reply = match bus
                .request_body(&message, codec::DECODE_LIMIT, PULL_TIMEOUT)
                .await
            {
                Ok(payload) => answer(&raft, &payload, forward).await,
                Err(e) => RaftReply::Undecodable(format!("could not read the message body: {e}")),
            };
            if let Err(e) = bus.respond_encoded(&message, &reply).await {
                tracing::debug!(error = %e, "cannot answer a raft message");
            }
        });
    }
}

async fn answer<F, Fut>(raft: &Raft, payload: &[u8], forward: F) -> RaftReply
where
    F: Fn(StoreRequest) -> Fut,
    Fut: Future<Output = StoreReply>,
{
    match codec::decode::<RaftMessage>(payload) {
        Err(e) => RaftReply::Undecodable(e.to_string()),
        Ok(RaftMessage::AppendEntries(rpc)) => {
            RaftReply::AppendEntries(raft.append_entries(rpc).await)
        }
        Ok(RaftMessage::Vote(rpc)) => RaftReply::Vote(raft.vote(rpc).await),
        Ok(RaftMessage::InstallSnapshot(rpc)) => {
            RaftReply::InstallSnapshot(raft.install_snapshot(rpc).await)
        }
        Ok(RaftMessage::Forward(request)) => RaftReply::Forward(forward(request).await),
    }
}
