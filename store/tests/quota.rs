//! The space quota against a real member: a write that would pass it raises the NOSPACE alarm and is refused, as
//! is every later write that adds data; reads, deletes and compaction go on; disarming works once compaction
//! brought the counted size back within the quota.

mod util;

use navarch_bus::store::*;
use navarch_bus::Bus;
use navarch_store::{Shutdown, StoreConfig, StoreMember};

const QUOTA: u64 = 2048;

fn put(key: &str, bytes: usize) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: vec![b'v'; bytes],
        ..Default::default()
    }
}

fn no_space<T: std::fmt::Debug>(result: &Result<T, Error>) -> bool {
    matches!(result, Err(Error::Store(StoreError::NoSpace)))
}

#[test]
fn a_full_store_refuses_writes_until_compacted_and_disarmed() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let config = StoreConfig {
            quota_bytes: QUOTA,
            ..util::config(dir.path(), 1, &[1])
        };
        let member = StoreMember::start(bus.clone(), config).await?;
        let client = StoreClient::new(bus.clone());

        let mut stored = 0;
        let refused = loop {
            anyhow::ensure!(stored < 20, "the quota never refused a put");
            match client
                .put(put(&format!("/registry/pods/p{stored}"), 300))
                .await
            {
                Ok(_) => stored += 1,
                Err(e) => break e,
            }
        };
        assert!(
            matches!(refused, Error::Store(StoreError::NoSpace)),
            "{refused:?}"
        );
        assert!(stored >= 1, "the first puts fit");
        let alarms = client.alarms(false).await?.alarms;
        assert_eq!(
            alarms,
            vec![Alarm {
                member_id: 1,
                kind: AlarmKind::NoSpace
            }]
        );
        let status = client.status().await?;
        assert!(
            status.db_size_in_use > 0 && status.db_size_in_use <= QUOTA,
            "{status:?}"
        );

        // While the alarm stands even a small write is refused, as are transactions with a put and lease grants.
        assert!(no_space(&client.put(put("/registry/pods/tiny", 1)).await));
        assert!(no_space(&client.lease_grant(60, 0).await));
        let txn = TxnRequest {
            success: vec![TxnOp::Put(put("/registry/pods/t", 1))],
            ..Default::default()
        };
        assert!(no_space(&client.txn(txn.clone()).await));
        // Reads and deletes go on.
        assert!(client.get(b"/registry/pods/p0").await?.is_some());
        assert_eq!(client.list(b"/registry/pods/").await?.count, stored);
        let mut last_delete = 0;
        for i in 0..stored {
            let deleted = client
                .delete(DeleteRequest {
                    key: format!("/registry/pods/p{i}").into_bytes(),
                    ..Default::default()
                })
                .await?;
            assert_eq!(deleted.deleted, 1);
            last_delete = deleted.header.revision;
        }
        assert_eq!(client.list(b"/registry/pods/").await?.count, 0);

        // Deletions are history too: the count is still over the quota, so the alarm stays.
        let over = client.status().await?.db_size_in_use;
        assert!(over > QUOTA, "tombstones count: {over}");
        assert_eq!(client.alarms(true).await?.alarms.len(), 1);
        assert!(no_space(&client.put(put("/registry/pods/tiny", 1)).await));

        // Compaction frees the history; disarming then clears the alarm and writes work again.
        client.compact(last_delete).await?;
        assert!(client.status().await?.db_size_in_use <= QUOTA);
        assert_eq!(client.alarms(true).await?.alarms, Vec::<Alarm>::new());
        client.put(put("/registry/pods/again", 300)).await?;
        client.txn(txn).await?;
        client.lease_grant(60, 0).await?;
        member.send(Shutdown).await??;
        Ok(())
    })
}

#[test]
fn the_alarm_is_replicated_so_a_new_leader_refuses_too() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let members = [1, 2, 3];
        let mut addrs = Vec::new();
        for id in members {
            let config = StoreConfig {
                quota_bytes: QUOTA,
                ..util::config(dir.path(), id, &members)
            };
            addrs.push(StoreMember::start(Bus::new(bus.transport(), "test").await?, config).await?);
        }
        let leader = util::leader_of(&addrs).await?;
        let client = StoreClient::new(bus.clone());
        // One put larger than the quota raises the alarm at once.
        assert!(no_space(&client.put(put("/registry/pods/big", 4096)).await));
        let index = members.iter().position(|id| *id == leader).unwrap_or(0);
        addrs.remove(index).send(Shutdown).await??;

        // Whoever leads next applied the alarm too: even a tiny put is refused, once a leader answers.
        util::eventually("a new leader refuses with NOSPACE", || async {
            no_space(&client.put(put("/registry/pods/tiny", 1)).await)
        })
        .await?;
        let alarms = client.alarms(false).await?;
        assert_ne!(alarms.header.member_id, leader);
        assert_eq!(
            alarms.alarms,
            vec![Alarm {
                member_id: leader,
                kind: AlarmKind::NoSpace
            }]
        );
        // Nothing was stored, so disarming works at once.
        assert!(client.alarms(true).await?.alarms.is_empty());
        client.put(put("/registry/pods/tiny", 1)).await?;
        for addr in addrs {
            addr.send(Shutdown).await??;
        }
        Ok(())
    })
}
