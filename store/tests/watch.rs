//! Watches through the bus crate's `StoreClient::watch_prefix` against a real member: live changes in order,
//! catch-up from a past revision, and the compacted-revision error.

mod util;

use navarch_bus::store::*;
use navarch_bus::Bus;
use navarch_store::Shutdown;

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
fn watches_see_every_change_in_order_live_and_from_history() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let member = util::start_single(&bus, dir.path()).await?;
        let client = StoreClient::new(bus.clone());
        let pods = b"/registry/pods/";

        client.put(put("/registry/pods/a", "1")).await?; // 2
        client.put(put("/registry/nodes/n", "n")).await?; // 3
        client.put(put("/registry/pods/a", "2")).await?; // 4

        let mut live = client.watch_prefix(pods, 0).await?;
        assert_eq!(live.start_revision(), 4);
        let mut from_past = client.watch_prefix(pods, 2).await?;
        let mut everything = client.watch_prefix(b"/registry/", 0).await?;

        client.put(put("/registry/pods/b", "x")).await?; // 5
        client.put(put("/registry/nodes/n", "n2")).await?; // 6
        client
            .txn(TxnRequest {
                success: vec![
                    TxnOp::Put(put("/registry/pods/c", "y")),
                    TxnOp::Delete(DeleteRequest {
                        key: b"/registry/pods/a".to_vec(),
                        ..Default::default()
                    }),
                ],
                ..Default::default()
            })
            .await?; // 7

        let (r, e) = next_changes(&mut live).await?;
        assert_eq!(
            (r, e.len(), e[0].kv.key.as_slice()),
            (5, 1, &b"/registry/pods/b"[..])
        );
        let (r, e) = next_changes(&mut live).await?;
        assert_eq!(r, 7, "revision 6 changed no pod");
        assert_eq!(e.len(), 2, "a transaction arrives whole");
        assert_eq!(
            (e[1].kind, e[1].prev_kv.as_ref().map(|kv| kv.value.clone())),
            (EventKind::Delete, Some(b"2".to_vec()))
        );

        let mut revisions = Vec::new();
        for _ in 0..4 {
            let (r, e) = next_changes(&mut from_past).await?;
            assert!(e.iter().all(|e| e.kv.key.starts_with(pods)));
            revisions.push(r);
        }
        assert_eq!(
            revisions,
            vec![2, 4, 5, 7],
            "history, then live, without gaps or repeats"
        );

        let mut revisions = Vec::new();
        for _ in 0..3 {
            revisions.push(next_changes(&mut everything).await?.0);
        }
        assert_eq!(
            revisions,
            vec![5, 6, 7],
            "a watch across streams sees them all, in order"
        );

        member.send(Shutdown).await??;
        Ok(())
    })
}

#[test]
fn a_compacted_start_revision_is_refused() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let member = util::start_single(&bus, dir.path()).await?;
        let client = StoreClient::new(bus.clone());
        for i in 0..5 {
            client.put(put("/registry/pods/a", &i.to_string())).await?; // 2..=6
        }
        client.compact(5).await?;
        match client.watch_prefix(b"/registry/pods/", 3).await {
            Err(Error::Store(StoreError::Compacted {
                requested: 3,
                compact_revision: 5,
            })) => {}
            other => anyhow::bail!(
                "expected Compacted, got {:?}",
                other.map(|w| w.start_revision())
            ),
        }
        // From the compaction point on, history is whole.
        let mut watch = client.watch_prefix(b"/registry/pods/", 5).await?;
        let (r, e) = next_changes(&mut watch).await?;
        assert_eq!(r, 5);
        assert_eq!(
            e[0].prev_kv.as_ref().map(|kv| kv.value.clone()),
            Some(b"2".to_vec())
        );
        assert_eq!(next_changes(&mut watch).await?.0, 6);
        let range = client
            .range(RangeRequest {
                key: b"/registry/pods/a".to_vec(),
                revision: 4,
                ..Default::default()
            })
            .await;
        assert!(
            matches!(range, Err(Error::Store(StoreError::Compacted { .. }))),
            "{range:?}"
        );
        member.send(Shutdown).await??;
        Ok(())
    })
}

#[test]
fn every_stream_gets_progress_naming_its_last_revision() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let member = util::start_single(&bus, dir.path()).await?;
        let client = StoreClient::new(bus.clone());
        let mut pods = bus.subscribe(&bus.subjects().store_events("pods")).await?;
        client.put(put("/registry/pods/a", "1")).await?; // 2
        client.put(put("/registry/nodes/n", "n")).await?; // 3
        let mut seen_batch = false;
        loop {
            let message = util::within("pods progress", pods.next())
                .await?
                .expect("subscription open");
            match navarch_bus::codec::decode::<StreamMessage>(&message.payload)? {
                StreamMessage::Changes(batch) => {
                    assert_eq!(
                        (batch.revision, batch.prev, batch.stream.as_str()),
                        (2, 0, "pods")
                    );
                    seen_batch = true;
                }
                StreamMessage::Progress(p) if p.revision == 3 => {
                    assert!(seen_batch, "progress never overtakes the batches it covers");
                    assert_eq!((p.stream.as_str(), p.last), ("pods", 2));
                    break;
                }
                StreamMessage::Progress(_) => {}
            }
        }
        member.send(Shutdown).await??;
        Ok(())
    })
}
