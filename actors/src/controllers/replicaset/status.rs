//! A ReplicaSet's status as Kubernetes' ReplicaSet controller computes it (`calculateStatus`): replica counts of
//! the pods it controls, `observedGeneration`, and the `ReplicaFailure` condition after a failed create or delete.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::chrono::{DateTime, Utc};
use navarch_bus::api::selector_matches as matches;

use super::pods::{is_available, is_ready, labels};

/// The condition type a failed pod create or delete sets.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// `spec.minReadySeconds`.
pub fn min_ready(rs: &ReplicaSet) -> Duration {
    let secs = rs.spec.as_ref().and_then(|s| s.min_ready_seconds);
    Duration::from_secs(secs.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
}

/// The status `rs` has with `pods` (the active pods it controls) at `now`; conditions are kept as they are.
pub fn compute(rs: &ReplicaSet, pods: &[&Pod], now: DateTime<Utc>) -> ReplicaSetStatus {
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let template_selector = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
        match_labels: Some(template_labels),
        match_expressions: None,
    };
    let min_ready = min_ready(rs);
    let count = |f: &dyn Fn(&Pod) -> bool| -> i32 {
        i32::try_from(pods.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let previous = rs.status.clone().unwrap_or_default();
    let nonzero = |n: i32| (n > 0).then_some(n);
    ReplicaSetStatus {
        replicas: i32::try_from(pods.len()).unwrap_or(i32::MAX),
        fully_labeled_replicas: nonzero(count(&|p| {
            matches(&template_selector, &labels(&p.metadata))
        })),
        ready_replicas: nonzero(count(&|p| is_ready(p))),
        available_replicas: nonzero(count(&|p| is_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        conditions: previous.conditions,
    }
}

/// `status` after pod management ended with `failure` (reason `FailedCreate` or `FailedDelete`, and the error), or
/// succeeded (None): as Kubernetes, a failure sets `ReplicaFailure` once and a success removes it.
pub fn with_failure(
    mut status: ReplicaSetStatus,
    failure: Option<(&str, String)>,
    now: DateTime<Utc>,
) -> ReplicaSetStatus {
    let mut conditions = status.conditions.take().unwrap_or_default();
    let present = conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    match failure {
        Some((reason, message)) if !present => conditions.push(ReplicaSetCondition {
            type_: REPLICA_FAILURE.into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(Time(now)),
        }),
        None => conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        Some(_) => {}
    }
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    status
}
