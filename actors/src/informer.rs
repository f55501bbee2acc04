//! Watches one resource kind and keeps a cache of it: lists, watches from the list's revision, lists again after
//! 410 Expired or errors (with back-off), and tells an actor what changed.
//!
//! The cache is shared (`Cache` is a cheap handle): the informer's task writes it, the actor reads it when it
//! decides. A [`Change`] arrives after the cache already holds it, so an actor that reacts to a change by reading
//! the cache sees at least that state. [`Cache::revision`] says up to which store revision the cache is complete,
//! which lets a controller wait until its own writes are visible before deciding again.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::Recipient;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use navarch_bus::api::{resource, ObjectEvent, Objects, Reason, ResourceInfo, WatchType};
use serde::de::DeserializeOwned;

/// Namespace and name of an object (namespace empty for cluster-scoped kinds).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ObjectKey {
    /// The namespace, or "" for cluster-scoped objects.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `namespace`/`name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of an object, from its metadata.
    pub fn of(meta: &ObjectMeta) -> Self {
        Self::new(
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    }

    /// The namespace as the API client wants it (None for cluster-scoped objects).
    pub fn namespace(&self) -> Option<&str> {
        (!self.namespace.is_empty()).then_some(self.namespace.as_str())
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// What a cache can hold: anything that knows its key. Every k8s-openapi type does; the garbage collector caches
/// only the metadata of objects of any kind.
pub trait Keyed {
    /// The object's namespace and name.
    fn key(&self) -> ObjectKey;
}

impl<K: k8s_openapi::Metadata<Ty = ObjectMeta>> Keyed for K {
    fn key(&self) -> ObjectKey {
        ObjectKey::of(self.metadata())
    }
}

/// What changed in a cache, as delivered to the actor that owns the informer.
#[derive(Debug)]
pub enum Change<K> {
    /// The cache was (re)filled from a list: anything may have changed, including deletions that no event reported.
    Synced,
    /// An object was added or modified (the new state).
    Applied(Arc<K>),
    /// An object was deleted, or stopped matching the informer's filter (its last known state).
    Deleted(Arc<K>),
}

impl<K: 'static> actix::Message for Change<K> {
    type Result = ();
}

struct CacheState<K> {
    objects: BTreeMap<ObjectKey, Arc<K>>,
    revision: i64,
    synced: bool,
}

/// The objects an informer has seen, by key. Cheap to clone; clones share the cache.
pub struct Cache<K> {
    state: Arc<RwLock<CacheState<K>>>,
}

impl<K> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
        }
    }
}

impl<K> Default for Cache<K> {
    fn default() -> Self {
        Self {
            state: Arc::new(RwLock::new(CacheState {
                objects: BTreeMap::new(),
                revision: 0,
                synced: false,
            })),
        }
    }
}

impl<K: Keyed> Cache<K> {
    /// An empty cache that has never been filled.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, CacheState<K>> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, CacheState<K>> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// One object.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.read().objects.get(key).cloned()
    }

    /// Every object, in key order.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.read().objects.values().cloned().collect()
    }

    /// Every object in `namespace`, in name order.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let from = ObjectKey::new(namespace, "");
        self.read()
            .objects
            .range(from..)
            .take_while(|(k, _)| k.namespace == namespace)
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// The store revision up to which the cache holds every change (0 before the first list).
    pub fn revision(&self) -> i64 {
        self.read().revision
    }

    /// Whether the cache has been filled from a list at least once.
    pub fn is_synced(&self) -> bool {
        self.read().synced
    }

    /// Replaces the whole content, as of `revision`.
    pub fn replace(&self, objects: Vec<K>, revision: i64) {
        let mut state = self.write();
        state.objects = objects
            .into_iter()
            .map(|o| (o.key(), Arc::new(o)))
            .collect();
        state.revision = revision;
        state.synced = true;
    }

    /// Stores one object's new state seen at `revision`.
    pub fn apply(&self, object: K, revision: i64) -> Arc<K> {
        let object = Arc::new(object);
        let mut state = self.write();
        state.objects.insert(object.key(), object.clone());
        state.revision = state.revision.max(revision);
        object
    }

    /// Forgets one object at `revision`; returns its last state if it was known.
    pub fn remove(&self, key: &ObjectKey, revision: i64) -> Option<Arc<K>> {
        let mut state = self.write();
        state.revision = state.revision.max(revision);
        state.objects.remove(key)
    }

    /// Records that nothing changed up to `revision`.
    pub fn advance(&self, revision: i64) {
        let mut state = self.write();
        state.revision = state.revision.max(revision);
    }
}

