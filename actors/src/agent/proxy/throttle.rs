//! When the proxy rewrites its rules: a burst of Service and Endpoints changes becomes one rewrite, and rewrites
//! are at least [`Throttle::min_interval`] apart (kube-proxy's `minSyncPeriod`). A small state machine on a given
//! clock reading, so it is tested without time passing.

use std::time::Duration;

use tokio::time::Instant;

/// Gathers changes into rewrites.
#[derive(Debug, Clone)]
pub struct Throttle {
    /// How long after the first change of a burst the rewrite happens (later changes of the burst join it).
    pub debounce: Duration,
    /// The least time between two rewrites.
    pub min_interval: Duration,
    last: Option<Instant>,
    scheduled: bool,
}

impl Throttle {
    /// A throttle that has never rewritten.
    pub fn new(debounce: Duration, min_interval: Duration) -> Self {
        Self {
            debounce,
            min_interval,
            last: None,
            scheduled: false,
        }
    }

    /// Something changed at `now`: in how long to rewrite, or None when a rewrite is already scheduled (it will
    /// see this change too).
    pub fn changed(&mut self, now: Instant) -> Option<Duration> {
        if self.scheduled {
            return None;
        }
        self.scheduled = true;
        let earliest = self
            .last
            .map_or(now, |last| last + self.min_interval)
            .max(now + self.debounce);
        Some(earliest - now)
    }

    /// A rewrite started at `now` (it reads the caches as they are then).
    pub fn rewriting(&mut self, now: Instant) {
        self.scheduled = false;
        self.last = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_one_rewrite_and_rewrites_keep_their_distance() {
        let ms = Duration::from_millis;
        let mut t = Throttle::new(ms(100), ms(1000));
        let start = Instant::now();
        assert_eq!(t.changed(start), Some(ms(100)));
        assert_eq!(
            t.changed(start + ms(50)),
            None,
            "joins the scheduled rewrite"
        );
        t.rewriting(start + ms(100));
        // 300 ms after the last rewrite: waits out the minimum interval.
        assert_eq!(t.changed(start + ms(400)), Some(ms(700)));
        t.rewriting(start + ms(1100));
        // Long after: only the debounce.
        assert_eq!(t.changed(start + ms(5000)), Some(ms(100)));
    }
}
