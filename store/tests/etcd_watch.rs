//! Watches through the etcd API: the real `etcdctl watch` (prefix, past revisions, previous values, compacted
//! revisions), and the protocol's finer points through a gRPC client: ids, filters, cancel, progress requests and
//! notifications, a watcher that falls behind the change stream.

#[path = "util/etcdctl.rs"]
mod etcdctl;
mod util;

use std::time::Duration;

use etcdctl::Etcdctl;
use navarch_bus::Bus;
use navarch_store::etcd::proto::etcdserverpb::{
    self as pb, kv_client::KvClient, watch_client::WatchClient, watch_create_request::FilterType,
    watch_request::RequestUnion,
};
use navarch_store::etcd::proto::mvccpb::event::EventType;
use navarch_store::Shutdown;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

fn put(key: &str, value: &str) -> pb::PutRequest {
    pb::PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

#[test]
fn etcdctl_watch() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("etcd-watch").await?;
        let (member, address) = etcdctl::start_member(&bus, dir.path(), 1, &[1]).await?;
        let etcdctl = Etcdctl::new(&[address]);
        etcdctl.ok(&["put", "foo", "old"]).await?; // 2
        etcdctl.ok(&["put", "other", "x"]).await?; // 3

        // From a past revision: history first, then live changes, with previous values.
        let mut watch = etcdctl.spawn(&["watch", "--prefix", "foo", "--rev=2", "--prev-kv"])?;
        assert_eq!(watch.lines(3).await?, ["PUT", "foo", "old"]);
        etcdctl.ok(&["put", "foo", "new"]).await?; // 4
        assert_eq!(watch.lines(5).await?, ["PUT", "foo", "old", "foo", "new"]);
        etcdctl.ok(&["put", "food", "1"]).await?; // 5
        etcdctl.ok(&["put", "bar", "not watched"]).await?; // 6
        etcdctl.ok(&["del", "foo"]).await?; // 7
        assert_eq!(watch.lines(3).await?, ["PUT", "food", "1"]);
        assert_eq!(watch.lines(5).await?, ["DELETE", "foo", "new", "foo", ""]);
        drop(watch);

        // A transaction's changes arrive as one response.
        let mut watch = etcdctl.spawn(&["watch", "--prefix", "t", "--rev=8"])?;
        let txn = b"\nput t1 a\nput t2 b\n\n\n";
        let run = etcdctl
            .run_with(&["txn"], txn, Duration::from_secs(30))
            .await?;
        assert!(run.success, "{run:?}");
        assert_eq!(watch.lines(6).await?, ["PUT", "t1", "a", "PUT", "t2", "b"]);
        drop(watch);

        // A compacted start revision: etcdctl reports etcd's error and stops.
        etcdctl.ok(&["compaction", "5"]).await?;
        let watch = etcdctl.spawn(&["watch", "foo", "--rev=3"])?;
        let (success, stderr) = watch.finish().await?;
        assert!(!success, "{stderr}");
        assert!(
            stderr.contains("required revision has been compacted"),
            "{stderr}"
        );
        // The compaction point itself is still watchable.
        let mut watch = etcdctl.spawn(&["watch", "food", "--rev=5"])?;
        assert_eq!(watch.lines(3).await?, ["PUT", "food", "1"]);

        member.send(Shutdown).await??;
        Ok(())
    })
}

/// A watch stream driven by hand.
struct Stream {
    requests: mpsc::Sender<pb::WatchRequest>,
    responses: Streaming<pb::WatchResponse>,
}

