//! etcd's Watch service: one session task per gRPC stream, fed by the member's own change stream and history.
//!
//! The session subscribes to the member's change stream before it reads anything, so every revision is either in
//! the history it reads or arrives on the stream afterwards: ordered, gap-free, atomic per revision, never
//! duplicated ([`Watchers`] skips what a watcher has). When the stream lags or a snapshot replaces the state, the
//! watchers reread history from where they are; a compacted revision cancels the watcher with etcd's
//! `compact_revision` answer.
//!
//! Events of one revision that touch several `/registry/<resource>/` streams arrive grouped by stream, so within
//! such a revision events come stream by stream rather than in the transaction's order.

mod watchers;

use std::sync::Arc;

use futures::StreamExt;
use navarch_bus::store::{HistoryRequest, HistoryResponse, StoreError};
use tokio::sync::{broadcast, mpsc};
use tokio::time::MissedTickBehavior;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use self::watchers::Watchers;
use super::proto::etcdserverpb::{self as pb, watch_request::RequestUnion, watch_server};
use super::Api;
use crate::mvcc::{self, Reader};
use crate::storage::Notice;

/// Responses waiting for a slow client; past this the session waits, its change stream may lag, and its watchers
/// then catch up from history.
const RESPONSE_BACKLOG: usize = 128;

/// The Watch service of one member.
pub(crate) struct WatchService(pub(crate) Arc<Api>);

#[tonic::async_trait]
impl watch_server::Watch for WatchService {
    type WatchStream = ReceiverStream<Result<pb::WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (tx, rx) = mpsc::channel(RESPONSE_BACKLOG);
        let session = Session {
            changes: self.0.service.changes.subscribe(),
            watchers: Watchers::new(self.0.stamp),
            api: self.0.clone(),
            tx,
        };
        tokio::spawn(session.run(request.into_inner()));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

struct Session {
    api: Arc<Api>,
    changes: broadcast::Receiver<Arc<Notice>>,
    watchers: Watchers,
    tx: mpsc::Sender<Result<pb::WatchResponse, Status>>,
}

/// Whether the session goes on.
enum Flow {
    Continue,
    Stop,
}

impl Session {
    async fn run(mut self, mut requests: Streaming<pb::WatchRequest>) {
        let period = self.api.progress_notify_interval;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if let Flow::Stop = self.catch_up().await {
                return;
            }
            self.watchers.term = self.api.service.raft.metrics().borrow().current_term;
            let flow = tokio::select! {
                request = requests.next() => match request {
                    Some(Ok(request)) => self.on_request(request).await,
                    Some(Err(status)) => {
                        let _ = self.tx.send(Err(status)).await;
                        Flow::Stop
                    }
                    // The client closed its side of the stream.
                    None => Flow::Stop,
                },
                notice = self.changes.recv() => self.on_notice(notice).await,
                _ = ticks.tick() => {
                    let due = self.watchers.tick();
                    self.send_all(due).await
                }
                _ = self.tx.closed() => Flow::Stop,
            };
            if let Flow::Stop = flow {
                return;
            }
        }
    }

    async fn send(&self, response: pb::WatchResponse) -> Flow {
        match self.tx.send(Ok(response)).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop,
        }
    }

    async fn send_all(&self, responses: Vec<pb::WatchResponse>) -> Flow {
        for response in responses {
            if let Flow::Stop = self.send(response).await {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    async fn on_request(&mut self, request: pb::WatchRequest) -> Flow {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => {
                let current = match self.current_revision() {
                    Ok(current) => current,
                    Err(status) => {
                        let _ = self.tx.send(Err(status)).await;
                        return Flow::Stop;
                    }
                };
                let answer = self.watchers.create(create, current);
                self.send(answer).await
            }
            Some(RequestUnion::CancelRequest(cancel)) => {
                match self.watchers.cancel(cancel.watch_id) {
                    Some(answer) => self.send(answer).await,
                    None => Flow::Continue,
                }
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                let answer = self.watchers.progress();
                self.send(answer).await
            }
            // An empty request: etcd ignores it.
            None => Flow::Continue,
        }
    }

    async fn on_notice(
        &mut self,
        notice: Result<Arc<Notice>, broadcast::error::RecvError>,
    ) -> Flow {
        match notice {
            Ok(notice) => match notice.as_ref() {
                Notice::Changes(batches) => {
                    // One notice holds one revision's changes, one batch per stream.
                    let mut revisions: Vec<(i64, Vec<navarch_bus::store::Event>)> = Vec::new();
                    for batch in batches {
                        match revisions.iter_mut().find(|(r, _)| *r == batch.revision) {
                            Some((_, events)) => events.extend(batch.events.iter().cloned()),
                            None => revisions.push((batch.revision, batch.events.clone())),
                        }
                    }
                    revisions.sort_by_key(|(revision, _)| *revision);
                    for (revision, events) in revisions {
                        let out = self.watchers.on_revision(revision, &events);
                        if let Flow::Stop = self.send_all(out).await {
                            return Flow::Stop;
                        }
                    }
                    Flow::Continue
                }
                Notice::Reset { .. } => {
                    self.watchers.unsync_all();
                    Flow::Continue
                }
            },
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "etcd watch session lagged; rereading history");
                self.watchers.unsync_all();
                Flow::Continue
            }
            Err(broadcast::error::RecvError::Closed) => {
                let _ = self
                    .tx
                    .send(Err(Status::unavailable("etcdserver: server stopped")))
                    .await;
                Flow::Stop
            }
        }
    }

    /// Brings every unsynced watcher up to the member's current revision from history.
    async fn catch_up(&mut self) -> Flow {
        while let Some((id, watcher)) = self.watchers.unsynced() {
            let request = HistoryRequest {
                key: watcher.key.clone(),
                range_end: watcher.range_end.clone(),
                start_revision: watcher.next,
                limit: 0,
            };
            let answer = match self.history(request).await {
                Ok(history) => {
                    let done = !history.more;
                    let upto = match history.batches.last() {
                        Some(last) if history.more => last.revision,
                        _ => history.header.revision,
                    };
                    self.watchers.caught_up(id, history.batches, upto, done)
                }
                Err(StoreError::Compacted {
                    compact_revision, ..
                }) => self.watchers.compacted(id, compact_revision),
                Err(e) => self.watchers.fail(id, format!("etcdserver: {e}")),
            };
            if let Some(answer) = answer {
                if let Flow::Stop = self.send(answer).await {
                    return Flow::Stop;
                }
            }
        }
        Flow::Continue
    }

    /// Reads history from this member's own state (as etcd serves watches from its local store).
    async fn history(&self, request: HistoryRequest) -> Result<HistoryResponse, StoreError> {
        let (storage, limits) = (self.api.service.storage.clone(), self.api.service.limits);
        tokio::task::spawn_blocking(move || mvcc::history(&storage.reader(), &request, &limits))
            .await
            .map_err(|e| StoreError::Internal(format!("history read failed: {e}")))?
            .map_err(StoreError::from)
    }

    fn current_revision(&self) -> Result<i64, Status> {
        self.api
            .service
            .storage
            .reader()
            .revisions()
            .map(|r| r.current)
            .map_err(|e| Status::internal(format!("etcdserver: {e}")))
    }
}
