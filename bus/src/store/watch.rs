//! Gap-free watches over at-most-once delivery.
//!
//! A watch subscribes to the change stream(s) of its range, then reads the history from its start revision up to
//! the store's current revision. Live [`ChangeBatch`]es continue from there; each names its stream's previous
//! revision, so a lost message shows up as a `prev` the watch has not covered, and the periodic
//! [`StreamProgress`] on the same subject reveals a lost *last* message. Either way the watch rereads history from
//! the last revision it delivered. Batches are delivered in revision order, each exactly once.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;

use super::client::{Error, StoreClient};
use super::protocol::*;
use crate::codec;
use crate::transport::Subscription;

/// What a watch yields.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// The changes within the range at one revision (never empty).
    Changes {
        /// The revision.
        revision: i64,
        /// The changes, in the transaction's order.
        events: Vec<Event>,
    },
    /// Everything up to `revision` has been delivered (a bookmark). Sent only by watches within one stream.
    Progress {
        /// The revision.
        revision: i64,
    },
}

/// A running watch. Dropping it stops the watch.
pub struct WatchStream {
    rx: mpsc::Receiver<Result<WatchEvent, Error>>,
    start_revision: i64,
}

impl WatchStream {
    /// The next event. `Err` ends the watch: [`StoreError::Compacted`] when history is gone (list again and watch
    /// from the new revision), or a non-retryable error. `None` if the watch stopped otherwise.
    pub async fn next(&mut self) -> Option<Result<WatchEvent, Error>> {
        self.rx.recv().await
    }

    /// The revision the watch started after: every change above it will be delivered.
    pub fn start_revision(&self) -> i64 {
        self.start_revision
    }
}

struct Watch {
    client: StoreClient,
    key: Vec<u8>,
    range_end: Vec<u8>,
    /// The one stream the range lies in, if it lies in one.
    stream: Option<String>,
    /// Every revision up to this one has been delivered (or held nothing for us).
    delivered: i64,
    /// Per stream: the revision up to which no batch of that stream can have been missed.
    covered: HashMap<String, i64>,
    /// `covered` of a stream not heard from since the last history read.
    base: i64,
    tx: mpsc::Sender<Result<WatchEvent, Error>>,
}

pub(super) async fn start(
    client: StoreClient,
    key: Vec<u8>,
    range_end: Vec<u8>,
    start_revision: i64,
) -> Result<WatchStream, Error> {
    if start_revision < 0 {
        return Err(StoreError::InvalidArgument("negative start revision".into()).into());
    }
    let bus = client.bus().clone();
    let stream = single_stream(&key, &range_end);
    let subject = match &stream {
        Some(s) => bus.subjects().store_events(s),
        None => bus.subjects().store_events_all(),
    };
    let events = bus.subscribe(&subject).await?;
    bus.flush().await?;
    // Subscribed first, then asked for history: whatever commits in between arrives live or in the history.
    let delivered = if start_revision == 0 {
        client
            .history(HistoryRequest::default())
            .await?
            .header
            .revision
    } else {
        start_revision - 1
    };
    let (tx, rx) = mpsc::channel(1024);
    let mut watch = Watch {
        client,
        key,
        range_end,
        stream,
        delivered,
        covered: HashMap::new(),
        base: delivered,
        tx,
    };
    // Read history now so that a compacted start revision is reported to the caller at once.
    if start_revision != 0 {
        watch.resync().await?;
    }
    tokio::spawn(async move { watch.run(events).await });
    Ok(WatchStream {
        rx,
        start_revision: delivered,
    })
}

enum Step {
    Continue,
    Resync,
    Stop,
}

