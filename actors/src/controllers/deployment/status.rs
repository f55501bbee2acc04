//! A Deployment's status as Kubernetes computes it, so that `kubectl get`, `describe` and `rollout status` read
//! it: replica counts, `observedGeneration`, and the `Available` and `Progressing` conditions with Kubernetes'
//! reasons and messages.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::chrono::{DateTime, Utc};

use super::pods::{is_available, is_ready, until_available};
use super::rollout::{active, bounds, desired, min_ready, split};

/// Kubernetes' reasons of the `Progressing` condition.
pub mod reason {
    /// The Deployment's current pods are all there and available.
    pub const NEW_AVAILABLE: &str = "NewReplicaSetAvailable";
    /// Pods of a new template started to be created.
    pub const NEW_CREATED: &str = "NewReplicaSetCreated";
    /// The current template's pods already existed when the controller first looked.
    pub const FOUND_NEW: &str = "FoundNewReplicaSet";
    /// Progress was made since the last look.
    pub const UPDATED: &str = "ReplicaSetUpdated";
    /// No progress within `progressDeadlineSeconds`.
    pub const DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    /// Enough pods are available.
    pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
    /// Too few pods are available.
    pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    now: DateTime<Utc>,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Kubernetes' `SetDeploymentCondition`: a condition with the same status and reason is left as it is; one with
/// the same status keeps its transition time.
fn set(conditions: &mut Vec<DeploymentCondition>, mut wanted: DeploymentCondition) {
    if let Some(current) = conditions.iter_mut().find(|c| c.type_ == wanted.type_) {
        if current.status == wanted.status && current.reason == wanted.reason {
            return;
        }
        if current.status == wanted.status {
            wanted.last_transition_time = current.last_transition_time.clone();
        }
        *current = wanted;
    } else {
        conditions.push(wanted);
    }
}

fn count(n: usize) -> Option<i32> {
    (n > 0).then(|| i32::try_from(n).unwrap_or(i32::MAX))
}

/// The status `d` should have given its owned `pods`, and when to look again if time alone will change it
/// (a pod becoming available after `minReadySeconds`, the progress deadline). `creating` says whether pods of the
/// current template are being created now.
pub fn compute(
    d: &Deployment,
    hash: &str,
    pods: &[&Pod],
    creating: bool,
    now: DateTime<Utc>,
) -> (DeploymentStatus, Option<Duration>) {
    let name = d.metadata.name.as_deref().unwrap_or_default();
    let replica_set = format!("{name}-{hash}");
    let desired = desired(d);
    let min_ready = min_ready(d);
    let spec = d.spec.as_ref();
    let (_, max_unavailable) = bounds(spec.and_then(|s| s.strategy.as_ref()), desired);
    let active = active(pods);
    let (new, _) = split(&active, hash);
    let ready = active.iter().filter(|p| is_ready(p)).count();
    let available = active
        .iter()
        .filter(|p| is_available(p, min_ready, now))
        .count();
    let replicas = active.len();
    let previous = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: count(replicas),
        updated_replicas: count(new.len()),
        ready_replicas: count(ready),
        available_replicas: count(available),
        unavailable_replicas: count(
            (desired.max(replicas as i64) - available as i64).max(0) as usize
        ),
        collision_count: previous.collision_count,
        conditions: None,
    };
    let mut conditions = previous.conditions.clone().unwrap_or_default();

    let enough = available as i64 >= desired - max_unavailable;
    set(
        &mut conditions,
        if enough {
            condition(
                "Available",
                true,
                reason::MIN_AVAILABLE,
                "Deployment has minimum availability.".into(),
                now,
            )
        } else {
            condition(
                "Available",
                false,
                reason::MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                now,
            )
        },
    );

    let complete =
        new.len() as i64 == desired && replicas as i64 == desired && available as i64 == desired;
    let old_replicas =
        |s: &DeploymentStatus| s.replicas.unwrap_or(0) - s.updated_replicas.unwrap_or(0);
    let progressed = status.updated_replicas.unwrap_or(0) > previous.updated_replicas.unwrap_or(0)
        || old_replicas(&status) < old_replicas(&previous)
        || status.ready_replicas.unwrap_or(0) > previous.ready_replicas.unwrap_or(0)
        || status.available_replicas.unwrap_or(0) > previous.available_replicas.unwrap_or(0);
    let current = conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .cloned();
    let deadline = spec
        .and_then(|s| s.progress_deadline_seconds)
        .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)));
    let since_update = current
        .as_ref()
        .and_then(|c| c.last_update_time.as_ref())
        .map(|t| now.signed_duration_since(t.0).to_std().unwrap_or_default());
    let mut requeue = None;
    if complete {
        set(
            &mut conditions,
            condition(
                "Progressing",
                true,
                reason::NEW_AVAILABLE,
                format!("ReplicaSet \"{replica_set}\" has successfully progressed."),
                now,
            ),
        );
    } else if creating && new.is_empty() {
        set(
            &mut conditions,
            condition(
                "Progressing",
                true,
                reason::NEW_CREATED,
                format!("Created new replica set \"{replica_set}\""),
                now,
            ),
        );
    } else if progressed {
        // Kubernetes special-cases this one: the same reason again still moves lastUpdateTime.
        let mut wanted = condition(
            "Progressing",
            true,
            reason::UPDATED,
            format!("ReplicaSet \"{replica_set}\" is progressing."),
            now,
        );
        conditions.retain(|c| c.type_ != "Progressing");
        if let Some(c) = current.filter(|c| c.status == "True") {
            wanted.last_transition_time = c.last_transition_time;
        }
        conditions.push(wanted);
    } else if current.is_none() {
        set(
            &mut conditions,
            condition(
                "Progressing",
                true,
                reason::FOUND_NEW,
                format!("Found new replica set \"{replica_set}\""),
                now,
            ),
        );
    } else if let (Some(deadline), Some(since), Some(c)) = (deadline, since_update, &current) {
        let waiting = c.reason.as_deref() != Some(reason::NEW_AVAILABLE)
            && c.reason.as_deref() != Some(reason::DEADLINE_EXCEEDED);
        if waiting && since >= deadline {
            set(
                &mut conditions,
                condition(
                    "Progressing",
                    false,
                    reason::DEADLINE_EXCEEDED,
                    format!("ReplicaSet \"{replica_set}\" has timed out progressing."),
                    now,
                ),
            );
        } else if waiting {
            requeue = Some(deadline - since + Duration::from_secs(1));
        }
    }
    status.conditions = Some(conditions);

    let soonest_available = active
        .iter()
        .filter_map(|p| until_available(p, min_ready, now))
        .filter(|d| !d.is_zero())
        .min();
    let requeue = match (requeue, soonest_available) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    (status, requeue)
}
