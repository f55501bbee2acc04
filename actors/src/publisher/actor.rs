//! The event publisher actor: one store watch over every API object, each change published by [`super::message`].
//!
//! Accepts: [`crate::Stop`]. Emits: JSON watch events on `navarch.<cluster>.events.<resource>.<namespace>.<name>`,
//! and saves its [`Checkpoint`] under [`CHECKPOINT_KEY`] at most once a second, so a restarted publisher (or the
//! standby that takes over) resumes after the last change it saved: subscribers may see an event twice across a
//! restart (same resourceVersion), never a silent hole while the store still holds the history.

use std::time::Duration;

use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};
use navarch_bus::api::{ApiError, Objects, Reason};
use navarch_bus::store::PutRequest;

use super::{message, Checkpoint, CHECKPOINT_KEY};

/// How often the checkpoint is saved (when it moved).
const SAVE_INTERVAL: Duration = Duration::from_secs(1);
/// Wait before watching again after the store failed.
const RETRY: Duration = Duration::from_secs(1);

/// Publishes every committed change of an API object on the bus.
pub struct EventPublisher {
    objects: Objects,
}

impl EventPublisher {
    /// A publisher reading through `objects` (which needs the Secrets' encryption keys when they are encrypted at
    /// rest: a Secret it cannot decrypt stops the stream, as it stops a watch on the API).
    pub fn new(objects: Objects) -> Self {
        Self { objects }
    }
}

impl Actor for EventPublisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.spawn(
            publish(self.objects.clone())
                .into_actor(self)
                .map(|(), _, ctx| ctx.stop()),
        );
    }
}

impl Handler<crate::Stop> for EventPublisher {
    type Result = ();

    fn handle(&mut self, _: crate::Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Watches and publishes until the actor stops (which drops this future).
async fn publish(objects: Objects) {
    let bus = objects.store().bus().clone();
    let mut checkpoint = loop {
        match load(&objects).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, "event stream: reading the checkpoint failed; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    };
    let mut saved = checkpoint.clone();
    loop {
        let mut watch = match objects.watch_all(checkpoint.revision).await {
            Ok(w) => w,
            Err(e) => {
                lost_or_wait(&mut checkpoint, &e).await;
                continue;
            }
        };
        tracing::info!(
            from = watch.start_revision(),
            "event stream: publishing committed changes"
        );
        let mut save = tokio::time::interval(SAVE_INTERVAL);
        save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                next = watch.next() => match next {
                    None => break,
                    Some(Err(e)) => {
                        lost_or_wait(&mut checkpoint, &e).await;
                        break;
                    }
                    Some(Ok(event)) => {
                        let Some(m) = message(bus.subjects(), &event, &mut checkpoint, bus.max_payload()) else {
                            continue;
                        };
                        // NATS core is at-most-once: a failed publish is logged, and subscribers see the gap in the
                        // previous-resourceVersion header of the next event.
                        if let Err(e) = bus.publish(&m.subject, m.headers, m.payload.into()).await {
                            tracing::warn!(subject = %m.subject, error = %e, "event stream: publish failed");
                        }
                    }
                },
                _ = save.tick() => {
                    if checkpoint != saved {
                        match store(&objects, &checkpoint).await {
                            Ok(()) => saved = checkpoint.clone(),
                            Err(e) => tracing::warn!(error = %e, "event stream: saving the checkpoint failed"),
                        }
                    }
                }
            }
        }
    }
}

/// After a failed watch: a compacted start means the place is lost (start over from now, vouching for nothing);
/// anything else is waited out.
async fn lost_or_wait(checkpoint: &mut Checkpoint, e: &ApiError) {
    if e.reason == Reason::Expired {
        tracing::warn!(revision = checkpoint.revision, error = %e,
            "event stream: the changes after the checkpoint were compacted; publishing from now on");
        checkpoint.lost();
    } else {
        tracing::warn!(error = %e, "event stream: watch failed; retrying");
        tokio::time::sleep(RETRY).await;
    }
}

async fn load(objects: &Objects) -> Result<Checkpoint, ApiError> {
    let Some(kv) = objects
        .store()
        .get(CHECKPOINT_KEY)
        .await
        .map_err(ApiError::from)?
    else {
        return Ok(Checkpoint::default());
    };
    // A checkpoint that does not parse is treated as lost rather than stopping the stream.
    Ok(serde_json::from_slice(&kv.value).unwrap_or_default())
}

async fn store(objects: &Objects, checkpoint: &Checkpoint) -> Result<(), ApiError> {
    let value = serde_json::to_vec(checkpoint).map_err(ApiError::internal)?;
    objects
        .store()
        .put(PutRequest {
            key: CHECKPOINT_KEY.to_vec(),
            value,
            lease: 0,
            prev_kv: false,
        })
        .await
        .map_err(ApiError::from)?;
    Ok(())
}
