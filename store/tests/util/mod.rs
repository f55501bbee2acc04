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
/// With `NAVARCH_TEST_LOG` set (a tracing filter such as `openraft=info`), members log to the test's output.
pub fn run<F: Future<Output = anyhow::Result<()>>>(test: F) -> anyhow::Result<()> {
    if let Ok(filter) = std::env::var("NAVARCH_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
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

/// Starts members `ids` of a cluster of `members`, each with its own connection to `bus`'s router, configured by
/// `config` (e.g. [`config`]).
pub async fn start_members(
    bus: &Bus,
    ids: &[u64],
    config: impl Fn(u64) -> StoreConfig,
) -> anyhow::Result<Vec<Addr<StoreMember>>> {
    let mut addrs = Vec::new();
    for id in ids {
        let own = Bus::new(bus.transport(), "test").await?;
        addrs.push(StoreMember::start(own, config(*id)).await?);
    }
    Ok(addrs)
}

/// A member's own view of every key with `prefix` (a serializable read, answered locally): its revision and
/// the keys with their values and revisions.
pub async fn local_view(
    member: &Addr<StoreMember>,
    prefix: &[u8],
) -> anyhow::Result<(i64, Vec<navarch_bus::store::KeyValue>)> {
    use navarch_bus::store::{prefix_end, RangeRequest, StoreRequest, StoreResponse};
    let request = StoreRequest::Range(RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        serializable: true,
        ..Default::default()
    });
    match member.send(navarch_store::Execute(request)).await? {
        Ok(StoreResponse::Range(r)) if !r.more => Ok((r.header.revision, r.kvs)),
        other => anyhow::bail!("local range: {other:?}"),
    }
}

/// Waits until every one of `members` holds the same revision and keys under `prefix`, at least `revision`;
/// returns that view.
pub async fn converged(
    members: &[Addr<StoreMember>],
    prefix: &[u8],
    revision: i64,
) -> anyhow::Result<(i64, Vec<navarch_bus::store::KeyValue>)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut views = Vec::new();
        for member in members {
            views.push(local_view(member, prefix).await?);
        }
        let first = views.first().cloned().unwrap_or_default();
        if first.0 >= revision && views.iter().all(|v| *v == first) {
            return Ok(first);
        }
        if tokio::time::Instant::now() > deadline {
            let revisions: Vec<i64> = views.iter().map(|v| v.0).collect();
            anyhow::bail!("members did not converge on revision {revision}: {revisions:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The member of `members` that leads, once they agree on one of them.
pub async fn leader_addr(
    members: &[Addr<StoreMember>],
) -> anyhow::Result<(u64, Addr<StoreMember>)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let leader = leader_of(members).await?;
        for member in members {
            if member.send(GetMetrics).await?.id == leader {
                return Ok((leader, member.clone()));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("gave up waiting: a leader among the members")
}