impl Watch {
    async fn run(mut self, mut events: Subscription) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let step = tokio::select! {
                _ = self.tx.closed() => Step::Stop,
                m = events.next() => match m {
                    Some(m) => match codec::decode::<StreamMessage>(&m.payload) {
                        Ok(StreamMessage::Changes(batch)) => self.on_batch(batch).await,
                        Ok(StreamMessage::Progress(p)) => self.on_progress(p).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "undecodable change message; rereading history");
                            Step::Resync
                        }
                    },
                    None => Step::Stop,
                },
            };
            match step {
                Step::Continue => {}
                Step::Stop => return,
                Step::Resync => loop {
                    match self.resync().await {
                        Ok(()) => {
                            backoff = Duration::from_millis(50);
                            break;
                        }
                        Err(e) if e.is_retryable() => {
                            tracing::debug!(error = %e, "watch resync failed; retrying");
                            tokio::select! {
                                _ = self.tx.closed() => return,
                                _ = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                        }
                        Err(e) => {
                            let _ = self.tx.send(Err(e)).await;
                            return;
                        }
                    }
                },
            }
        }
    }

    fn covered(&self, stream: &str) -> i64 {
        *self.covered.get(stream).unwrap_or(&self.base)
    }

    async fn on_batch(&mut self, batch: ChangeBatch) -> Step {
        let covered = self.covered(&batch.stream);
        if batch.revision <= covered {
            return Step::Continue; // already delivered through history
        }
        if batch.prev > covered {
            tracing::debug!(stream = %batch.stream, missed = batch.prev, "change message lost; rereading history");
            return Step::Resync;
        }
        self.covered.insert(batch.stream.clone(), batch.revision);
        if self.deliver(batch.revision, batch.events).await {
            Step::Continue
        } else {
            Step::Stop
        }
    }

    async fn on_progress(&mut self, progress: StreamProgress) -> Step {
        let covered = self.covered(&progress.stream);
        if progress.last > covered {
            tracing::debug!(stream = %progress.stream, missed = progress.last, "last change message lost; rereading history");
            return Step::Resync;
        }
        self.covered
            .insert(progress.stream.clone(), covered.max(progress.revision));
        // Only a watch within one stream knows that nothing else can be pending below `revision`.
        if self.stream.as_deref() != Some(progress.stream.as_str())
            || progress.revision <= self.delivered
        {
            return Step::Continue;
        }
        self.delivered = progress.revision;
        let bookmark = WatchEvent::Progress {
            revision: progress.revision,
        };
        if self.tx.send(Ok(bookmark)).await.is_err() {
            return Step::Stop;
        }
        Step::Continue
    }

    /// Sends the events of `revision` that fall in the range. Returns false once the receiver is gone.
    async fn deliver(&mut self, revision: i64, events: Vec<Event>) -> bool {
        if revision <= self.delivered {
            return true;
        }
        self.delivered = revision;
        let events: Vec<Event> = events
            .into_iter()
            .filter(|e| in_range(&e.kv.key, &self.key, &self.range_end))
            .collect();
        if events.is_empty() {
            return true;
        }
        self.tx
            .send(Ok(WatchEvent::Changes { revision, events }))
            .await
            .is_ok()
    }

    /// Reads history from the last delivered revision on and delivers it.
    async fn resync(&mut self) -> Result<(), Error> {
        loop {
            let response = self
                .client
                .history(HistoryRequest {
                    key: self.key.clone(),
                    range_end: self.range_end.clone(),
                    start_revision: self.delivered.saturating_add(1),
                    limit: 0,
                })
                .await?;
            if self.delivered > response.header.revision {
                // Asked to start after a revision the store has not reached (Kubernetes: "Too large resource
                // version"); waiting silently would drop the changes in between.
                return Err(StoreError::FutureRevision {
                    requested: self.delivered.saturating_add(1),
                    current: response.header.revision,
                }
                .into());
            }
            let upto = if response.more {
                response
                    .batches
                    .last()
                    .map_or(self.delivered, |b| b.revision)
            } else {
                response.header.revision
            };
            for batch in response.batches {
                if !self.deliver(batch.revision, batch.events).await {
                    return Ok(());
                }
            }
            self.delivered = self.delivered.max(upto);
            if !response.more {
                self.base = self.delivered;
                self.covered.clear();
                return Ok(());
            }
        }
    }
}
