//! The ReplicaSet controller: keeps each ReplicaSet's pods at its replica count, adopting orphans its selector
//! matches and releasing pods it no longer matches, and reports its status. [`reconcile`] decides;
//! [`ReplicaSetController`] watches and carries out (pods are created in slow-start batches, [`slow_start`]).

mod actor;
pub mod pods;
pub mod status;
mod writes;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::chrono::{DateTime, Utc};
use navarch_bus::api::selector_matches as matches;

pub use actor::ReplicaSetController;

use crate::informer::ObjectKey;

/// Most pods one reconcile creates or deletes (Kubernetes' `burstReplicas`); the next reconcile, once the cache
/// shows these writes, continues.
pub const BURST: usize = 500;

/// One thing to do for a ReplicaSet.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Make this orphan pod the ReplicaSet's (controller owner reference), if it is still an orphan that matches.
    AdoptPod {
        /// The pod.
        key: ObjectKey,
        /// Its uid.
        uid: String,
    },
    /// Drop the ReplicaSet's owner reference from this pod, which its selector no longer matches.
    ReleasePod {
        /// The pod.
        key: ObjectKey,
        /// Its uid.
        uid: String,
    },
    /// Create `count` pods like `pod` (it has `generateName`), in slow-start batches.
    CreatePods {
        /// How many.
        count: usize,
        /// The pod to create, from the template.
        pod: Box<Pod>,
    },
    /// Delete this pod (gracefully: its node agent stops it first), if it still has this uid.
    DeletePod {
        /// The pod.
        key: ObjectKey,
        /// Its uid.
        uid: String,
    },
    /// Write the ReplicaSet's status (computed as if every pod write succeeds; see [`status::with_failure`]).
    UpdateStatus(Box<ReplicaSetStatus>),
}

/// The decisions for one ReplicaSet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// What to do, in order: adoptions and releases, creates or deletes, then the status.
    pub actions: Vec<Action>,
    /// Look again after this long even if nothing changes (a pod becoming available after `minReadySeconds`).
    pub requeue_after: Option<Duration>,
}

fn key_uid(pod: &Pod) -> (ObjectKey, String) {
    (
        ObjectKey::of(&pod.metadata),
        pod.metadata.uid.clone().unwrap_or_default(),
    )
}

/// Which of `pods` (any pods of the namespace) `rs` controls once its claims are carried out, and the claims
/// (Kubernetes' `ClaimPods` over active pods): an orphan it selects is adopted unless the ReplicaSet is being
/// deleted; a pod it controls but no longer selects is released (left alone while the ReplicaSet is being deleted).
pub fn claim<'a>(rs: &ReplicaSet, pods: &[&'a Pod]) -> (Vec<&'a Pod>, Vec<Action>) {
    let (Some(uid), Some(spec)) = (rs.metadata.uid.as_deref(), &rs.spec) else {
        return (vec![], vec![]);
    };
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let mut claimed = Vec::new();
    let mut actions = Vec::new();
    for pod in pods.iter().copied().filter(|p| pods::is_active(p)) {
        let selected = matches(&spec.selector, &pods::labels(&pod.metadata));
        match pods::controller_of(&pod.metadata) {
            Some(owner) if owner.uid == uid => {
                if selected {
                    claimed.push(pod);
                } else if !deleting {
                    let (key, uid) = key_uid(pod);
                    actions.push(Action::ReleasePod { key, uid });
                }
            }
            Some(_) => {}
            None if selected && !deleting => {
                let (key, uid) = key_uid(pod);
                actions.push(Action::AdoptPod { key, uid });
                claimed.push(pod);
            }
            None => {}
        }
    }
    (claimed, actions)
}

/// The sizes of Kubernetes' slow-start batches for `count` creations: 1, 2, 4, ... until `count` is reached. The
/// actor stops after a batch with a failure, so a quota or a refused template costs one failed call, not `count`.
pub fn slow_start(count: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut left = count;
    let mut size = 1;
    while left > 0 {
        let batch = size.min(left);
        batches.push(batch);
        left -= batch;
        size = size.saturating_mul(2);
    }
    batches
}

/// What `rs` needs given `pods` (any pods of its namespace) at `now`.
pub fn reconcile(rs: &ReplicaSet, pods: &[&Pod], now: DateTime<Utc>) -> Plan {
    let Some(spec) = &rs.spec else {
        return Plan::default();
    };
    let (claimed, mut actions) = claim(rs, pods);
    let desired = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    if rs.metadata.deletion_timestamp.is_none() {
        // Being deleted: only the status is kept up, or the pods the garbage collector deletes would come back.
        if claimed.len() < desired {
            actions.push(Action::CreatePods {
                count: (desired - claimed.len()).min(BURST),
                pod: Box::new(pods::new_pod(rs)),
            });
        } else if claimed.len() > desired {
            let surplus = (claimed.len() - desired).min(BURST);
            actions.extend(pods::to_delete(&claimed, surplus).into_iter().map(|p| {
                let (key, uid) = key_uid(p);
                Action::DeletePod { key, uid }
            }));
        }
    }
    let status = status::compute(rs, &claimed, now);
    if rs.status.as_ref() != Some(&status) {
        actions.push(Action::UpdateStatus(Box::new(status)));
    }
    let min_ready = status::min_ready(rs);
    let requeue_after = claimed
        .iter()
        .filter_map(|p| pods::until_available(p, min_ready, now))
        .filter(|d| !d.is_zero())
        .min()
        // A second past the moment, so the pod is available when it is looked at again.
        .map(|d| d + Duration::from_secs(1));
    Plan {
        actions,
        requeue_after,
    }
}

#[cfg(test)]
mod tests;
