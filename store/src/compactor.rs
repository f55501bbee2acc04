//! [`Compactor`]: automatic compaction by retention, a pure core. The leader samples the current revision
//! regularly; once a sample is `retention` old, its revision is the one to compact to, so the store keeps at
//! least `retention` of history (etcd's periodic compactor, `--auto-compaction-mode=periodic`).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Samples per retention period: how finely the compaction point follows time.
const SAMPLES_PER_RETENTION: u32 = 10;

/// A ring of `(time, revision)` samples covering the last `retention`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compactor {
    retention: Duration,
    samples: VecDeque<(Instant, i64)>,
    /// The last revision proposed, so each is proposed once.
    proposed: i64,
}

impl Compactor {
    /// A compactor keeping `retention` of history (positive).
    pub fn new(retention: Duration) -> Self {
        Self {
            retention,
            samples: VecDeque::new(),
            proposed: 0,
        }
    }

    /// How often [`Compactor::observe`] should be called: a tenth of the retention.
    pub fn interval(&self) -> Duration {
        self.retention / SAMPLES_PER_RETENTION
    }

    /// Records that the store was at `revision` (compacted below `compacted`) at `now`; answers the revision to
    /// compact to, if one is due: the revision that was current `retention` ago, when it is above the compaction
    /// point and was not proposed before.
    pub fn observe(&mut self, now: Instant, revision: i64, compacted: i64) -> Option<i64> {
        let spaced = self
            .samples
            .back()
            .is_none_or(|(at, _)| now.saturating_duration_since(*at) >= self.interval());
        if spaced {
            self.samples.push_back((now, revision));
        }
        let horizon = now.checked_sub(self.retention)?;
        // The newest sample at least `retention` old is the target; older ones are no longer needed.
        while self.samples.get(1).is_some_and(|(at, _)| *at <= horizon) {
            self.samples.pop_front();
        }
        let (at, target) = *self.samples.front()?;
        if at > horizon || target <= compacted || target <= self.proposed {
            return None;
        }
        self.proposed = target;
        Some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn compacts_to_the_revision_current_one_retention_ago() {
        let t0 = Instant::now();
        let mut c = Compactor::new(ms(1000));
        assert_eq!(c.interval(), ms(100));
        // Revision grows by 10 every 100 ms.
        let mut due = Vec::new();
        for step in 0..=25u64 {
            let revision = 1 + 10 * i64::try_from(step).unwrap_or_default();
            if let Some(target) = c.observe(t0 + ms(step * 100), revision, 0) {
                due.push((step, target));
            }
        }
        // At step s >= 10 the revision of step s - 10 is due.
        assert_eq!(due.first(), Some(&(10, 1)));
        assert_eq!(due.last(), Some(&(25, 151)));
        assert!(due.windows(2).all(|w| w[0].1 < w[1].1), "{due:?}");
        assert!(c.samples.len() <= 12, "the ring stays small");
    }

    #[test]
    fn nothing_is_due_before_one_retention_or_without_writes() {
        let t0 = Instant::now();
        let mut c = Compactor::new(ms(1000));
        assert_eq!(c.observe(t0, 5, 0), None);
        assert_eq!(c.observe(t0 + ms(900), 9, 0), None);
        assert_eq!(c.observe(t0 + ms(1000), 9, 0), Some(5));
        // No writes since: the same point is not proposed again; nor one already compacted past.
        assert_eq!(c.observe(t0 + ms(2000), 9, 5), Some(9));
        assert_eq!(c.observe(t0 + ms(3000), 9, 9), None);
        let mut c = Compactor::new(ms(1000));
        c.observe(t0, 5, 0);
        assert_eq!(c.observe(t0 + ms(1000), 9, 7), None, "compacted past it");
    }
}