impl Stream {
    async fn open(channel: &Channel) -> anyhow::Result<Self> {
        let (requests, rx) = mpsc::channel(16);
        let responses = WatchClient::new(channel.clone())
            .watch(ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok(Self {
            requests,
            responses,
        })
    }

    async fn send(&self, request: RequestUnion) -> anyhow::Result<()> {
        self.requests
            .send(pb::WatchRequest {
                request_union: Some(request),
            })
            .await?;
        Ok(())
    }

    async fn create(&self, create: pb::WatchCreateRequest) -> anyhow::Result<()> {
        self.send(RequestUnion::CreateRequest(create)).await
    }

    async fn next(&mut self) -> anyhow::Result<pb::WatchResponse> {
        let next = tokio::time::timeout(Duration::from_secs(10), self.responses.message()).await;
        next.map_err(|_| anyhow::anyhow!("no watch response within 10 s"))??
            .ok_or_else(|| anyhow::anyhow!("watch stream ended"))
    }
}

fn revision(response: &pb::WatchResponse) -> i64 {
    response.header.as_ref().map_or(0, |h| h.revision)
}

fn keys(response: &pb::WatchResponse) -> Vec<(EventType, String)> {
    response
        .events
        .iter()
        .map(|e| {
            let key =
                e.kv.as_ref()
                    .map(|kv| String::from_utf8_lossy(&kv.key).into_owned());
            (e.r#type(), key.unwrap_or_default())
        })
        .collect()
}

#[test]
fn watch_protocol() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("etcd-watch-proto").await?;
        let (member, address) = etcdctl::start_member(&bus, dir.path(), 1, &[1]).await?;
        let channel = Channel::from_shared(format!("http://{address}"))?
            .connect()
            .await?;
        let mut kv = KvClient::new(channel.clone());
        let mut stream = Stream::open(&channel).await?;

        // Ids from 0; a requested id; a duplicate id and an empty range are refused as etcd refuses them.
        let prefix = |key: &str| pb::WatchCreateRequest {
            key: key.into(),
            range_end: navarch_bus::store::prefix_end(key.as_bytes()),
            ..Default::default()
        };
        stream.create(prefix("a")).await?;
        let created = stream.next().await?;
        assert!(created.created && !created.canceled);
        assert_eq!((created.watch_id, revision(&created)), (0, 1));
        stream
            .create(pb::WatchCreateRequest {
                watch_id: 7,
                filters: vec![FilterType::Noput as i32],
                prev_kv: true,
                ..prefix("a")
            })
            .await?;
        assert_eq!(stream.next().await?.watch_id, 7);
        stream
            .create(pb::WatchCreateRequest {
                watch_id: 7,
                ..prefix("b")
            })
            .await?;
        let refused = stream.next().await?;
        assert!(
            refused.created && refused.canceled && refused.watch_id == -1,
            "{refused:?}"
        );
        stream
            .create(pb::WatchCreateRequest {
                key: b"b".to_vec(),
                range_end: b"a".to_vec(),
                ..Default::default()
            })
            .await?;
        assert!(stream.next().await?.canceled);
        stream
            .create(pb::WatchCreateRequest {
                progress_notify: true,
                filters: vec![FilterType::Nodelete as i32],
                ..prefix("b")
            })
            .await?;
        assert_eq!(stream.next().await?.watch_id, 1);

        kv.put(put("a1", "x")).await?; // 2
        let event = stream.next().await?;
        assert_eq!((event.watch_id, revision(&event)), (0, 2));
        assert_eq!(keys(&event), [(EventType::Put, "a1".to_string())]);
        kv.delete_range(pb::DeleteRangeRequest {
            key: b"a1".to_vec(),
            ..Default::default()
        })
        .await?; // 3
        let mut deletes = [stream.next().await?, stream.next().await?];
        deletes.sort_by_key(|r| r.watch_id);
        assert_eq!(keys(&deletes[0]), [(EventType::Delete, "a1".to_string())]);
        // Watcher 7 filters puts and asked for previous values.
        assert_eq!(deletes[1].watch_id, 7);
        let prev = deletes[1].events[0].prev_kv.clone().unwrap_or_default();
        assert_eq!(prev.value, b"x");
        assert!(deletes[0].events[0].prev_kv.is_none());

        // A progress request: every watcher has everything up to revision 3.
        stream
            .send(RequestUnion::ProgressRequest(pb::WatchProgressRequest {}))
            .await?;
        let progress = stream.next().await?;
        assert_eq!(
            (
                progress.watch_id,
                revision(&progress),
                progress.events.len()
            ),
            (-1, 3, 0)
        );
        // Watcher 1 asked for progress notifications (every 500 ms here) and has seen nothing: it gets them.
        let notified = stream.next().await?;
        assert_eq!((notified.watch_id, revision(&notified)), (1, 3));
        assert!(notified.events.is_empty());

        // Cancel: acknowledged, then nothing more for that watcher; an unknown id gets no answer.
        stream
            .send(RequestUnion::CancelRequest(pb::WatchCancelRequest {
                watch_id: 0,
            }))
            .await?;
        stream
            .send(RequestUnion::CancelRequest(pb::WatchCancelRequest {
                watch_id: 99,
            }))
            .await?;
        let canceled = loop {
            let r = stream.next().await?;
            if r.watch_id == 0 {
                break r;
            }
        };
        assert!(canceled.canceled);
        stream
            .send(RequestUnion::CancelRequest(pb::WatchCancelRequest {
                watch_id: 1,
            }))
            .await?;
        loop {
            let r = stream.next().await?;
            if r.watch_id == 1 && r.canceled {
                break;
            }
        }
        kv.put(put("a2", "y")).await?; // 4: only watcher 7 is left, and it filters puts
        kv.delete_range(pb::DeleteRangeRequest {
            key: b"a2".to_vec(),
            ..Default::default()
        })
        .await?; // 5
        let only = stream.next().await?;
        assert_eq!((only.watch_id, revision(&only)), (7, 5));

        // A watch from a future revision waits for it.
        stream
            .create(pb::WatchCreateRequest {
                start_revision: 7,
                ..prefix("f")
            })
            .await?;
        let future = stream.next().await?.watch_id;
        kv.put(put("f", "6")).await?; // 6: before the start
        kv.put(put("f", "7")).await?; // 7
        let event = stream.next().await?;
        assert_eq!((event.watch_id, revision(&event)), (future, 7));

        member.send(Shutdown).await??;
        Ok(())
    })
}

