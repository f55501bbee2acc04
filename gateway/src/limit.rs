//! Per-client rate limiting: a token bucket per client, so one runaway client gets 429 TooManyRequests (with
//! `Retry-After`) instead of starving the others. Clients are told apart by their address today; once requests
//! are authenticated, by user.
//!
//! kube-apiserver protects itself with API Priority and Fairness (concurrency shares per priority level and flow);
//! a bucket per client is the simple version of "a flow cannot take more than its share".

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How many requests a client may make: `qps` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second each client is refilled with.
    pub qps: u32,
    /// Most requests a client may make at once (the bucket's size).
    pub burst: u32,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Buckets tracked before idle (full) ones are dropped, so an address scan cannot grow the map without bound.
const MAX_TRACKED: usize = 10_000;

/// The buckets of every client seen recently.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter granting each client `limit`.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `client`'s bucket at `now`, or says how long until one is there.
    pub fn admit(&self, client: &str, now: Instant) -> Result<(), Duration> {
        let RateLimit { qps, burst } = self.limit;
        let qps = f64::from(qps);
        let burst = f64::from(burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(client) {
            buckets.retain(|_, b| {
                b.tokens + qps * now.duration_since(b.updated).as_secs_f64() < burst
            });
        }
        let bucket = buckets.entry(client.to_string()).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + qps * elapsed).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else if qps <= 0.0 {
            Err(Duration::from_secs(1))
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / qps))
        }
    }
}

/// Whole seconds to tell a refused client to wait (`Retry-After`): at least 1.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let limiter = RateLimiter::new(RateLimit { qps: 2, burst: 3 });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.admit("a", t0).is_ok());
        }
        let wait = limiter.admit("a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(retry_after_seconds(wait), 1);
        // Another client has its own bucket.
        assert!(limiter.admit("b", t0).is_ok());
        // Half a second refills one token, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert!(limiter.admit("a", t1).is_ok());
        assert!(limiter.admit("a", t1).is_err());
        // A long pause refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.admit("a", t2).is_ok());
        }
        assert!(limiter.admit("a", t2).is_err());
    }

    #[test]
    fn idle_clients_are_forgotten_when_many_are_tracked() {
        let limiter = RateLimiter::new(RateLimit {
            qps: 1000,
            burst: 1,
        });
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED {
            limiter.admit(&i.to_string(), t0).unwrap();
        }
        let later = t0 + Duration::from_secs(1);
        limiter.admit("new", later).unwrap();
        let tracked = limiter.buckets.lock().unwrap().len();
        assert_eq!(tracked, 1, "every refilled bucket was dropped");
    }
}
