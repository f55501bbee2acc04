//! Automatic compaction by retention against a real member: the leader compacts to the revision that was current
//! `retention` ago; watches ahead of the compaction point go on; a watch from a compacted revision is refused.

mod util;

use std::time::Duration;

use navarch_bus::store::*;
use navarch_bus::Bus;
use navarch_store::{Shutdown, StoreConfig, StoreMember};

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

/// The next `Changes` of a watch, skipping bookmarks.
async fn next_changes(watch: &mut WatchStream) -> anyhow::Result<(i64, Vec<Event>)> {
    loop {
        match util::within("a watch event", watch.next()).await? {
            Some(Ok(WatchEvent::Changes { revision, events })) => return Ok((revision, events)),
            Some(Ok(WatchEvent::Progress { .. })) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("watch ended"),
        }
    }
}

#[test]
fn the_leader_compacts_history_older_than_the_retention() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let config = StoreConfig {
            auto_compaction_retention: Duration::from_millis(500),
            ..util::config(dir.path(), 1, &[1])
        };
        let member = StoreMember::start(bus.clone(), config).await?;
        let client = StoreClient::new(bus.clone());
        let mut live = client.watch_prefix(b"/registry/pods/", 0).await?;
        for i in 0..5 {
            client.put(put("/registry/pods/a", &i.to_string())).await?; // 2..=6
        }
        util::eventually("history up to revision 6 is compacted", || async {
            matches!(client.status().await, Ok(s) if s.compact_revision == 6)
        })
        .await?;

        // The live watch was ahead of every compaction: it saw each revision, in order, and goes on.
        client.put(put("/registry/pods/a", "after")).await?; // 7
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(next_changes(&mut live).await?.0);
        }
        assert_eq!(seen, vec![2, 3, 4, 5, 6, 7]);

        match client.watch_prefix(b"/registry/pods/", 3).await {
            Err(Error::Store(StoreError::Compacted {
                requested: 3,
                compact_revision,
            })) => assert!(compact_revision >= 6),
            other => anyhow::bail!(
                "expected Compacted, got {:?}",
                other.map(|w| w.start_revision())
            ),
        }
        // Reads at and after the compaction point still work.
        let at = client
            .range(RangeRequest {
                key: b"/registry/pods/a".to_vec(),
                revision: 6,
                ..Default::default()
            })
            .await?;
        assert_eq!(
            at.kvs.first().map(|kv| kv.value.clone()),
            Some(b"4".to_vec())
        );
        member.send(Shutdown).await??;
        Ok(())
    })
}

#[test]
fn zero_retention_never_compacts() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let config = StoreConfig {
            auto_compaction_retention: Duration::ZERO,
            ..util::config(dir.path(), 1, &[1])
        };
        let member = StoreMember::start(bus.clone(), config).await?;
        let client = StoreClient::new(bus.clone());
        for i in 0..3 {
            client.put(put("/registry/pods/a", &i.to_string())).await?;
        }
        // Several duty ticks pass; this bounds nothing, it only gives a wrong compaction the chance to happen.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(client.status().await?.compact_revision, 0);
        member.send(Shutdown).await??;
        Ok(())
    })
}
