//! The fault harness of the store: three `navarch store` processes on a real nats-server, each behind its own TCP
//! proxy; concurrent clients recording every call; watchers recording what they see; and the checks run afterwards.
//!
//! # Layout
//! - `proxy`: the TCP proxy that cuts a member off or moves it to another NATS server.
//! - `cluster`: the member processes: start, `kill -9`, restart, partition, status of one member.
//! - `cas`: compare-and-swap contention on one counter.
//! - `load`: clients doing puts, compare-and-swap transactions, linearizable gets and deletes, recorded.
//! - `watchers`: watches recording every revision they deliver.
//! - `scene`: a cluster under load with watchers, and the end of every fault test.
//! - `verify`: the checks: linearizability, revisions, acknowledged writes, watches against the final history.
//!
//! Every choice (keys, operations, when a fault strikes, which member) comes from one seed, printed at the start;
//! `NAVARCH_FAULT_SEED=<n>` replays it (thread timing still varies). `NAVARCH_FAULT_ROUNDS=<n>` repeats each fault
//! n times for a soak (default 1).

#![allow(dead_code)] // each test uses its own subset
#![allow(clippy::disallowed_methods)] // wall-clock time is what the recorded history needs

pub mod cas;
pub mod cluster;
pub mod load;
pub mod proxy;
pub mod scene;
pub mod verify;
pub mod watchers;

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

/// The tests of one binary run on parallel threads; two clusters at once on two cores would spend the test in
/// elections. Each fault test holds this while it runs.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A small deterministic generator (splitmix64): the same seed makes the same choices.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, n)` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A number in `[low, high]`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high.saturating_sub(low) + 1)
    }

    /// An independent generator for a part of the test (a client, the fault schedule).
    pub fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }
}

/// How many times each fault test repeats its fault (`NAVARCH_FAULT_ROUNDS`, default 1).
pub fn rounds() -> u32 {
    std::env::var("NAVARCH_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

/// Runs one fault test: takes the lock, picks and prints the seed, and runs `test` on a multi-thread runtime.
pub fn run<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Rng) -> Fut,
    Fut: Future<Output = ()>,
{
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let seed = std::env::var("NAVARCH_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("{name}: fault seed {seed} (replay with NAVARCH_FAULT_SEED={seed})");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(test(Rng::new(seed)));
    runtime.shutdown_timeout(Duration::from_secs(5));
}

/// Polls `check` every 50 ms for up to `limit`; panics with `what` when it never holds. A bound, not a timing
/// assertion.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("gave up after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
