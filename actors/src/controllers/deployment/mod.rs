//! The deployment controller: keeps each Deployment's pods at its replica count and template, deletes pods whose
//! Deployment is gone, and reports status. [`reconcile`] and [`collect_garbage`] decide; [`DeploymentController`]
//! watches and carries out.
//!
//! Navarch has no ReplicaSets yet: a Deployment owns its pods directly (controller owner reference), and the
//! template version lives in each pod's `pod-template-hash` label and name (`<deployment>-<hash>-<suffix>`), as
//! under a ReplicaSet.

mod actor;
pub mod pods;
pub mod rollout;
pub mod status;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::chrono::{DateTime, Utc};

pub use actor::DeploymentController;

use crate::informer::ObjectKey;

/// One thing to do for a Deployment.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create this pod (it has `generateName`, so the store names it).
    CreatePod(Box<Pod>),
    /// Delete this pod (gracefully: its node agent stops it first), if it still has this uid.
    DeletePod {
        /// The pod.
        key: ObjectKey,
        /// Its uid.
        uid: String,
    },
    /// Write the Deployment's status.
    UpdateStatus(Box<DeploymentStatus>),
}

/// The decisions for one Deployment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// What to do, in order: creates, deletes, then the status.
    pub actions: Vec<Action>,
    /// Look again after this long even if nothing changes (time alone will change the outcome).
    pub requeue_after: Option<Duration>,
}

fn delete(pod: &Pod) -> Action {
    Action::DeletePod {
        key: ObjectKey::of(&pod.metadata),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
    }
}

/// Most pods one reconcile creates or deletes (the ReplicaSet controller's `burstReplicas`); the next reconcile,
/// once the cache shows these writes, continues. Keeps a Deployment of 2^31 replicas from exhausting memory.
pub const BURST: usize = 500;

/// What `deployment` needs given `pods` (any pods of its namespace; only those it controls count) at `now`.
pub fn reconcile(deployment: &Deployment, pods: &[&Pod], now: DateTime<Utc>) -> Plan {
    let (Some(uid), Some(spec)) = (deployment.metadata.uid.as_deref(), &deployment.spec) else {
        return Plan::default();
    };
    let owned: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| pods::owned_by(p, uid))
        .collect();
    let hash = pods::template_hash(&spec.template);
    let rollout = rollout::plan(deployment, &hash, &owned, now);
    let mut actions: Vec<Action> = (0..rollout.create.min(BURST))
        .map(|_| Action::CreatePod(Box::new(pods::new_pod(deployment, &hash))))
        .collect();
    actions.extend(rollout.delete.iter().take(BURST).map(|p| delete(p)));
    let (status, requeue_after) =
        status::compute(deployment, &hash, &owned, rollout.create > 0, now);
    if deployment.status.as_ref() != Some(&status) {
        actions.push(Action::UpdateStatus(Box::new(status)));
    }
    Plan {
        actions,
        requeue_after,
    }
}

/// Deletes for the pods controlled by a Deployment named `key` that is not the live one: `live_uid` is the uid of
/// the Deployment of that name now (None: there is none). This is how deleting a Deployment removes its pods.
pub fn collect_garbage(key: &ObjectKey, live_uid: Option<&str>, pods: &[&Pod]) -> Vec<Action> {
    pods.iter()
        .copied()
        .filter(|p| pods::owner_key(p).as_ref() == Some(key))
        .filter(|p| pods::controller_of(p).is_some_and(|o| Some(o.uid.as_str()) != live_uid))
        .filter(|p| !pods::is_deleting(p))
        .map(delete)
        .collect()
}

#[cfg(test)]
mod tests;
