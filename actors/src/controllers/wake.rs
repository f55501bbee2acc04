//! [`Wake`]: the one timer a controller keeps so that its work loop runs again when the queue's next retry is due.

use actix::{Actor, AsyncContext, Context, SpawnHandle};
use tokio::time::Instant;

/// A controller's timer for its queue's next due key; at most one is armed.
#[derive(Default)]
pub struct Wake(Option<(Instant, SpawnHandle)>);

impl Wake {
    /// Makes sure `pump` runs on the actor by `due` (none given: nothing is due): a timer already armed for that
    /// time or earlier stays, a later one is replaced. `wake` finds this timer in the actor, to disarm it when it
    /// fires.
    pub fn arm<A>(
        &mut self,
        due: Option<Instant>,
        ctx: &mut Context<A>,
        wake: fn(&mut A) -> &mut Wake,
        pump: fn(&mut A, &mut Context<A>),
    ) where
        A: Actor<Context = Context<A>>,
    {
        let Some(due) = due else { return };
        if self.0.as_ref().is_some_and(|(at, _)| *at <= due) {
            return;
        }
        if let Some((_, handle)) = self.0.take() {
            ctx.cancel_future(handle);
        }
        let delay = due.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(delay, move |act, ctx| {
            wake(act).0 = None;
            pump(act, ctx);
        });
        self.0 = Some((due, handle));
    }
}