/// Which objects an informer keeps (e.g. a node agent keeps only the pods bound to its node).
pub type Filter<K> = Arc<dyn Fn(&K) -> bool + Send + Sync>;

/// Exponential back-off between failed attempts: `initial`, doubling, at most `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A back-off starting at `initial` and capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay before the next attempt; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// A running informer. Dropping it stops its task.
pub struct Informer<K> {
    cache: Cache<K>,
    task: tokio::task::JoinHandle<()>,
}

impl<K> Drop for Informer<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<K> Informer<K>
where
    K: k8s_openapi::Resource
        + k8s_openapi::Metadata<Ty = ObjectMeta>
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    /// Starts listing and watching every object of kind `K` into `cache`, telling `to` about each change. Must be
    /// called inside a tokio runtime. The task ends when `to`'s actor is gone or the informer is dropped.
    pub fn start(
        objects: Objects,
        cache: Cache<K>,
        filter: Option<Filter<K>>,
        to: Recipient<Change<K>>,
    ) -> Self {
        let Some(info) = resource::by_kind(K::API_VERSION, K::KIND) else {
            tracing::error!(
                kind = K::KIND,
                "the API does not serve this kind; informer not started"
            );
            return Self {
                cache,
                task: tokio::spawn(async {}),
            };
        };
        Self::start_kind(info, objects, cache, filter, to)
    }
}

impl<K> Informer<K>
where
    K: Keyed + DeserializeOwned + Send + Sync + 'static,
{
    /// Starts listing and watching every object of the kind `info` into `cache`, decoded as `K` (which need not be
    /// the kind's own type: any shape its JSON decodes into), telling `to` about each change. Must be called inside
    /// a tokio runtime.
    pub fn start_kind(
        info: &'static ResourceInfo,
        objects: Objects,
        cache: Cache<K>,
        filter: Option<Filter<K>>,
        to: Recipient<Change<K>>,
    ) -> Self {
        let task = tokio::spawn(run(info, objects, cache.clone(), filter, to));
        Self { cache, task }
    }

    /// The cache this informer fills.
    pub fn cache(&self) -> &Cache<K> {
        &self.cache
    }
}

/// First retry after a failed list or watch; doubles up to [`RETRY_MAX`] (client-go's reflector backs off from
/// 800 ms to 30 s; a shorter start suits an embedded store that is still starting).
const RETRY_INITIAL: Duration = Duration::from_millis(200);
/// Longest wait between retries.
const RETRY_MAX: Duration = Duration::from_secs(5);

async fn run<K>(
    info: &'static ResourceInfo,
    objects: Objects,
    cache: Cache<K>,
    filter: Option<Filter<K>>,
    to: Recipient<Change<K>>,
) where
    K: Keyed + DeserializeOwned + Send + Sync + 'static,
{
    let keep = |o: &K| filter.as_ref().is_none_or(|f| f(o));
    let mut backoff = Backoff::new(RETRY_INITIAL, RETRY_MAX);
    'list: loop {
        let (items, mut revision) = match objects.list(info, None).await {
            Ok(listed) => listed,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(kind = info.kind, error = %e, ?delay, "list failed; retrying");
                tokio::time::sleep(delay).await;
                continue 'list;
            }
        };
        let decoded = items
            .into_iter()
            .filter_map(|o| decode::<K>(o).ok())
            .filter(|o| keep(o))
            .collect();
        cache.replace(decoded, revision);
        backoff.reset();
        if to.send(Change::Synced).await.is_err() {
            return;
        }
        loop {
            let mut watch = match objects.watch(info, None, revision).await {
                Ok(w) => w,
                Err(e) if e.reason == Reason::Expired => continue 'list,
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(kind = info.kind, error = %e, ?delay, "watch failed; retrying");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            loop {
                let Some(event) = watch.next().await else {
                    // The watch stopped without an error: watch again, but not in a tight loop.
                    tokio::time::sleep(backoff.next_delay()).await;
                    break;
                };
                match event {
                    Ok(event) => {
                        backoff.reset();
                        revision = revision.max(event.revision);
                        let Some(change) = apply(&cache, event, &keep) else {
                            continue;
                        };
                        if to.send(change).await.is_err() {
                            return;
                        }
                    }
                    Err(e) if e.reason == Reason::Expired => {
                        tracing::info!(kind = info.kind, "watch expired; listing again");
                        continue 'list;
                    }
                    Err(e) => {
                        let delay = backoff.next_delay();
                        tracing::warn!(kind = info.kind, error = %e, ?delay, "watch ended; watching again");
                        tokio::time::sleep(delay).await;
                        break;
                    }
                }
            }
        }
    }
}

