//! Bad input to a three-member cluster through the bus: garbage on members' Raft subjects and on a change stream,
//! malformed requests (inverted ranges, negative revisions and limits, an unknown lease), compacted revisions. Each
//! gets a clear error, and the cluster keeps serving. (Garbage and oversized requests on `store.rpc` are in
//! `serve.rs`.)

mod util;

use std::time::Duration;

use navarch_bus::store::*;
use navarch_bus::{Bus, Bytes, Headers};
use navarch_store::network::{RaftMessage, RaftReply};
use navarch_store::{Shutdown, StoreMember};

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

fn range(key: &str, range_end: &str) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        range_end: range_end.into(),
        ..Default::default()
    }
}

/// The store error of a call that must fail.
fn refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> StoreError {
    match result {
        Err(Error::Store(e)) => e,
        other => panic!("expected a store error, got {other:?}"),
    }
}

#[test]
fn garbage_and_malformed_requests_get_clear_errors_and_the_cluster_keeps_serving(
) -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let members = [1, 2, 3];
        let mut addrs = Vec::new();
        for id in members {
            let own = Bus::new(bus.transport(), "test").await?;
            addrs.push(StoreMember::start(own, util::config(dir.path(), id, &members)).await?);
        }
        let leader = util::leader_of(&addrs).await?;
        let client = StoreClient::new(bus.clone());
        let first = client.put(put("/registry/pods/a", "1")).await?;
        let mut watch = client.watch_prefix(b"/registry/pods/", 0).await?;

        // Garbage on every member's Raft subject, leader and followers: each says it cannot decode it.
        let real = navarch_bus::codec::encode(&RaftMessage::Forward(StoreRequest::Status))?;
        let truncated = &real[..real.len() / 2];
        for id in members {
            for garbage in [&b""[..], b"\xff\xfe\xfd\xfc garbage", truncated] {
                let reply = bus
                    .request(
                        &bus.subjects().raft(id),
                        Headers::new(),
                        Bytes::copy_from_slice(garbage),
                        Duration::from_secs(5),
                    )
                    .await?;
                let reply: RaftReply = navarch_bus::codec::decode(&reply.payload)?;
                assert!(
                    matches!(reply, RaftReply::Undecodable(_)),
                    "member {id}: {reply:?}"
                );
            }
        }
        // Garbage on a change stream: watchers skip it and reread history, delivering nothing twice.
        bus.publish(
            &bus.subjects().store_events("pods"),
            Headers::new(),
            Bytes::from_static(b"not a stream message"),
        )
        .await?;

        // Malformed requests: refused, not retryable, nothing written.
        let inverted = refusal(client.range(range("/b", "/a")).await);
        assert!(
            matches!(inverted, StoreError::InvalidArgument(_)),
            "{inverted:?}"
        );
        let inverted_delete = refusal(
            client
                .delete(DeleteRequest {
                    key: b"/b".to_vec(),
                    range_end: b"/a".to_vec(),
                    ..Default::default()
                })
                .await,
        );
        assert!(matches!(inverted_delete, StoreError::InvalidArgument(_)));
        for bad in [
            RangeRequest {
                limit: -1,
                ..range("/a", "")
            },
            RangeRequest {
                revision: -5,
                ..range("/a", "")
            },
        ] {
            let e = refusal(client.range(bad).await);
            assert!(matches!(e, StoreError::InvalidArgument(_)), "{e:?}");
            assert!(!e.is_retryable());
        }
        let history = refusal(
            client
                .history(HistoryRequest {
                    key: b"/a".to_vec(),
                    start_revision: -1,
                    ..Default::default()
                })
                .await,
        );
        assert!(matches!(history, StoreError::InvalidArgument(_)));
        let leased = refusal(
            client
                .put(PutRequest {
                    lease: 0x7357,
                    ..put("/registry/pods/leased", "x")
                })
                .await,
        );
        assert!(
            matches!(leased, StoreError::LeaseNotFound { id: 0x7357 }),
            "{leased:?}"
        );
        assert!(!leased.is_retryable());
        let future = refusal(client.compact(1_000_000).await);
        assert!(
            matches!(future, StoreError::FutureRevision { .. }),
            "{future:?}"
        );

        // Compacted revisions: reads, history and a second compaction at or below the point are refused as such.
        let second = client.put(put("/registry/pods/a", "2")).await?;
        client.put(put("/registry/pods/a", "3")).await?;
        client.compact(second.header.revision).await?;
        let old = refusal(
            client
                .range(RangeRequest {
                    revision: first.header.revision,
                    ..range("/registry/pods/a", "")
                })
                .await,
        );
        assert!(matches!(old, StoreError::Compacted { .. }), "{old:?}");
        let old_history = refusal(
            client
                .history(HistoryRequest {
                    key: b"/registry/pods/a".to_vec(),
                    start_revision: first.header.revision,
                    ..Default::default()
                })
                .await,
        );
        assert!(matches!(old_history, StoreError::Compacted { .. }));
        let again = refusal(client.compact(first.header.revision).await);
        assert!(matches!(again, StoreError::Compacted { .. }), "{again:?}");
        let gone = client
            .watch_prefix(b"/registry/pods/", first.header.revision)
            .await;
        assert!(
            matches!(gone, Err(Error::Store(StoreError::Compacted { .. }))),
            "{:?}",
            gone.err()
        );

        // Still serving, on one leader, and the watch saw each later change exactly once, in order.
        client.put(put("/registry/pods/b", "ok")).await?;
        assert_eq!(
            client.get(b"/registry/pods/b").await?.map(|kv| kv.value),
            Some(b"ok".to_vec())
        );
        assert_eq!(util::leader_of(&addrs).await?, leader);
        let mut revisions = Vec::new();
        while revisions.len() < 3 {
            match util::within("a watch event", watch.next()).await? {
                Some(Ok(WatchEvent::Changes { revision, .. })) => revisions.push(revision),
                Some(Ok(WatchEvent::Progress { .. })) => {}
                other => anyhow::bail!("watch: {other:?}"),
            }
        }
        let start = second.header.revision;
        assert_eq!(
            revisions,
            vec![start, start + 1, start + 2],
            "puts of a, a, then b (compaction takes no revision)"
        );
        for addr in addrs {
            addr.send(Shutdown).await??;
        }
        Ok(())
    })
}
