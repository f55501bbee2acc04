//! [`Watchers`]: the watchers of one gRPC watch stream as a pure state machine: creation and cancellation with
//! etcd's watch ids, which revisions each watcher still owes, what a change or a history page turns into, and
//! progress. No I/O: the session feeds it and sends what it returns.
//!
//! Each watcher owes every revision from its `next` on. A *synced* watcher follows the member's live change stream;
//! an unsynced one first reads history from `next` (after creation at a past revision, or when the change stream
//! lagged or the state was replaced by a snapshot). Every revision the session sees advances every synced
//! watcher, matching or not, so `next - 1` is always a revision up to which the watcher has everything.

use std::collections::BTreeMap;

use navarch_bus::store::{in_range, ChangeBatch, Event, EventKind};

use super::super::convert::{self, Stamp};
use super::super::proto::etcdserverpb::{self as pb, watch_create_request::FilterType};

/// Why etcd refuses to create a watcher (the `cancel_reason` of its answer).
const EMPTY_RANGE: &str = "mvcc: watcher range is empty";
const DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
const NEGATIVE_START: &str = "mvcc: start revision must not be negative";

/// One watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watcher {
    /// First key.
    pub key: Vec<u8>,
    /// End of the range (protocol rules: empty is one key, `[0]` every key from `key` on).
    pub range_end: Vec<u8>,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
    /// The first revision not yet delivered.
    pub next: i64,
    /// Whether the watcher follows the live change stream.
    pub synced: bool,
    /// Whether nothing was sent to it since the last progress tick.
    quiet: bool,
}

/// The watchers of one stream.
#[derive(Debug)]
pub struct Watchers {
    watchers: BTreeMap<i64, Watcher>,
    /// etcd numbers a stream's watchers from 0, skipping ids in use.
    next_id: i64,
    /// The latest revision this stream knows the member applied.
    seen: i64,
    stamp: Stamp,
    /// The member's Raft term, for headers; the session keeps it current.
    pub term: u64,
}

impl Watchers {
    /// No watchers yet.
    pub fn new(stamp: Stamp) -> Self {
        Self {
            watchers: BTreeMap::new(),
            next_id: 0,
            seen: 0,
            stamp,
            term: 0,
        }
    }

    fn response(&self, watch_id: i64, revision: i64) -> pb::WatchResponse {
        pb::WatchResponse {
            header: self.stamp.at(revision, self.term),
            watch_id,
            ..Default::default()
        }
    }

    /// Notes that the member has applied `revision`.
    pub fn saw(&mut self, revision: i64) {
        self.seen = self.seen.max(revision);
    }