fn decode<K: DeserializeOwned>(object: serde_json::Value) -> Result<K, serde_json::Error> {
    serde_json::from_value(object).inspect_err(|e| {
        tracing::warn!(error = %e, "object does not decode; ignored");
    })
}

/// Applies one watch event to the cache; the change to report, if any.
fn apply<K>(cache: &Cache<K>, event: ObjectEvent, keep: &dyn Fn(&K) -> bool) -> Option<Change<K>>
where
    K: Keyed + DeserializeOwned,
{
    let key = ObjectKey::new(
        navarch_bus::api::meta::namespace(&event.object).unwrap_or_default(),
        navarch_bus::api::meta::name(&event.object).unwrap_or_default(),
    );
    match event.kind {
        WatchType::Bookmark => {
            cache.advance(event.revision);
            None
        }
        WatchType::Deleted => cache.remove(&key, event.revision).map(Change::Deleted),
        WatchType::Added | WatchType::Modified => match decode::<K>(event.object) {
            Ok(o) if keep(&o) => Some(Change::Applied(cache.apply(o, event.revision))),
            // An object that no longer decodes or no longer matches leaves the cache as if deleted.
            _ => cache.remove(&key, event.revision).map(Change::Deleted),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn pod_event(kind: WatchType, name: &str, node: &str, revision: i64) -> ObjectEvent {
        ObjectEvent {
            previous: None,
            kind,
            object: json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "demo", "resourceVersion": revision.to_string()},
                "spec": {"nodeName": node, "containers": []}}),
            revision,
        }
    }

    fn on_node_a(p: &Pod) -> bool {
        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("a")
    }

    #[test]
    fn events_update_the_cache_and_its_revision() {
        let cache = Cache::<Pod>::new();
        cache.replace(vec![], 10);
        assert!(cache.is_synced());
        let change = apply(
            &cache,
            pod_event(WatchType::Added, "p", "a", 11),
            &on_node_a,
        );
        assert!(matches!(change, Some(Change::Applied(_))));
        assert_eq!(cache.revision(), 11);
        assert!(cache.get(&ObjectKey::new("demo", "p")).is_some());
        assert_eq!(cache.list_namespace("demo").len(), 1);
        assert!(cache.list_namespace("other").is_empty());

        // An object that stops matching the filter leaves the cache as a deletion.
        let change = apply(
            &cache,
            pod_event(WatchType::Modified, "p", "b", 12),
            &on_node_a,
        );
        assert!(matches!(change, Some(Change::Deleted(_))));
        assert!(cache.list().is_empty());

        // A deletion of an unknown object reports nothing but still advances the revision.
        assert!(apply(
            &cache,
            pod_event(WatchType::Deleted, "q", "a", 13),
            &on_node_a
        )
        .is_none());
        assert_eq!(cache.revision(), 13);
        let bookmark = ObjectEvent {
            previous: None,
            kind: WatchType::Bookmark,
            object: json!({"metadata": {"resourceVersion": "20"}}),
            revision: 20,
        };
        assert!(apply(&cache, bookmark, &on_node_a).is_none());
        assert_eq!(cache.revision(), 20);
    }

    #[test]
    fn undecodable_objects_are_ignored_not_fatal() {
        let cache = Cache::<Pod>::new();
        let mut event = pod_event(WatchType::Added, "p", "a", 5);
        event.object["spec"]["containers"] = json!("not a list");
        assert!(apply(&cache, event, &|_: &Pod| true).is_none());
        assert!(cache.list().is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }
}