#[test]
fn a_watcher_that_falls_behind_catches_up_from_history() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("etcd-watch-lag").await?;
        let (member, address) = etcdctl::start_member(&bus, dir.path(), 1, &[1]).await?;
        let channel = Channel::from_shared(format!("http://{address}"))?
            .connect()
            .await?;
        let mut stream = Stream::open(&channel).await?;
        stream
            .create(pb::WatchCreateRequest {
                key: vec![0],
                range_end: vec![0],
                prev_kv: true,
                ..Default::default()
            })
            .await?;
        assert!(stream.next().await?.created);

        // Far more changes than the member keeps for slow watchers and the connection buffers, written while
        // nobody reads the stream.
        const WRITES: i64 = 2000;
        let padding = "p".repeat(4096);
        let mut writers = Vec::new();
        for w in 0..4 {
            let mut kv = KvClient::new(channel.clone());
            let padding = padding.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..WRITES / 4 {
                    kv.put(put(&format!("k{w}"), &format!("{i} {padding}")))
                        .await?;
                }
                anyhow::Ok(())
            }));
        }
        for writer in writers {
            writer.await??;
        }
        // Every revision exactly once, in order, each key's values in order.
        let mut expected = 2;
        let mut last = [-1_i64; 4];
        while expected < WRITES + 2 {
            let response = stream.next().await?;
            for event in &response.events {
                let kv = event.kv.clone().unwrap_or_default();
                assert_eq!(kv.mod_revision, expected, "revision skipped or repeated");
                expected += 1;
                let w = usize::from(kv.key.get(1).copied().unwrap_or(b'0') - b'0');
                let value = String::from_utf8_lossy(&kv.value);
                let value: i64 = value.split(' ').next().unwrap_or_default().parse()?;
                assert_eq!(value, last[w] + 1, "values of k{w} out of order");
                last[w] = value;
                if value > 0 {
                    assert!(event.prev_kv.is_some());
                }
            }
        }

        member.send(Shutdown).await??;
        Ok(())
    })
}
