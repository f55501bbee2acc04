//! The deployment controller: keeps each Deployment's pods at its replica count and template, and reports status.
//! [`reconcile`] decides; [`DeploymentController`] watches and carries out. The pods of a Deployment that is gone
//! are the garbage collector's ([`crate::controllers::gc`]), found by their owner reference.
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
    let mut rollout = rollout::plan(deployment, &hash, &owned, now);
    if deployment.metadata.deletion_timestamp.is_some() {
        // Being deleted (its finalizers hold it while the garbage collector orphans or deletes its pods): only the
        // status is kept up, as kube-controller-manager's `syncStatusOnly`; new pods would undo the collector's work.
        rollout.create = 0;
        rollout.delete.clear();
    }
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

#[cfg(test)]
mod tests;
