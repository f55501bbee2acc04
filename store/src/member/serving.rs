//! Serving the bus: `store.rpc` in the store's queue group (joined once the member is in the cluster, left when it
//! is removed), and what peers ask of the member beyond Raft itself (forwarded requests, membership notices).

use std::sync::Arc;

use navarch_bus::store::StoreError;
use navarch_bus::{Bus, Subscription};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::service::Failure;
use super::{Result, Service, QUEUE_GROUP};
use crate::network::{RaftMessage, RaftReply};

/// Joins the queue group answering `store.rpc`.
pub(super) async fn subscribe_rpc(bus: &Bus) -> Result<Subscription> {
    let subscription = bus
        .queue_subscribe(&bus.subjects().store_rpc(), QUEUE_GROUP)
        .await?;
    bus.flush().await?;
    Ok(subscription)
}

/// Whether this member is in the membership it knows (as voter or learner).
pub(super) fn is_member(service: &Service) -> bool {
    service
        .raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .get_node(&service.id)
        .is_some()
}

/// Answers what peers ask of this member beyond Raft itself.
pub(super) async fn answer_peer(service: &Service, message: RaftMessage) -> RaftReply {
    match message {
        RaftMessage::Forward(request) => RaftReply::Forward(service.execute(request, true).await),
        RaftMessage::Removed { by } => {
            tracing::warn!(by, "the leader removed this member from the cluster");
            service.cluster.removed.send_replace(true);
            RaftReply::Done(Ok(()))
        }
        RaftMessage::SetNode { id, node } => RaftReply::Done(service.set_node(id, node).await),
        RaftMessage::ReadIndex => RaftReply::ReadIndex(service.local_read_index().await.map_err(
            |failure| match failure {
                Failure::Store(e) => e,
                Failure::Redirect(leader) => StoreError::NotLeader { leader },
            },
        )),
        _ => RaftReply::Undecodable("not a message for the member".into()),
    }
}

/// Waits until the leader has added this member, then serves `store.rpc`.
pub(super) async fn serve_rpc_once_added(
    bus: Bus,
    service: Arc<Service>,
    stop: watch::Receiver<bool>,
) {
    let added = service
        .raft
        .wait(None)
        .metrics(
            |m| {
                m.membership_config
                    .membership()
                    .get_node(&service.id)
                    .is_some()
            },
            "added to the cluster",
        )
        .await;
    if added.is_err() {
        return;
    }
    tracing::info!(id = service.id, "added to the cluster; serving clients");
    match subscribe_rpc(&bus).await {
        Ok(subscription) => serve_rpc(bus, service, subscription, stop).await,
        Err(e) => tracing::error!(error = %e, "cannot subscribe to store requests"),
    }
}

/// Answers `store.rpc` requests, each in its own task, so slow ones (a write waiting for commit) never hold up
/// others. Once `stop` turns true, it stops taking requests and lets those in flight finish.
pub(super) async fn serve_rpc(
    bus: Bus,
    service: Arc<Service>,
    mut subscription: Subscription,
    mut stop: watch::Receiver<bool>,
) {
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
        let (bus, service) = (bus.clone(), service.clone());
        // The request's trace continues here, and on to the leader when the request is forwarded.
        let span = tracing::debug_span!("store.rpc");
        navarch_bus::trace::continue_from(&message.headers, &span);
        in_flight.spawn(
            async move {
                // A request too large for one bus message is pulled from the client, unless it is too large at all.
                let reply = match bus
                    .request_body(&message, service.max_request, service.timeout)
                    .await
                {
                    Ok(payload) => service.handle(&payload).await,
                    Err(navarch_bus::Error::PayloadTooLarge { size, max }) => {
                        Err(navarch_bus::store::StoreError::RequestTooLarge { size, max })
                    }
                    Err(e) => Err(navarch_bus::store::StoreError::Unavailable(format!(
                        "could not read the request body: {e}"
                    ))),
                };
                if let Err(e) = bus.respond_encoded(&message, &reply).await {
                    tracing::debug!(error = %e, "cannot answer a store request");
                }
            }
            .instrument(span),
        );
    }
    drop(subscription);
    let drain = service.timeout * 2;
    let _ = tokio::time::timeout(drain, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
}
