//! Linearizable reads on members that do not lead (ReadIndex): a follower or a learner answers them itself, and
//! sees every write the leader acknowledged before the read began.

mod util;

use actix::Addr;
use navarch_bus::store::*;
use navarch_bus::Bus;
use navarch_store::{Execute, GetMetrics, Shutdown, StoreMember};

async fn put(member: &Addr<StoreMember>, key: &str, value: &str) -> anyhow::Result<i64> {
    let put = StoreRequest::Put(PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        ..Default::default()
    });
    match member.send(Execute(put)).await? {
        Ok(StoreResponse::Put(r)) => Ok(r.header.revision),
        other => anyhow::bail!("put: {other:?}"),
    }
}

async fn get(
    member: &Addr<StoreMember>,
    key: &str,
    serializable: bool,
) -> anyhow::Result<RangeResponse> {
    let range = StoreRequest::Range(RangeRequest {
        key: key.as_bytes().to_vec(),
        serializable,
        ..Default::default()
    });
    match member.send(Execute(range)).await? {
        Ok(StoreResponse::Range(r)) => Ok(r),
        other => anyhow::bail!("get: {other:?}"),
    }
}

/// Writes through `leader`, then at once reads through `reader`: the read must be answered by `reader` itself
/// and see the write.
async fn reads_see_acknowledged_writes(
    leader: &Addr<StoreMember>,
    reader: &Addr<StoreMember>,
    rounds: usize,
) -> anyhow::Result<()> {
    let reader_id = reader.send(GetMetrics).await?.id;
    for i in 0..rounds {
        let key = format!("/registry/reads/{reader_id}-{i}");
        let value = format!("v{i}");
        let revision = put(leader, &key, &value).await?;
        let read = get(reader, &key, false)
            .await
            .map_err(|e| e.context(format!("round {i} on member {reader_id}")))?;
        assert_eq!(
            read.header.member_id, reader_id,
            "answered by the member asked, not forwarded"
        );
        assert!(
            read.header.revision >= revision,
            "read at {} after write at {revision}",
            read.header.revision
        );
        let kv = read.kvs.first().map(|kv| kv.value.as_slice());
        assert_eq!(
            kv,
            Some(value.as_bytes()),
            "round {i}: the acknowledged write is visible"
        );
    }
    Ok(())
}

#[test]
fn followers_and_learners_answer_linearizable_reads_that_see_every_acknowledged_write(
) -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let members = [1, 2, 3];
        let addrs =
            util::start_members(&bus, &members, |id| util::config(dir.path(), id, &members))
                .await?;
        let (leader, leader_addr) = util::leader_addr(&addrs).await?;
        for addr in &addrs {
            if addr.send(GetMetrics).await?.id != leader {
                reads_see_acknowledged_writes(&leader_addr, addr, 200).await?;
            }
        }

        // A learner reads the same way.
        let learner_config = navarch_store::StoreConfig {
            bootstrap: false,
            ..util::config(dir.path(), 4, &[4])
        };
        let learner = util::start_members(&bus, &[4], |_| learner_config.clone())
            .await?
            .remove(0);
        let client = StoreClient::new(bus.clone());
        client
            .member_add(MemberAddRequest {
                id: 4,
                is_learner: true,
                ..Default::default()
            })
            .await?;
        reads_see_acknowledged_writes(&leader_addr, &learner, 100).await?;

        // A serializable read is answered locally too, without asking the leader.
        let local = get(&learner, "/registry/reads/4-0", true).await?;
        assert_eq!(local.header.member_id, 4);

        for addr in addrs.into_iter().chain([learner]) {
            addr.send(Shutdown).await??;
        }
        Ok(())
    })
}
