//! The watch cache: one store watch per kind, shared by every watcher of that kind in this gateway, as
//! kube-apiserver's cacher does. Each kind's cache starts with the first watch of it and keeps the current objects,
//! the most recent events (to resume watches from a recent resourceVersion without the store) and a broadcast of
//! new events. So a thousand `kubectl get -w` or informers cost the store one watch, not a thousand.
//!
//! A watcher starts from a snapshot (no resourceVersion, or `0`) or from a revision the cache still holds; an older
//! revision falls back to a store watch of its own (which answers 410 Expired when the store compacted it). A
//! watcher too slow to keep up with the broadcast is ended, as kube-apiserver ends it; its client re-watches from
//! the last resourceVersion it saw.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use bytes::Bytes;
use navarch_bus::api::{meta, ApiError, ObjectEvent, Objects, Page, ResourceInfo, WatchType};
use navarch_bus::store::{prefix_end, HistoryRequest};
use serde_json::Value;
use tokio::sync::{broadcast, watch};

/// How many recent events each kind keeps for watches resuming from a resourceVersion.
pub const HISTORY: usize = 1000;
/// Events a watcher may fall behind the newest before it is ended.
const BROADCAST: usize = 4096;
/// How long a watcher waits for the cache to reach its revision before the cache asks the store.
const PROGRESS_POLL: Duration = Duration::from_millis(50);
/// Pause before relisting a kind whose store watch ended.
const RELIST_PAUSE: Duration = Duration::from_millis(500);

/// One change as every watcher of the kind sees it, with its JSON line encoded once for all plain watchers.
pub struct Change {
    /// The event.
    pub event: ObjectEvent,
    /// The event's namespace (empty for cluster-scoped kinds).
    pub namespace: String,
    lines: [OnceLock<Bytes>; 4],
}

impl Change {
    fn new(event: ObjectEvent) -> Self {
        let namespace = meta::namespace(&event.object)
            .unwrap_or_default()
            .to_string();
        Self {
            event,
            namespace,
            lines: Default::default(),
        }
    }

    /// The line `encode` makes for this change sent as `kind`, computed once per kind of line.
    pub fn line(&self, kind: WatchType, encode: impl FnOnce() -> Bytes) -> Bytes {
        let slot = match kind {
            WatchType::Added => 0,
            WatchType::Modified => 1,
            WatchType::Deleted => 2,
            WatchType::Bookmark => 3,
        };
        self.lines[slot].get_or_init(encode).clone()
    }
}

/// What the cache of one kind holds.
#[derive(Default)]
struct State {
    /// The objects by store key, as of `revision`.
    objects: BTreeMap<String, Value>,
    /// The revision the cache has seen everything up to.
    revision: i64,
    /// The most recent changes, oldest first.
    history: VecDeque<Arc<Change>>,
    /// Events after this revision are all in `history` (or still to come).
    complete_after: i64,
    /// Whether the first list has been applied.
    ready: bool,
}

/// The cache of one kind.
struct KindCache {
    state: RwLock<State>,
    live: broadcast::Sender<Arc<Change>>,
    /// The latest revision applied, to wait on.
    applied: watch::Sender<i64>,
}

/// Every kind's cache. Cheap to clone.
#[derive(Clone)]
pub struct WatchCache {
    objects: Objects,
    kinds: Arc<Mutex<HashMap<&'static str, Arc<KindCache>>>>,
    shutdown: watch::Receiver<bool>,
}

/// Where a watch asks to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// From a snapshot of the objects: `None` as of the store's current revision (a consistent start), `Some(n)`
    /// as of revision `n` or later (`Some(0)`: any).
    Snapshot(Option<i64>),
    /// From the changes after this revision.
    Revision(i64),
    /// From the changes after the store's current revision.
    Now,
}

/// Where a cached watch starts.
pub enum Start {
    /// A snapshot of the objects (sent as ADDED), the revision it is current at, and the changes after it.
    Snapshot(Vec<Value>, i64, broadcast::Receiver<Arc<Change>>),
    /// The changes after the revision asked for: those buffered, then the live ones.
    Resume(Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>),
    /// The cache does not reach back that far: the caller watches the store itself.
    TooOld,
}