    /// Creates a watcher while the member is at revision `current`; the answer to send (created, or refused as
    /// etcd refuses: created and canceled at once, with the reason).
    pub fn create(&mut self, request: pb::WatchCreateRequest, current: i64) -> pb::WatchResponse {
        self.saw(current);
        let refuse = |reason: &str| pb::WatchResponse {
            created: true,
            canceled: true,
            cancel_reason: reason.into(),
            ..self.response(-1, current)
        };
        let end = &request.range_end;
        if !end.is_empty() && end.as_slice() != [0] && end.as_slice() <= request.key.as_slice() {
            return refuse(EMPTY_RANGE);
        }
        if request.start_revision < 0 {
            return refuse(NEGATIVE_START);
        }
        let id = if request.watch_id != 0 {
            if self.watchers.contains_key(&request.watch_id) {
                return refuse(DUPLICATE_ID);
            }
            request.watch_id
        } else {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id = self.next_id.saturating_add(1);
            }
            self.next_id
        };
        let filters = request.filters();
        let (no_put, no_delete) = filters.fold((false, false), |(put, delete), f| match f {
            FilterType::Noput => (true, delete),
            FilterType::Nodelete => (put, true),
        });
        let from_now = request.start_revision == 0;
        self.watchers.insert(
            id,
            Watcher {
                key: request.key,
                range_end: request.range_end,
                prev_kv: request.prev_kv,
                no_put,
                no_delete,
                progress_notify: request.progress_notify,
                next: if from_now {
                    current.saturating_add(1)
                } else {
                    request.start_revision
                },
                synced: from_now,
                quiet: true,
            },
        );
        pb::WatchResponse {
            created: true,
            ..self.response(id, current)
        }
    }

    /// Cancels a watcher at the client's request; the answer, or nothing for an unknown id (as etcd).
    pub fn cancel(&mut self, id: i64) -> Option<pb::WatchResponse> {
        self.watchers.remove(&id)?;
        Some(pb::WatchResponse {
            canceled: true,
            ..self.response(id, self.seen)
        })
    }

    /// Drops a watcher whose history is gone: etcd's answer names the compaction point and cancels the watcher.
    pub fn compacted(&mut self, id: i64, compact_revision: i64) -> Option<pb::WatchResponse> {
        self.watchers.remove(&id)?;
        Some(pb::WatchResponse {
            canceled: true,
            compact_revision,
            cancel_reason: "etcdserver: mvcc: required revision has been compacted".into(),
            ..self.response(id, self.seen)
        })
    }

    /// Drops a watcher that cannot go on (its history could not be read).
    pub fn fail(&mut self, id: i64, reason: String) -> Option<pb::WatchResponse> {
        self.watchers.remove(&id)?;
        Some(pb::WatchResponse {
            canceled: true,
            cancel_reason: reason,
            ..self.response(id, self.seen)
        })
    }

    /// Every watcher must reread history from its `next` (the change stream lagged, or a snapshot replaced the
    /// state).
    pub fn unsync_all(&mut self) {
        for watcher in self.watchers.values_mut() {
            watcher.synced = false;
        }
    }

    /// A watcher that must read history first, if any: its id and the revision to read from.
    pub fn unsynced(&self) -> Option<(i64, &Watcher)> {
        self.watchers
            .iter()
            .find(|(_, w)| !w.synced)
            .map(|(id, w)| (*id, w))
    }

    /// One page of history for watcher `id`: the batches read from its `next` on, complete up to `upto`; `done`
    /// when the page reaches the member's current revision. The response to send, if anything matched.
    pub fn caught_up(
        &mut self,
        id: i64,
        batches: Vec<ChangeBatch>,
        upto: i64,
        done: bool,
    ) -> Option<pb::WatchResponse> {
        self.saw(upto);
        let watcher = self.watchers.get_mut(&id)?;
        let mut events = Vec::new();
        for batch in batches {
            if batch.revision >= watcher.next {
                events.extend(watcher.convert(batch.events));
            }
        }
        watcher.next = watcher.next.max(upto.saturating_add(1));
        watcher.synced = done;
        if events.is_empty() {
            return None;
        }
        watcher.quiet = false;
        Some(pb::WatchResponse {
            events,
            ..self.response(id, upto)
        })
    }

    /// The changes of one revision from the live change stream: what each synced watcher gets.
    pub fn on_revision(&mut self, revision: i64, events: &[Event]) -> Vec<pb::WatchResponse> {
        self.saw(revision);
        let mut out = Vec::new();
        for (id, watcher) in self.watchers.iter_mut() {
            if !watcher.synced || revision < watcher.next {
                continue;
            }
            watcher.next = revision.saturating_add(1);
            let matched = watcher.convert(events.iter().cloned());
            if matched.is_empty() {
                continue;
            }
            watcher.quiet = false;
            out.push(pb::WatchResponse {
                header: self.stamp.at(revision, self.term),
                watch_id: *id,
                events: matched,
                ..Default::default()
            });
        }
        out
    }

    /// The revision up to which every watcher of the stream has had every change: the answer to a progress
    /// request (with no watchers, the member's revision).
    pub fn progress(&self) -> pb::WatchResponse {
        let revision = self
            .watchers
            .values()
            .map(|w| w.next.saturating_sub(1))
            .min()
            .map_or(self.seen, |r| r.min(self.seen));
        // Watch id -1: the answer belongs to no one watcher; clients pass it to all of them.
        self.response(-1, revision)
    }

    /// A progress tick: a notification for each synced watcher that asked for them and got nothing since the
    /// last tick (etcd's rule).
    pub fn tick(&mut self) -> Vec<pb::WatchResponse> {
        let seen = self.seen;
        let mut due = Vec::new();
        for (id, watcher) in self.watchers.iter_mut() {
            if watcher.progress_notify && watcher.synced && watcher.quiet {
                due.push((*id, watcher.next.saturating_sub(1).min(seen)));
            }
            watcher.quiet = true;
        }
        due.into_iter()
            .map(|(id, revision)| self.response(id, revision))
            .collect()
    }
}

impl Watcher {
    /// The events of `events` this watcher wants, as etcd sends them.
    fn convert(
        &self,
        events: impl IntoIterator<Item = Event>,
    ) -> Vec<super::super::proto::mvccpb::Event> {
        events
            .into_iter()
            .filter(|e| in_range(&e.kv.key, &self.key, &self.range_end))
            .filter(|e| match e.kind {
                EventKind::Put => !self.no_put,
                EventKind::Delete => !self.no_delete,
            })
            .map(|e| convert::event(e, self.prev_kv))
            .collect()
    }
}

#[cfg(test)]
#[path = "watchers_tests.rs"]
mod tests;
