//! [`Scene`]: a three-member cluster under load, with watchers, and what every fault test does at its end.

use std::sync::Arc;
use std::time::Duration;

use navarch_bus::store::{HistoryRequest, StoreClient};

use super::cluster::{Cluster, PATIENCE};
use super::load::{read_all, Load, Mix, Recorder, PREFIX};
use super::watchers::Watcher;
use super::{eventually, verify, Rng};

/// Keys of the load: enough that each key's history stays small for the checker, few enough that clients collide.
pub const KEYS: u64 = 24;
/// Concurrent clients of the load.
pub const CLIENTS: usize = 6;
/// Client id of the final reads.
pub const FINAL_READER: usize = 1000;

/// A cluster under load, with watchers.
pub struct Scene {
    /// The members.
    pub cluster: Cluster,
    /// A client on the majority's server.
    pub store: StoreClient,
    /// Every call.
    pub recorder: Arc<Recorder>,
    load: Option<Load>,
    /// The watchers; add more under load.
    pub watchers: Vec<Watcher>,
}

impl Scene {
    /// Three members, two watchers (from revision 1 and from now), and `CLIENTS` clients running `mix`.
    pub async fn start(rng: &mut Rng, mix: Mix) -> Scene {
        let cluster = Cluster::start(3).await;
        // Shorter than the members' 7 s request timeout would make a slow commit look like a lost one; longer
        // keeps clients waiting through a whole election.
        let store = StoreClient::new(cluster.bus.clone()).with_timeout(Duration::from_secs(8));
        let recorder = Recorder::new();
        let watchers = vec![
            Watcher::start(&store, "from-1", PREFIX, 1).await,
            Watcher::start(&store, "from-now", PREFIX, 0).await,
        ];
        let load = Load::start(&store, &recorder, rng, (0, CLIENTS), KEYS, mix);
        Scene {
            cluster,
            store,
            recorder,
            load: Some(load),
            watchers,
        }
    }

    /// Waits until `n` more writes have been acknowledged.
    pub async fn writes(&self, n: u64) {
        let target = self.recorder.acknowledged_writes() + n;
        eventually(
            &format!("{n} more acknowledged writes"),
            PATIENCE,
            || async { (self.recorder.acknowledged_writes() >= target).then_some(()) },
        )
        .await;
    }

    /// The highest revision any call has been answered with so far.
    pub fn highest_revision(&self) -> i64 {
        self.recorder
            .history()
            .iter()
            .filter_map(|op| match op.completion {
                navarch_lincheck::Completion::Ok { revision, .. } => Some(revision),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// The store's current revision, read linearizably (a member's own status may lag what is committed).
    pub async fn revision(&self) -> i64 {
        self.store
            .history(HistoryRequest::default())
            .await
            .expect("the current revision")
            .header
            .revision
    }

    /// Stops the load, reads every key, waits for the watchers to reach the final revision, and runs the checks;
    /// answers the problems found.
    pub async fn check(mut self) -> (Vec<String>, Cluster) {
        if let Some(load) = self.load.take() {
            load.stop().await;
        }
        self.cluster.leader().await;
        read_all(&self.store, &self.recorder, FINAL_READER, KEYS).await;
        let last = self.revision().await;
        for watcher in &self.watchers {
            eventually(
                &format!("watch {} to reach revision {last}", watcher.name),
                PATIENCE,
                || async { (watcher.reached() >= last || watcher.ended().is_some()).then_some(()) },
            )
            .await;
        }
        let problems = verify::problems(&self.store, &self.recorder, self.watchers).await;
        (problems, self.cluster)
    }

    /// Runs the checks; panics with every problem found, keeping the members' logs.
    pub async fn finish(self) {
        let (problems, cluster) = self.check().await;
        if !problems.is_empty() {
            panic!(
                "{} problems (members' logs kept in {}):\n{}",
                problems.len(),
                cluster.keep_logs().display(),
                problems.join("\n\n")
            );
        }
    }
}

/// Retries a membership call while the store says it may succeed later (another change in progress, a learner
/// still catching up, a leader election).
pub async fn retry<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, navarch_bus::store::Error>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match call().await {
            Ok(answer) => return answer,
            Err(e) if e.is_retryable() && tokio::time::Instant::now() < deadline => {
                println!("{what}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}
