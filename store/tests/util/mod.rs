//! Helpers shared by the store's integration tests: an actix system on a multi-thread runtime, members in temp
//! dirs, and bounded waits.

#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use actix::Addr;
use navarch_bus::Bus;
use navarch_store::{GetMetrics, StoreConfig, StoreMember};

/// Runs `test` inside an actix system on a multi-thread tokio runtime, as the navarch binary does.
pub fn run<F: Future<Output = anyhow::Result<()>>>(test: F) -> anyhow::Result<()> {
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    });
    system.block_on(test)
}

/// A member configuration for tests: quick timings, data under `dir/member-<id>`.
pub fn config(dir: &Path, id: u64, members: &[u64]) -> StoreConfig {
    StoreConfig {
        id,
        data_dir: dir.join(format!("member-{id}")),
        members: members.to_vec(),
        progress_interval: Duration::from_millis(100),
        heartbeat_interval: Duration::from_millis(50),
        election_timeout: Duration::from_millis(300),
        ..Default::default()
    }
}

/// Starts a lone member 1 in `dir`.
pub async fn start_single(bus: &Bus, dir: &Path) -> anyhow::Result<Addr<StoreMember>> {
    Ok(StoreMember::start(bus.clone(), config(dir, 1, &[1])).await?)
}

/// Waits up to 10 s for `check` to hold, polling; fails with `what` otherwise. A bound, not a timing assertion.
pub async fn eventually<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("gave up waiting: {what}")
}

/// Waits until every member names the same leader; returns it.
pub async fn leader_of(members: &[Addr<StoreMember>]) -> anyhow::Result<u64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let mut seen = Vec::new();
        for member in members {
            seen.push(member.send(GetMetrics).await?.leader);
        }
        if let Some(Some(first)) = seen.first() {
            if seen.iter().all(|l| *l == Some(*first)) {
                return Ok(*first);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("gave up waiting: one leader known to every member")
}

/// Waits up to 10 s for `future`.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .map_err(|_| anyhow::anyhow!("gave up waiting: {what}"))
}
