//! Stopping a member and starting another on the same data directory: nothing is lost, nothing is reset.

mod util;

use navarch_bus::store::*;
use navarch_bus::{codec, Bus};
use navarch_store::{GetMetrics, Shutdown};

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

#[test]
fn a_restarted_member_keeps_keys_revision_and_stream_order() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let client = StoreClient::new(bus.clone());

        let member = util::start_single(&bus, dir.path()).await?;
        client.put(put("/registry/pods/a", "1")).await?; // 2
        client.put(put("/registry/pods/b", "2")).await?; // 3
        client.put(put("/registry/nodes/n", "n")).await?; // 4
        let term_before = member.send(GetMetrics).await?.term;
        member.send(Shutdown).await??;

        let mut pods = bus.subscribe(&bus.subjects().store_events("pods")).await?;
        let member = util::start_single(&bus, dir.path()).await?;
        let metrics = member.send(GetMetrics).await?;
        assert_eq!(metrics.voters, vec![1], "not initialized again");
        assert!(metrics.term >= term_before);
        assert_eq!(client.status().await?.header.revision, 4);
        let a = client.get(b"/registry/pods/a").await?.expect("a survived");
        assert_eq!((a.value.as_slice(), a.mod_revision), (&b"1"[..], 2));
        assert_eq!(client.list(b"/registry/").await?.count, 3);

        let again = client.put(put("/registry/pods/a", "again")).await?;
        assert_eq!(again.header.revision, 5);
        let a = client.get(b"/registry/pods/a").await?.expect("a");
        assert_eq!((a.create_revision, a.version), (2, 2));
        // The stream's next batch names the last pods revision from before the restart.
        loop {
            let message = util::within("pods batch", pods.next())
                .await?
                .expect("subscription open");
            match codec::decode::<StreamMessage>(&message.payload)? {
                StreamMessage::Changes(batch) if batch.revision == 5 => {
                    assert_eq!(batch.prev, 3);
                    break;
                }
                _ => continue,
            }
        }
        member.send(Shutdown).await??;
        Ok(())
    })
}