impl WatchCache {
    /// A cache reading through `objects`; each kind's feed stops when `shutdown` turns true.
    pub fn new(objects: Objects, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            objects,
            kinds: Arc::default(),
            shutdown,
        }
    }

    /// How many kinds are being followed (one store watch each).
    pub fn kinds_followed(&self) -> usize {
        self.kinds.lock().map_or(0, |k| k.len())
    }

    fn kind(&self, info: &'static ResourceInfo) -> Arc<KindCache> {
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        kinds
            .entry(info.plural)
            .or_insert_with(|| {
                let (live, _) = broadcast::channel(BROADCAST);
                let cache = Arc::new(KindCache {
                    state: RwLock::new(State::default()),
                    live,
                    applied: watch::channel(0).0,
                });
                tokio::spawn(feed(
                    self.objects.clone(),
                    info,
                    cache.clone(),
                    self.shutdown.clone(),
                ));
                cache
            })
            .clone()
    }

    /// Waits until the kind's cache has seen revision `at` (or `wait` passed: then 504 "Too large resource
    /// version", as kube-apiserver answers). A kind nobody writes gets no events to move its cache forward, so
    /// while waiting the cache asks the store whether the kind changed since; if not, it is current as of the
    /// store's revision (kube-apiserver asks etcd for a progress notification for the same reason).
    async fn caught_up(
        &self,
        info: &'static ResourceInfo,
        cache: &KindCache,
        at: i64,
        wait: Duration,
    ) -> Result<(), ApiError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut applied = cache.applied.subscribe();
        loop {
            let poll = tokio::time::Instant::now() + PROGRESS_POLL;
            // The `Ref` the wait yields must not live across the await below (it is not Send).
            let reached = matches!(
                tokio::time::timeout_at(poll.min(deadline), applied.wait_for(|r| *r >= at)).await,
                Ok(Ok(_))
            );
            if reached {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::too_large_resource_version(
                    at,
                    *cache.applied.borrow(),
                ));
            }
            self.advance(info, cache).await;
        }
    }

    /// Moves the kind's cache to the store's current revision when nothing of the kind changed in between.
    async fn advance(&self, info: &'static ResourceInfo, cache: &KindCache) {
        let from = *cache.applied.borrow();
        if from == 0 {
            return; // not listed yet: the list will bring it up to date
        }
        let prefix = info.prefix(None).into_bytes();
        let request = HistoryRequest {
            range_end: prefix_end(&prefix),
            key: prefix,
            start_revision: from + 1,
            limit: 1,
        };
        let Ok(history) = self.objects.store().history(request).await else {
            return;
        };
        if !history.batches.is_empty() || history.more {
            return; // changes are on their way through the watch
        }
        let mut state = cache.state.write().unwrap_or_else(|e| e.into_inner());
        if !state.ready || state.revision < from {
            return; // relisted meanwhile
        }
        state.revision = state.revision.max(history.header.revision);
        let reached = state.revision;
        drop(state);
        cache.applied.send_if_modified(|r| {
            let moved = reached > *r;
            *r = (*r).max(reached);
            moved
        });
    }

    /// Where a watch of `info` in `namespace` (None: all) starts, `from` a snapshot or a revision. A consistent
    /// snapshot (`From::Snapshot(None)`) first lets the cache catch up with the store's current revision.
    pub async fn start(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        from: From,
        wait: Duration,
    ) -> Result<Start, ApiError> {
        let cache = self.kind(info);
        let (at, from) = match from {
            From::Snapshot(None) => (self.objects.current_revision().await?, from),
            From::Now => {
                let now = self.objects.current_revision().await?;
                (now, From::Revision(now))
            }
            From::Snapshot(Some(n)) | From::Revision(n) => (n.max(1), from),
        };
        self.caught_up(info, &cache, at, wait).await?;
        // Subscribing under the read lock: the feed publishes under the write lock, so nothing falls between the
        // snapshot (or history) and the live stream.
        let state = cache.state.read().unwrap_or_else(|e| e.into_inner());
        let live = cache.live.subscribe();
        let in_scope = |key: &str| match namespace {
            Some(ns) => key.starts_with(&info.prefix(Some(ns))),
            None => true,
        };
        match from {
            From::Snapshot(_) => {
                let objects = state
                    .objects
                    .iter()
                    .filter(|(k, _)| in_scope(k))
                    .map(|(_, o)| o.clone())
                    .collect();
                Ok(Start::Snapshot(objects, state.revision, live))
            }
            From::Revision(n) if n < state.complete_after => Ok(Start::TooOld),
            From::Revision(_) | From::Now => {
                let n = at;
                let changes = state
                    .history
                    .iter()
                    .filter(|c| c.event.revision > n)
                    .filter(|c| namespace.is_none_or(|ns| c.namespace == ns))
                    .cloned()
                    .collect();
                Ok(Start::Resume(changes, live))
            }
        }
    }

    /// One page of the objects of `info` in `namespace` (None: all) that `keep` accepts, from the cache once it has
    /// reached revision `at` (waiting up to `wait`): at most `limit` (0: all) from `start` (relative to the kind's
    /// prefix, as a continue token gives it), with where the next page starts and how many objects follow. The
    /// page's revision is the cache's, so the store can serve the next pages at exactly that revision.
    pub async fn page(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        at: i64,
        (start, limit): (&str, usize),
        mut keep: impl FnMut(&Value) -> bool,
        wait: Duration,
    ) -> Result<Page, ApiError> {
        let cache = self.kind(info);
        self.caught_up(info, &cache, at.max(1), wait).await?;
        let state = cache.state.read().unwrap_or_else(|e| e.into_inner());
        let prefix = info.prefix(namespace);
        let mut in_scope = state
            .objects
            .range(format!("{prefix}{start}")..)
            .take_while(|(k, _)| k.starts_with(&prefix));
        let mut items = Vec::new();
        let mut last = None;
        for (key, object) in in_scope.by_ref() {
            if keep(object) {
                items.push(object.clone());
            }
            last = Some(key);
            if limit > 0 && items.len() >= limit {
                break;
            }
        }
        let remaining = in_scope.count();
        let next = match last {
            // The smallest key after the last one examined, as the store's pages give it.
            Some(key) if remaining > 0 => Some(format!("{}\0", &key[prefix.len()..])),
            _ => None,
        };
        Ok(Page {
            items,
            revision: state.revision,
            next,
            remaining: i64::try_from(remaining).unwrap_or(i64::MAX),
        })
    }

    /// The revision the kind's cache has reached (0 before its first list).
    pub fn revision(&self, info: &'static ResourceInfo) -> i64 {
        *self.kind(info).applied.borrow()
    }
}

