//! A work queue of object keys, as client-go's: a key waits in the queue at most once, is never handed to two
//! workers at once (a key added while it is being processed comes back once it is done), can be scheduled for
//! later, and is retried with a per-key exponential back-off. Pure: the caller passes the time.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// Keys waiting to be reconciled.
#[derive(Debug)]
pub struct WorkQueue<K> {
    ready: VecDeque<K>,
    queued: HashSet<K>,
    processing: HashSet<K>,
    /// Added while being processed: queued again when done.
    dirty: HashSet<K>,
    delayed: BTreeSet<(Instant, K)>,
    delayed_at: HashMap<K, Instant>,
    failures: HashMap<K, u32>,
    base: Duration,
    max: Duration,
}

impl<K: Clone + Eq + Hash + Ord> WorkQueue<K> {
    /// An empty queue whose retries wait `base`, doubling per consecutive failure of a key, up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            ready: VecDeque::new(),
            queued: HashSet::new(),
            processing: HashSet::new(),
            dirty: HashSet::new(),
            delayed: BTreeSet::new(),
            delayed_at: HashMap::new(),
            failures: HashMap::new(),
            base,
            max,
        }
    }

    /// Queues `key` now (nothing happens if it is already queued).
    pub fn add(&mut self, key: K) {
        if self.processing.contains(&key) {
            self.dirty.insert(key);
        } else if self.queued.insert(key.clone()) {
            self.ready.push_back(key);
        }
    }

    /// Queues `key` at `at` (the earliest time wins when it is scheduled twice).
    pub fn add_after(&mut self, key: K, at: Instant) {
        match self.delayed_at.get(&key) {
            Some(current) if *current <= at => {}
            Some(current) => {
                self.delayed.remove(&(*current, key.clone()));
                self.delayed.insert((at, key.clone()));
                self.delayed_at.insert(key, at);
            }
            None => {
                self.delayed.insert((at, key.clone()));
                self.delayed_at.insert(key, at);
            }
        }
    }

    /// Schedules `key` again after its back-off (which then doubles); returns the delay.
    pub fn retry(&mut self, key: K, now: Instant) -> Duration {
        let failures = self.failures.entry(key.clone()).or_insert(0);
        let delay = self
            .base
            .saturating_mul(2u32.saturating_pow(*failures))
            .min(self.max);
        *failures = failures.saturating_add(1);
        self.add_after(key, now + delay);
        delay
    }

    /// Clears `key`'s back-off after a success.
    pub fn forget(&mut self, key: &K) {
        self.failures.remove(key);
    }

    /// The next key to process at `now`, if one is ready; it counts as processing until [`WorkQueue::done`].
    pub fn pop(&mut self, now: Instant) -> Option<K> {
        while let Some((at, key)) = self.delayed.first().cloned() {
            if at > now {
                break;
            }
            self.delayed.pop_first();
            self.delayed_at.remove(&key);
            self.add(key);
        }
        let key = self.ready.pop_front()?;
        self.queued.remove(&key);
        self.processing.insert(key.clone());
        Some(key)
    }

    /// Ends the processing of `key`; if it was added meanwhile, it is queued again.
    pub fn done(&mut self, key: &K) {
        self.processing.remove(key);
        if self.dirty.remove(key) {
            self.add(key.clone());
        }
    }

    /// When the earliest scheduled key becomes ready.
    pub fn next_due(&self) -> Option<Instant> {
        self.delayed.first().map(|(at, _)| *at)
    }

    /// Keys ready now.
    pub fn len(&self) -> usize {
        self.ready.len()
    }

    /// Whether no key is ready now.
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> WorkQueue<&'static str> {
        WorkQueue::new(Duration::from_millis(5), Duration::from_secs(1))
    }

    #[test]
    fn keys_are_deduplicated_and_never_processed_twice_at_once() {
        let now = Instant::now();
        let mut q = queue();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(now), Some("a"));
        q.add("a"); // while processing: comes back after done
        assert_eq!(q.pop(now), Some("b"));
        assert_eq!(q.pop(now), None);
        q.done(&"a");
        assert_eq!(q.pop(now), Some("a"));
        q.done(&"a");
        q.done(&"b");
        assert!(q.is_empty());
    }

    #[test]
    fn retries_back_off_exponentially_until_forgotten() {
        let now = Instant::now();
        let mut q = queue();
        let delays: Vec<u128> = (0..10).map(|_| q.retry("a", now).as_millis()).collect();
        assert_eq!(delays, vec![5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        q.forget(&"a");
        assert_eq!(q.retry("a", now).as_millis(), 5);
    }

    #[test]
    fn delayed_keys_become_ready_when_due() {
        let now = Instant::now();
        let mut q = queue();
        q.add_after("late", now + Duration::from_secs(10));
        q.add_after("late", now + Duration::from_secs(2));
        q.add_after("late", now + Duration::from_secs(5));
        assert_eq!(q.next_due(), Some(now + Duration::from_secs(2)));
        assert_eq!(q.pop(now), None);
        assert_eq!(q.pop(now + Duration::from_secs(2)), Some("late"));
        assert_eq!(q.next_due(), None);
    }
}
