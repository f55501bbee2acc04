//! The publisher: turns what the state machine applied into [`StreamMessage`]s on `store.events.<stream>`, from one
//! task so every stream's messages leave in revision order, and sends periodic progress. Only the leader publishes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use navarch_bus::store::{ChangeBatch, KeyValue, StreamMessage, StreamProgress};
use navarch_bus::Bus;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::MissedTickBehavior;

use crate::storage::Notice;
use crate::types::{Node, NodeId};

/// What the publisher knows: how far the applied state got, and each stream's last revision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Published {
    /// Every change up to this revision has been handed to the bus (or skipped while not leader).
    pub revision: i64,
    /// Each stream's last revision.
    pub streams: BTreeMap<String, i64>,
}

impl Published {
    /// Takes in one notice; returns the messages to publish for it, in order.
    pub fn on_notice(&mut self, notice: Notice) -> Vec<StreamMessage> {
        match notice {
            Notice::Changes(batches) => batches
                .into_iter()
                .map(|batch| {
                    // `max`: a notice the state machine sends again after a restart must not move anything back.
                    let last = self.streams.entry(batch.stream.clone()).or_default();
                    *last = (*last).max(batch.revision);
                    self.revision = self.revision.max(batch.revision);
                    StreamMessage::Changes(batch)
                })
                .collect(),
            Notice::Reset { revision, streams } => {
                self.revision = revision;
                self.streams = streams.into_iter().collect();
                Vec::new()
            }
        }
    }

    /// One progress message per known stream.
    pub fn progress(&self) -> Vec<StreamMessage> {
        self.streams
            .iter()
            .map(|(stream, last)| {
                StreamMessage::Progress(StreamProgress {
                    stream: stream.clone(),
                    revision: self.revision,
                    last: *last,
                })
            })
            .collect()
    }
}

/// Publishes until `notices` closes (the state machine is gone). Every notice also goes to `local` (on every
/// member, leader or not) while something listens there.
pub async fn run(
    bus: Bus,
    id: NodeId,
    metrics: watch::Receiver<openraft::RaftMetrics<NodeId, Node>>,
    mut state: Published,
    mut notices: mpsc::UnboundedReceiver<Notice>,
    local: broadcast::Sender<Arc<Notice>>,
    interval: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let leading = || metrics.borrow().current_leader == Some(id);
    loop {
        let messages = tokio::select! {
            biased;
            notice = notices.recv() => match notice {
                Some(notice) => {
                    if local.receiver_count() > 0 {
                        // A listener that subscribes after this reads the change from history instead.
                        let _ = local.send(Arc::new(notice.clone()));
                    }
                    state.on_notice(notice)
                }
                None => return,
            },
            _ = ticks.tick() => state.progress(),
        };
        if messages.is_empty() || !leading() {
            continue;
        }
        for message in messages {
            let stream = match &message {
                StreamMessage::Changes(batch) => &batch.stream,
                StreamMessage::Progress(progress) => &progress.stream,
            };
            if let StreamMessage::Changes(batch) = &message {
                if batch_bytes(batch) > bus.max_payload() {
                    // Too large for one message (a delete of a huge range): not even encoded. Watchers see the
                    // gap at the stream's next message or progress and read the revision from history.
                    tracing::debug!(
                        stream,
                        revision = batch.revision,
                        "change too large to publish"
                    );
                    continue;
                }
            }
            let subject = bus.subjects().store_events(stream);
            // At most once, like every bus message: a lost batch shows up to watchers as a gap and they reread
            // history.
            if let Err(e) = bus.publish_encoded(&subject, &message).await {
                tracing::warn!(error = %e, %subject, "cannot publish store change");
            }
        }
    }
}

/// A lower bound of the bytes a batch takes encoded.
fn batch_bytes(batch: &ChangeBatch) -> usize {
    let kv = |kv: &KeyValue| kv.key.len() + kv.value.len();
    batch
        .events
        .iter()
        .map(|e| kv(&e.kv) + e.prev_kv.as_ref().map_or(0, kv))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(stream: &str, revision: i64, prev: i64) -> ChangeBatch {
        ChangeBatch {
            revision,
            prev,
            stream: stream.into(),
            events: Vec::new(),
        }
    }

    #[test]
    fn progress_reports_what_was_published() {
        let mut state = Published::default();
        let out = state.on_notice(Notice::Changes(vec![
            batch("pods", 2, 0),
            batch("nodes", 2, 0),
        ]));
        assert_eq!(out.len(), 2);
        state.on_notice(Notice::Changes(vec![batch("pods", 3, 2)]));
        // Replayed after a restart: nothing moves back.
        state.on_notice(Notice::Changes(vec![batch("pods", 2, 0)]));
        let progress = state.progress();
        assert_eq!(
            progress,
            vec![
                StreamMessage::Progress(StreamProgress {
                    stream: "nodes".into(),
                    revision: 3,
                    last: 2
                }),
                StreamMessage::Progress(StreamProgress {
                    stream: "pods".into(),
                    revision: 3,
                    last: 3
                }),
            ]
        );
        state.on_notice(Notice::Reset {
            revision: 9,
            streams: vec![("svc".into(), 9)],
        });
        assert_eq!(state.progress().len(), 1);
    }
}
