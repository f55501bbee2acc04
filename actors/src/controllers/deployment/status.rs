//! A Deployment's status as Kubernetes computes it (`calculateStatus`, `syncRolloutStatus`,
//! `checkPausedConditions`), so that `kubectl get`, `describe` and `rollout status` read it: replica counts from its
//! ReplicaSets, `observedGeneration`, and the `Available` and `Progressing` conditions with Kubernetes' reasons and
//! messages.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::chrono::{DateTime, Utc};

use super::replicasets::{actual, available, ready, replicas};
use super::rollout::{desired, max_unavailable, Sync};

/// Kubernetes' reasons of the `Progressing` and `Available` conditions.
pub mod reason {
    /// The new ReplicaSet's pods are all there and available.
    pub const NEW_AVAILABLE: &str = "NewReplicaSetAvailable";
    /// The new ReplicaSet was created.
    pub const NEW_CREATED: &str = "NewReplicaSetCreated";
    /// The new ReplicaSet already existed when the controller first looked.
    pub const FOUND_NEW: &str = "FoundNewReplicaSet";
    /// Progress was made since the last look.
    pub const UPDATED: &str = "ReplicaSetUpdated";
    /// No progress within `progressDeadlineSeconds`.
    pub const DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    /// The Deployment was paused.
    pub const PAUSED: &str = "DeploymentPaused";
    /// The Deployment was resumed.
    pub const RESUMED: &str = "DeploymentResumed";
    /// Enough pods are available.
    pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
    /// Too few pods are available.
    pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
}

/// Whether the Deployment has a progress deadline (unset or `MaxInt32` means none, as in Kubernetes).
pub fn has_deadline(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .is_some_and(|s| s != i32::MAX)
}

/// A condition stamped `now`.
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: DateTime<Utc>,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of `type_`, if present.
pub fn find<'a>(
    conditions: &'a [DeploymentCondition],
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Kubernetes' `SetDeploymentCondition`: a condition with the same status and reason is left as it is; one with
/// the same status keeps its transition time; the new one goes last.
pub fn set_condition(conditions: &mut Vec<DeploymentCondition>, mut wanted: DeploymentCondition) {
    if let Some(current) = find(conditions, &wanted.type_) {
        if current.status == wanted.status && current.reason == wanted.reason {
            return;
        }
        if current.status == wanted.status {
            wanted.last_transition_time = current.last_transition_time.clone();
        }
    }
    conditions.retain(|c| c.type_ != wanted.type_);
    conditions.push(wanted);
}

fn count(n: i32) -> Option<i32> {
    (n > 0).then_some(n)
}

/// Kubernetes' `calculateStatus`: counts over the ReplicaSets (as this reconcile leaves them) and the
/// `Available` condition.
pub fn calculate(sync: &Sync<'_>) -> DeploymentStatus {
    let d = sync.d;
    let rses = &sync.rses;
    let sum =
        |f: fn(&k8s_openapi::api::apps::v1::ReplicaSet) -> i32| -> i32 { rses.iter().map(f).sum() };
    let available_now = sum(available);
    let unavailable = (sum(replicas) - available_now).max(0);
    let updated = sync.new.map_or(0, |i| actual(&rses[i]));
    let mut conditions = sync.conditions.clone();
    let desired = desired(d);
    if available_now >= desired - max_unavailable(d) {
        set_condition(
            &mut conditions,
            condition(
                "Available",
                "True",
                reason::MIN_AVAILABLE,
                "Deployment has minimum availability.".into(),
                sync.now,
            ),
        );
    } else {
        set_condition(
            &mut conditions,
            condition(
                "Available",
                "False",
                reason::MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                sync.now,
            ),
        );
    }
    DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: count(sum(actual)),
        updated_replicas: count(updated),
        ready_replicas: count(sum(ready)),
        available_replicas: count(available_now),
        unavailable_replicas: count(unavailable),
        collision_count: sync.collision_count,
        conditions: (!conditions.is_empty()).then_some(conditions),
    }
}

/// Kubernetes' `DeploymentComplete`.
pub fn is_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let desired = desired(d);
    s.updated_replicas.unwrap_or(0) == desired
        && s.replicas.unwrap_or(0) == desired
        && s.available_replicas.unwrap_or(0) == desired
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Kubernetes' `DeploymentProgressing`: more updated, ready or available replicas, or fewer old ones, than the
/// stored status says.
fn is_progressing(d: &Deployment, s: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let get = |v: Option<i32>| v.unwrap_or(0);
    let old_replicas = |s: &DeploymentStatus| get(s.replicas) - get(s.updated_replicas);
    get(s.updated_replicas) > get(old.updated_replicas)
        || old_replicas(s) < old_replicas(&old)
        || get(s.ready_replicas) > get(old.ready_replicas)
        || get(s.available_replicas) > get(old.available_replicas)
}

