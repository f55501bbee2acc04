//! Keeps what authorization reads — Roles, RoleBindings, ClusterRoles, ClusterRoleBindings and ServiceAccounts —
//! in memory, fed by one store watch per kind (list, then watch from the list's revision, relist when the watch
//! ends), so that authorizing a request costs no store round trip. Like kube-apiserver's informers it lags the
//! store by the time a change takes to arrive: a RoleBinding is in force a few milliseconds after its write
//! returns.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use navarch_bus::api::objects::WatchType;
use navarch_bus::api::{resource, ApiError, Objects, Reason, ResourceInfo};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::rbac::Policy;

/// The kinds the cache follows, in the order of [`Kinds`]'s fields.
const KINDS: [(&str, &str); 5] = [
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("v1", "ServiceAccount"),
];
const SERVICE_ACCOUNTS: usize = 4;

/// How long a request waits for the cache's first complete view before 503.
pub const SYNC_WAIT: Duration = Duration::from_secs(5);
/// Pause before relisting a kind after its watch failed.
const RELIST_PAUSE: Duration = Duration::from_secs(1);

/// What authorization reads, as of one moment.
pub struct Snapshot {
    /// The RBAC policy.
    pub policy: Policy,
    /// Service accounts' uids by (namespace, name): a service-account token dies with its account.
    pub service_accounts: HashMap<(String, String), String>,
    /// Whether every kind has been listed at least once; before that the snapshot is incomplete.
    pub synced: bool,
}

impl Snapshot {
    fn empty() -> Self {
        Self {
            policy: Policy::new(Vec::new(), Vec::new(), Vec::new(), Vec::new()),
            service_accounts: HashMap::new(),
            synced: false,
        }
    }
}

/// The cache: a handle to the latest snapshot. Cheap to clone.
#[derive(Clone)]
pub struct AuthCache {
    latest: watch::Receiver<Arc<Snapshot>>,
}

/// One change to one kind's objects, from its watch task to the task that builds snapshots.
enum Update {
    /// The kind's complete set of objects (after a list).
    Reset(usize, Vec<Value>),
    /// An object was added or changed.
    Put(usize, Value),
    /// An object was deleted.
    Delete(usize, Value),
}

impl AuthCache {
    /// Starts following the store through `objects`; stops when `shutdown` turns true.
    pub fn start(objects: Objects, shutdown: watch::Receiver<bool>) -> Self {
        let (publish, latest) = watch::channel(Arc::new(Snapshot::empty()));
        let (updates, receive) = mpsc::channel(1024);
        for (index, (api_version, kind)) in KINDS.iter().enumerate() {
            let Some(info) = resource::by_kind(api_version, kind) else {
                tracing::error!(
                    kind,
                    "kind missing from the registry; authorization cannot see it"
                );
                continue;
            };
            tokio::spawn(follow(
                objects.clone(),
                info,
                index,
                updates.clone(),
                shutdown.clone(),
            ));
        }
        tokio::spawn(build(receive, publish));
        Self { latest }
    }

    /// The latest snapshot, waiting up to [`SYNC_WAIT`] for the first complete one; 503 ServiceUnavailable when
    /// the cache has not synced in that time (the store is unreachable).
    pub async fn ready(&self) -> Result<Arc<Snapshot>, ApiError> {
        let mut latest = self.latest.clone();
        let ready = match tokio::time::timeout(SYNC_WAIT, latest.wait_for(|s| s.synced)).await {
            Ok(Ok(snapshot)) => Some(snapshot.clone()),
            _ => None,
        };
        ready.ok_or_else(|| {
            ApiError::new(
                Reason::ServiceUnavailable,
                "the gateway cannot authorize requests yet: the store has not answered",
            )
        })
    }

    /// Whether the cache holds a complete view (for `/readyz`).
    pub fn is_synced(&self) -> bool {
        self.latest.borrow().synced
    }
}

/// Lists and watches one kind forever, sending what changes.
async fn follow(
    objects: Objects,
    info: &'static ResourceInfo,
    index: usize,
    updates: mpsc::Sender<Update>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let run = async {
            let (items, revision) = objects.list(info, None).await?;
            if updates.send(Update::Reset(index, items)).await.is_err() {
                return Ok(());
            }
            let mut watch = objects.watch(info, None, revision).await?;
            while let Some(event) = watch.next().await {
                let event = event?;
                let update = match event.kind {
                    WatchType::Added | WatchType::Modified => Update::Put(index, event.object),
                    WatchType::Deleted => Update::Delete(index, event.object),
                    WatchType::Bookmark => continue,
                };
                if updates.send(update).await.is_err() {
                    return Ok(());
                }
            }
            Ok::<(), navarch_bus::api::ApiError>(())
        };
        tokio::select! {
            result = run => {
                if let Err(e) = result {
                    tracing::debug!(kind = info.kind, error = %e, "authorization cache lost its watch; relisting");
                }
            }
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if updates.is_closed() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(RELIST_PAUSE) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// `namespace/name` of an object.
fn key_of(object: &Value) -> String {
    let m = &object["metadata"];
    format!(
        "{}/{}",
        m["namespace"].as_str().unwrap_or_default(),
        m["name"].as_str().unwrap_or_default()
    )
}

/// Applies updates and publishes a snapshot after each batch (updates that arrive together make one rebuild).
async fn build(mut receive: mpsc::Receiver<Update>, publish: watch::Sender<Arc<Snapshot>>) {
    let mut kinds: Vec<HashMap<String, Value>> = vec![HashMap::new(); KINDS.len()];
    let mut listed = [false; KINDS.len()];
    while let Some(first) = receive.recv().await {
        let mut next = Some(first);
        while let Some(update) = next {
            match update {
                Update::Reset(i, items) => {
                    kinds[i] = items.into_iter().map(|o| (key_of(&o), o)).collect();
                    listed[i] = true;
                }
                Update::Put(i, object) => {
                    kinds[i].insert(key_of(&object), object);
                }
                Update::Delete(i, object) => {
                    kinds[i].remove(&key_of(&object));
                }
            }
            next = receive.try_recv().ok();
        }
        let snapshot = snapshot_of(&kinds, listed.iter().all(|l| *l));
        if publish.send(Arc::new(snapshot)).is_err() {
            return;
        }
    }
}

fn typed<K: serde::de::DeserializeOwned>(objects: &HashMap<String, Value>) -> Vec<K> {
    objects
        .values()
        .filter_map(|o| match serde_json::from_value(o.clone()) {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::warn!(object = %key_of(o), error = %e, "RBAC object that does not parse; ignored");
                None
            }
        })
        .collect()
}

fn snapshot_of(kinds: &[HashMap<String, Value>], synced: bool) -> Snapshot {
    let policy = Policy::new(
        typed::<ClusterRole>(&kinds[0]),
        typed::<ClusterRoleBinding>(&kinds[1]),
        typed::<Role>(&kinds[2]),
        typed::<RoleBinding>(&kinds[3]),
    );
    let service_accounts = kinds[SERVICE_ACCOUNTS]
        .values()
        .filter_map(|o| {
            let m = &o["metadata"];
            Some((
                (
                    m["namespace"].as_str()?.to_string(),
                    m["name"].as_str()?.to_string(),
                ),
                m["uid"].as_str()?.to_string(),
            ))
        })
        .collect();
    Snapshot {
        policy,
        service_accounts,
        synced,
    }
}
