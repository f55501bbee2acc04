//! A member down while 10,000 writes land comes back and catches up by snapshot: the leader purged the log it
//! missed (small snapshot thresholds), so only a snapshot, sent in chunks, can bring it back.

mod util;

use std::sync::Arc;

use navarch_bus::store::*;
use navarch_bus::Bus;
use navarch_store::{GetMetrics, Shutdown, StoreConfig};

const WRITES: usize = 10_000;
const CONCURRENCY: usize = 64;

#[test]
fn a_member_down_for_10k_writes_catches_up_by_snapshot() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let members = [1, 2, 3];
        let config = |id| StoreConfig {
            snapshot_logs: 1000,
            snapshot_catchup_entries: 100,
            snapshot_chunk_bytes: 64 * 1024,
            ..util::config(dir.path(), id, &members)
        };
        let mut addrs = util::start_members(&bus, &members, config).await?;
        let (leader, leader_addr) = util::leader_addr(&addrs).await?;
        let client = StoreClient::new(bus.clone());

        // The member has data of its own before it goes down: the snapshot replaces it.
        for i in 0..500 {
            let put = PutRequest {
                key: format!("/registry/bulk/k{i:05}").into_bytes(),
                value: b"before".to_vec(),
                ..Default::default()
            };
            client.put(put).await?;
        }
        let down = members
            .iter()
            .copied()
            .find(|id| *id != leader)
            .expect("a follower");
        let index = members.iter().position(|id| *id == down).expect("index");
        let stopped = addrs.remove(index);
        let last_seen = stopped.send(GetMetrics).await?.applied_index;
        stopped.send(Shutdown).await??;

        // 10,000 puts, 64 at a time.
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut writers = Vec::new();
        for _ in 0..CONCURRENCY {
            let (client, next) = (client.clone(), next.clone());
            writers.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= WRITES {
                        return Ok::<_, navarch_bus::store::Error>(());
                    }
                    let put = PutRequest {
                        key: format!("/registry/bulk/k{i:05}").into_bytes(),
                        value: vec![b'x'; 64],
                        ..Default::default()
                    };
                    client.put(put).await?;
                }
            }));
        }
        for writer in writers {
            writer.await??;
        }
        let leader_view = leader_addr.send(GetMetrics).await?;
        println!(
            "member {down} missed log {last_seen}..{}; the leader purged up to {}",
            leader_view.applied_index, leader_view.purged_index
        );
        assert!(
            leader_view.purged_index > last_seen,
            "the log the member missed is gone: {leader_view:?}"
        );

        let back = util::start_members(&bus, &[down], config).await?.remove(0);
        addrs.push(back.clone());
        let status = client.status().await?;
        let (revision, kvs) =
            util::converged(&addrs, b"/registry/bulk/", status.header.revision).await?;
        assert_eq!(kvs.len(), WRITES);
        let metrics = back.send(GetMetrics).await?;
        assert!(
            metrics.snapshot_index > last_seen,
            "caught up from a snapshot: {metrics:?}"
        );
        println!(
            "member {down} caught up to revision {revision} from a snapshot at index {}",
            metrics.snapshot_index
        );
        for addr in addrs {
            addr.send(Shutdown).await??;
        }
        Ok(())
    })
}
