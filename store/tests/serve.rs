//! A lone member serving `store.rpc` to the bus crate's `StoreClient`: reads, writes, transactions, refusals.

mod util;

use std::time::Duration;

use navarch_bus::store::*;
use navarch_bus::{Bus, Bytes, Headers};
use navarch_store::{Shutdown, StoreMember};

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

#[test]
fn put_get_list_txn_delete_status() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let member = util::start_single(&bus, dir.path()).await?;
        let client = StoreClient::new(bus.clone());

        let first = client.put(put("/registry/pods/default/a", "1")).await?;
        assert_eq!(first.header.revision, 2);
        assert_eq!(first.header.member_id, 1);
        assert!(first.header.raft_term > 0);
        client.put(put("/registry/pods/default/b", "2")).await?;
        client.put(put("/registry/nodes/n1", "n")).await?;
        let a = client
            .get(b"/registry/pods/default/a")
            .await?
            .expect("a exists");
        assert_eq!(
            (a.value.as_slice(), a.create_revision, a.version),
            (&b"1"[..], 2, 1)
        );
        assert_eq!(client.get(b"/registry/pods/default/zzz").await?, None);
        let pods = client.list(b"/registry/pods/").await?;
        assert_eq!(pods.kvs.len(), 2);
        assert_eq!((pods.count, pods.header.revision), (2, 4));

        // Compare-and-swap on the mod revision: the first wins, the stale one fails and writes nothing.
        let cas = |value: &str| TxnRequest {
            compare: vec![Compare::mod_revision("/registry/pods/default/a", 2)],
            success: vec![TxnOp::Put(put("/registry/pods/default/a", value))],
            failure: vec![TxnOp::Range(RangeRequest {
                key: b"/registry/pods/default/a".to_vec(),
                ..Default::default()
            })],
        };
        let won = client.txn(cas("won")).await?;
        assert!(won.succeeded);
        assert_eq!(won.header.revision, 5);
        let lost = client.txn(cas("lost")).await?;
        assert!(!lost.succeeded);
        assert_eq!(lost.header.revision, 5);
        let TxnOpResponse::Range(current) = &lost.responses[0] else {
            panic!("{lost:?}")
        };
        assert_eq!(current.kvs[0].value, b"won");
        // Create-if-absent on an existing key fails.
        let create = TxnRequest {
            compare: vec![Compare::absent("/registry/nodes/n1")],
            success: vec![TxnOp::Put(put("/registry/nodes/n1", "dup"))],
            failure: vec![],
        };
        assert!(!client.txn(create).await?.succeeded);

        let deleted = client
            .delete(DeleteRequest {
                key: b"/registry/pods/".to_vec(),
                range_end: prefix_end(b"/registry/pods/"),
                prev_kv: true,
            })
            .await?;
        assert_eq!(
            (
                deleted.deleted,
                deleted.prev_kvs.len(),
                deleted.header.revision
            ),
            (2, 2, 6)
        );
        let status = client.status().await?;
        assert_eq!(
            (status.leader, status.header.revision, status.keys),
            (1, 6, 1)
        );
        assert!(status.raft_applied_index >= 6 && status.db_size > 0);

        // Refusals keep their meaning on the wire.
        let empty_key = client.put(put("", "x")).await;
        assert!(
            matches!(empty_key, Err(Error::Store(StoreError::InvalidArgument(_)))),
            "{empty_key:?}"
        );
        let future = client
            .range(RangeRequest {
                key: b"/a".to_vec(),
                revision: 99,
                ..Default::default()
            })
            .await;
        assert!(matches!(
            future,
            Err(Error::Store(StoreError::FutureRevision {
                requested: 99,
                current: 6
            }))
        ));

        member.send(Shutdown).await??;
        Ok(())
    })
}

#[test]
fn garbage_and_oversized_requests_get_errors_and_the_store_keeps_serving() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let config = navarch_store::StoreConfig {
            max_request_bytes: 64 * 1024,
            ..util::config(dir.path(), 1, &[1])
        };
        let member = StoreMember::start(bus.clone(), config).await?;
        let client = StoreClient::new(bus.clone());
        let subject = bus.subjects().store_rpc();

        for garbage in [
            &b""[..],
            b"\xff\xff\xff\xff\xff\xff",
            b"not a request at all",
        ] {
            let reply = bus
                .request(
                    &subject,
                    Headers::new(),
                    Bytes::copy_from_slice(garbage),
                    Duration::from_secs(5),
                )
                .await?;
            let reply: StoreReply = navarch_bus::codec::decode(&reply.payload)?;
            assert!(
                matches!(reply, Err(StoreError::InvalidArgument(_))),
                "{reply:?}"
            );
        }
        let big = "x".repeat(100 * 1024);
        let refused = client.put(put("/big", &big)).await;
        assert!(
            matches!(
                refused,
                Err(Error::Store(StoreError::RequestTooLarge { max: 65536, .. }))
            ),
            "{refused:?}"
        );
        client.put(put("/still", "serving")).await?;
        assert_eq!(
            client.get(b"/still").await?.map(|kv| kv.value),
            Some(b"serving".to_vec())
        );

        member.send(Shutdown).await??;
        Ok(())
    })
}

#[test]
fn requests_up_to_etcds_limit_pass_larger_than_one_bus_message() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let member = util::start_single(&bus, dir.path()).await?;
        let client = StoreClient::new(bus.clone());
        // 1.4 MiB: over the bus's 1 MiB message, under etcd's 1.5 MiB request limit.
        let big = vec![b'v'; 1400 * 1024];
        assert!(big.len() > bus.max_payload());
        client
            .put(navarch_bus::store::PutRequest {
                key: b"/big".to_vec(),
                value: big.clone(),
                ..Default::default()
            })
            .await?;
        assert_eq!(client.get(b"/big").await?.map(|kv| kv.value), Some(big));
        let refused = client
            .put(navarch_bus::store::PutRequest {
                key: b"/bigger".to_vec(),
                value: vec![b'v'; 1600 * 1024],
                ..Default::default()
            })
            .await;
        assert!(
            matches!(refused, Err(Error::Store(StoreError::RequestTooLarge { max, .. })) if max == 1536 * 1024),
            "{refused:?}"
        );
        member.send(Shutdown).await??;
        Ok(())
    })
}

#[test]
fn concurrent_and_sequential_puts_all_commit() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let member = util::start_single(&bus, dir.path()).await?;
        let client = StoreClient::new(bus.clone());

        let n = 200;
        let started = tokio::time::Instant::now();
        for i in 0..n {
            client.put(put(&format!("/seq/{i:04}"), "v")).await?;
        }
        let sequential = started.elapsed();
        let started = tokio::time::Instant::now();
        let puts = (0..n).map(|i| {
            let client = client.clone();
            async move { client.put(put(&format!("/par/{i:04}"), "v")).await }
        });
        let results = futures::future::join_all(puts).await;
        let concurrent = started.elapsed();
        let mut revisions: Vec<i64> = results
            .into_iter()
            .map(|r| r.map(|p| p.header.revision))
            .collect::<Result<_, _>>()?;
        revisions.sort();
        revisions.dedup();
        assert_eq!(revisions.len(), n, "every put took its own revision");
        assert_eq!(client.status().await?.header.revision, 1 + 2 * n as i64);
        println!(
            "{n} sequential puts: {:.0}/s; {n} concurrent puts: {:.0}/s (fsync per batch, debug build)",
            n as f64 / sequential.as_secs_f64(),
            n as f64 / concurrent.as_secs_f64()
        );
        member.send(Shutdown).await??;
        Ok(())
    })
}