fn deadline(d: &Deployment) -> Duration {
    let secs = d.spec.as_ref().and_then(|s| s.progress_deadline_seconds);
    Duration::from_secs(secs.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
}

/// How long since the condition's last update.
fn since_update(c: &DeploymentCondition, now: DateTime<Utc>) -> Duration {
    c.last_update_time
        .as_ref()
        .map(|t| now.signed_duration_since(t.0).to_std().unwrap_or_default())
        .unwrap_or_default()
}

/// Kubernetes' `DeploymentTimedOut`.
fn is_timed_out(d: &Deployment, s: &DeploymentStatus, now: DateTime<Utc>) -> bool {
    if !has_deadline(d) {
        return false;
    }
    let Some(c) = s.conditions.as_deref().and_then(|c| find(c, "Progressing")) else {
        return false;
    };
    match c.reason.as_deref() {
        Some(reason::NEW_AVAILABLE) => false,
        Some(reason::DEADLINE_EXCEEDED) => true,
        _ => since_update(c, now) > deadline(d),
    }
}

/// The status after a rollout step (Kubernetes' `syncRolloutStatus`): [`calculate`] plus the `Progressing`
/// condition (complete, progressing, or timed out) and the new ReplicaSet's `ReplicaFailure`.
pub fn rollout(sync: &Sync<'_>) -> DeploymentStatus {
    let d = sync.d;
    let mut s = calculate(sync);
    let mut conditions = s.conditions.take().unwrap_or_default();
    if !has_deadline(d) {
        conditions.retain(|c| c.type_ != "Progressing");
    }
    let current = d
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .and_then(|c| find(c, "Progressing"))
        .cloned();
    let complete_before = s.replicas == s.updated_replicas
        && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(reason::NEW_AVAILABLE);
    let name = sync
        .new
        .and_then(|i| sync.rses[i].metadata.name.clone())
        .map(|n| format!("ReplicaSet \"{n}\""))
        .unwrap_or_else(|| {
            format!(
                "Deployment \"{}\"",
                d.metadata.name.as_deref().unwrap_or_default()
            )
        });
    if has_deadline(d) && !complete_before {
        s.conditions = Some(conditions.clone());
        if is_complete(d, &s) {
            set_condition(
                &mut conditions,
                condition(
                    "Progressing",
                    "True",
                    reason::NEW_AVAILABLE,
                    format!("{name} has successfully progressed."),
                    sync.now,
                ),
            );
        } else if is_progressing(d, &s) {
            // The same reason again still moves lastUpdateTime (Kubernetes special-cases this condition).
            let mut wanted = condition(
                "Progressing",
                "True",
                reason::UPDATED,
                format!("{name} is progressing."),
                sync.now,
            );
            if let Some(c) = current.as_ref().filter(|c| c.status == "True") {
                wanted.last_transition_time = c.last_transition_time.clone();
            }
            conditions.retain(|c| c.type_ != "Progressing");
            conditions.push(wanted);
        } else if is_timed_out(d, &s, sync.now) {
            set_condition(
                &mut conditions,
                condition(
                    "Progressing",
                    "False",
                    reason::DEADLINE_EXCEEDED,
                    format!("{name} has timed out progressing."),
                    sync.now,
                ),
            );
        }
    }
    let failure = sync
        .new
        .into_iter()
        .chain(sync.old())
        .filter_map(|i| {
            sync.rses[i]
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "ReplicaFailure")
                .cloned()
        })
        .next();
    match failure {
        Some(f) => set_condition(
            &mut conditions,
            DeploymentCondition {
                type_: "ReplicaFailure".into(),
                status: f.status,
                reason: f.reason,
                message: f.message,
                last_update_time: f.last_transition_time.clone(),
                last_transition_time: f.last_transition_time,
            },
        ),
        None => conditions.retain(|c| c.type_ != "ReplicaFailure"),
    }
    s.conditions = (!conditions.is_empty()).then_some(conditions);
    s
}

/// Kubernetes' `checkPausedConditions`: `Progressing` becomes Unknown, `DeploymentPaused` when paused and
/// `DeploymentResumed` when resumed (which restarts the progress deadline), unless the deadline was exceeded.
pub fn check_paused(sync: &mut Sync<'_>) {
    if !has_deadline(sync.d) {
        return;
    }
    let current = find(&sync.conditions, "Progressing").and_then(|c| c.reason.clone());
    if current.as_deref() == Some(reason::DEADLINE_EXCEEDED) {
        return;
    }
    let paused = sync.d.spec.as_ref().and_then(|s| s.paused) == Some(true);
    let marked = current.as_deref() == Some(reason::PAUSED);
    let (reason, message) = match (paused, marked) {
        (true, false) => (reason::PAUSED, "Deployment is paused"),
        (false, true) => (reason::RESUMED, "Deployment is resumed"),
        _ => return,
    };
    set_condition(
        &mut sync.conditions,
        condition("Progressing", "Unknown", reason, message.into(), sync.now),
    );
}

/// When to look again so a stuck rollout is seen to exceed its deadline (Kubernetes' `requeueStuckDeployment`).
pub fn requeue(d: &Deployment, s: &DeploymentStatus, now: DateTime<Utc>) -> Option<Duration> {
    if !has_deadline(d) || is_complete(d, s) || d.spec.as_ref().and_then(|s| s.paused) == Some(true)
    {
        return None;
    }
    let c = s
        .conditions
        .as_deref()
        .and_then(|c| find(c, "Progressing"))?;
    if matches!(
        c.reason.as_deref(),
        Some(reason::DEADLINE_EXCEEDED | reason::NEW_AVAILABLE)
    ) {
        return None;
    }
    let left = deadline(d).saturating_sub(since_update(c, now));
    Some(left + Duration::from_secs(1))
}