/// Follows one kind: list, watch from the list's revision, apply and publish each change; relist when the store
/// watch ends (compaction, store restart), ending every watcher of the kind so they resume from their last
/// resourceVersion.
async fn feed(
    objects: Objects,
    info: &'static ResourceInfo,
    cache: Arc<KindCache>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let run = async {
            let (items, revision) = objects.list(info, None).await?;
            {
                let mut state = cache.state.write().unwrap_or_else(|e| e.into_inner());
                state.objects = items.into_iter().map(|o| (key_of(info, &o), o)).collect();
                state.revision = revision;
                state.history.clear();
                state.complete_after = revision;
                state.ready = true;
            }
            cache.applied.send_replace(revision);
            let mut stream = objects.watch(info, None, revision).await?;
            while let Some(event) = stream.next().await {
                apply(&cache, info, event?);
            }
            Ok::<(), ApiError>(())
        };
        tokio::select! {
            result = run => {
                if let Err(e) = result {
                    tracing::debug!(kind = info.kind, error = %e, "watch cache lost its store watch; relisting");
                }
            }
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        // Watchers fed so far would miss what happens until the relist: a reset marker ends them.
        {
            let mut state = cache.state.write().unwrap_or_else(|e| e.into_inner());
            state.ready = false;
            state.history.clear();
        }
        // New watchers wait for the relist.
        cache.applied.send_replace(0);
        let _ = cache.live.send(Arc::new(Change::new(ObjectEvent {
            kind: WatchType::Bookmark,
            object: Value::Null,
            previous: None,
            revision: -1,
        })));
        tokio::select! {
            _ = tokio::time::sleep(RELIST_PAUSE) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// A change marking the end of the cache's continuity: watchers receiving it end.
pub fn is_reset(change: &Change) -> bool {
    change.event.revision < 0
}

fn key_of(info: &ResourceInfo, object: &Value) -> String {
    info.key(
        meta::namespace(object),
        meta::name(object).unwrap_or_default(),
    )
}

/// Applies one store event to the cache and publishes it.
fn apply(cache: &KindCache, info: &ResourceInfo, event: ObjectEvent) {
    let revision = event.revision;
    let mut state = cache.state.write().unwrap_or_else(|e| e.into_inner());
    match event.kind {
        WatchType::Added | WatchType::Modified => {
            state
                .objects
                .insert(key_of(info, &event.object), event.object.clone());
        }
        WatchType::Deleted => {
            state.objects.remove(&key_of(info, &event.object));
        }
        WatchType::Bookmark => {}
    }
    state.revision = state.revision.max(revision);
    let change = Arc::new(Change::new(event));
    if change.event.kind != WatchType::Bookmark {
        state.history.push_back(change.clone());
        while state.history.len() > HISTORY {
            if let Some(old) = state.history.pop_front() {
                state.complete_after = old.event.revision;
            }
        }
    }
    // No receivers is fine: nobody watches right now.
    let _ = cache.live.send(change);
    let reached = state.revision;
    drop(state);
    cache.applied.send_replace(reached);
}
