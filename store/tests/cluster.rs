//! Three members on one embedded bus in one process: they elect a leader and replicate writes, which proves that
//! Raft messages travel over the bus (the members share nothing else).

mod util;

use navarch_bus::store::*;
use navarch_bus::Bus;
use navarch_store::{Execute, GetMetrics, Shutdown, StoreMember};

#[test]
fn three_members_elect_a_leader_and_replicate() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let members = [1, 2, 3];
        let mut addrs = Vec::new();
        for id in members {
            // Each member has its own connection to the shared router, as separate processes would.
            let own = Bus::new(bus.transport(), "test").await?;
            addrs.push(StoreMember::start(own, util::config(dir.path(), id, &members)).await?);
        }
        let leader = util::leader_of(&addrs).await?;
        assert!(members.contains(&leader));

        // Requests reach any member (queue group); followers forward to the leader.
        let client = StoreClient::new(bus.clone());
        for i in 0..6 {
            let put = PutRequest {
                key: format!("/registry/pods/p{i}").into_bytes(),
                value: b"v".to_vec(),
                ..Default::default()
            };
            let response = client.put(put).await?;
            assert_eq!(response.header.member_id, leader, "the leader executed it");
        }
        assert_eq!(client.list(b"/registry/pods/").await?.count, 6);

        // Every member's own state machine holds the writes.
        for addr in &addrs {
            let id = addr.send(GetMetrics).await?.id;
            util::eventually(&format!("member {id} applied the writes"), || async {
                let local = StoreRequest::Range(RangeRequest {
                    key: b"/registry/pods/".to_vec(),
                    range_end: prefix_end(b"/registry/pods/"),
                    serializable: true,
                    ..Default::default()
                });
                matches!(addr.send(Execute(local)).await, Ok(Ok(StoreResponse::Range(r))) if r.count == 6)
            })
            .await?;
            assert_eq!(addr.send(GetMetrics).await?.voters, members.to_vec());
        }

        for addr in addrs {
            addr.send(Shutdown).await??;
        }
        Ok(())
    })
}

// A member that lost its disk and rejoins under its old id is not something Raft promises to survive in general
// (it forgets its vote); here nothing else fails meanwhile, and it is the simplest way to make the leader send a
// snapshot: openraft purges the log only while every follower is caught up.
#[test]
fn a_member_that_was_down_catches_up_from_a_chunked_snapshot() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let members = [1, 2, 3];
        let config = |id| navarch_store::StoreConfig {
            snapshot_logs: 20,
            snapshot_catchup_entries: 0,
            // Many chunks, each its own bus message.
            snapshot_chunk_bytes: 1024,
            ..util::config(dir.path(), id, &members)
        };
        let mut addrs = Vec::new();
        for id in members {
            addrs.push(
                StoreMember::start(Bus::new(bus.transport(), "test").await?, config(id)).await?,
            );
        }
        let leader = util::leader_of(&addrs).await?;
        let leader_index = members.iter().position(|id| *id == leader).unwrap_or(0);
        let follower_index = (leader_index + 1) % members.len();
        let follower = members[follower_index];
        // The follower goes down; the others commit 60 writes and purge their logs behind snapshots, so it can only
        // catch up by a snapshot. (A member that lost its data directory is not this case: like etcd, Raft needs it
        // removed and added again as a new member.)
        addrs.remove(follower_index).send(Shutdown).await??;
        let client = StoreClient::new(bus.clone());
        for i in 0..60 {
            let put = PutRequest {
                key: format!("/registry/pods/p{i:02}").into_bytes(),
                value: vec![b'v'; 100],
                ..Default::default()
            };
            client.put(put).await?;
        }
        let leader_index = if leader_index > follower_index {
            leader_index - 1
        } else {
            leader_index
        };
        let leader_addr = addrs[leader_index].clone();
        util::eventually("the leader purged its log behind a snapshot", || async {
            matches!(leader_addr.send(GetMetrics).await, Ok(m) if m.purged_index > 20)
        })
        .await?;

        let back =
            StoreMember::start(Bus::new(bus.transport(), "test").await?, config(follower)).await?;
        util::eventually("the returning member holds every key", || async {
            let local = StoreRequest::Range(RangeRequest {
                key: b"/registry/pods/".to_vec(),
                range_end: prefix_end(b"/registry/pods/"),
                serializable: true,
                count_only: true,
                ..Default::default()
            });
            matches!(back.send(Execute(local)).await, Ok(Ok(StoreResponse::Range(r))) if r.count == 60)
        })
        .await?;
        let metrics = back.send(GetMetrics).await?;
        assert!(
            metrics.snapshot_index > 20,
            "caught up from a snapshot: {metrics:?}"
        );
        // History came along: the returning member reads its own state at an old revision.
        let old = StoreRequest::Range(RangeRequest {
            key: b"/registry/pods/".to_vec(),
            range_end: prefix_end(b"/registry/pods/"),
            revision: 3,
            serializable: true,
            ..Default::default()
        });
        let Ok(StoreResponse::Range(old)) = back.send(Execute(old)).await? else {
            anyhow::bail!("old range")
        };
        assert_eq!(old.count, 2);
        back.send(Shutdown).await??;
        for addr in addrs {
            addr.send(Shutdown).await??;
        }
        Ok(())
    })
}
