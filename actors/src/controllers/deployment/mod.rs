//! The deployment controller: Deployment -> ReplicaSets -> pods, as in Kubernetes. A Deployment owns one
//! ReplicaSet per template version (`<deployment>-<pod-template-hash>`); rolling out a new template scales the new
//! ReplicaSet up and the old ones down within maxSurge / maxUnavailable (or, with Recreate, all old ones to zero
//! first); the ReplicaSet controller ([`crate::controllers::replicaset`]) makes the pods. [`reconcile`] decides;
//! [`DeploymentController`] watches and carries out. The ReplicaSets of a Deployment that is gone are the garbage
//! collector's ([`crate::controllers::gc`]), found by their owner reference.

mod actor;
pub mod replicasets;
pub mod rollout;
pub mod status;
mod writes;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::chrono::{DateTime, Utc};

pub use actor::DeploymentController;

use crate::informer::ObjectKey;
use rollout::Sync;

/// One thing to do for a Deployment.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Make this orphan ReplicaSet the Deployment's (controller owner reference), if it still is an orphan.
    AdoptReplicaSet {
        /// The ReplicaSet.
        key: ObjectKey,
        /// Its uid.
        uid: String,
    },
    /// Drop the Deployment's owner reference from this ReplicaSet, which its selector no longer matches.
    ReleaseReplicaSet {
        /// The ReplicaSet.
        key: ObjectKey,
        /// Its uid.
        uid: String,
    },
    /// Create this ReplicaSet (a `ScalingReplicaSet` event says so when it has replicas).
    CreateReplicaSet(Box<ReplicaSet>),
    /// Write this ReplicaSet (its `resourceVersion` is the one decided on: a conflict means a newer view is on
    /// its way). `from` is its size before; a `ScalingReplicaSet` event says when it changed.
    UpdateReplicaSet {
        /// The ReplicaSet as it should be.
        replica_set: Box<ReplicaSet>,
        /// `spec.replicas` before.
        from: i32,
    },
    /// Delete this old ReplicaSet (beyond `revisionHistoryLimit`), if it still has this uid.
    DeleteReplicaSet {
        /// The ReplicaSet.
        key: ObjectKey,
        /// Its uid.
        uid: String,
    },
    /// Set the Deployment's `deployment.kubernetes.io/revision` annotation.
    SetRevision(String),
    /// Write the Deployment's status.
    UpdateStatus(Box<DeploymentStatus>),
}

/// The decisions for one Deployment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// What to do, in order; the status last.
    pub actions: Vec<Action>,
    /// Look again after this long even if nothing changes (the progress deadline).
    pub requeue_after: Option<Duration>,
}

/// What `deployment` needs given `replica_sets` and `pods` (any of its namespace; only those it controls or
/// claims count) at `now` (Kubernetes' `syncDeployment`).
pub fn reconcile(
    deployment: &Deployment,
    replica_sets: &[&ReplicaSet],
    pods: &[&Pod],
    now: DateTime<Utc>,
) -> Plan {
    let (Some(_), Some(spec)) = (deployment.metadata.uid.as_deref(), &deployment.spec) else {
        return Plan::default();
    };
    let (claimed, claims) = replicasets::claim(deployment, replica_sets);
    let taken: BTreeSet<String> = replica_sets
        .iter()
        .filter_map(|rs| rs.metadata.name.clone())
        .collect();
    let mut sync = Sync::new(deployment, claimed, claims, taken, now);
    let rolled = if deployment.metadata.deletion_timestamp.is_some() {
        // Being deleted (its finalizers hold it while the garbage collector orphans or deletes its ReplicaSets):
        // only the status is kept up, as Kubernetes' `syncStatusOnly`; a new ReplicaSet would undo the collector.
        false
    } else {
        status::check_paused(&mut sync);
        if spec.paused == Some(true) || sync.is_scaling_event() {
            sync.sync();
            false
        } else {
            match spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) {
                Some("Recreate") => sync.recreate(pods),
                _ => sync.rolling(),
            }
            true
        }
    };
    let status = if rolled {
        status::rollout(&sync)
    } else {
        status::calculate(&sync)
    };
    let requeue_after = status::requeue(deployment, &status, now);
    let mut actions = sync.actions;
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
