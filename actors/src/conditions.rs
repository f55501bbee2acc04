//! Pod conditions the Kubernetes way: one per type, and `lastTransitionTime` moves only when the status flips.

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::chrono::{DateTime, Utc};
use navarch_bus::api::{ApiError, Reason};
use serde_json::Value;

/// A condition of `type_` with `status` ("True"/"False"), an optional reason and message, changed at `now`.
pub fn pod_condition(
    type_: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<&str>,
    now: DateTime<Utc>,
) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.map(str::to_string),
        message: message.map(str::to_string),
        last_transition_time: Some(Time(now)),
        last_probe_time: None,
    }
}

/// The condition of `type_` in `conditions`.
pub fn find<'a>(conditions: Option<&'a [PodCondition]>, type_: &str) -> Option<&'a PodCondition> {
    conditions?.iter().find(|c| c.type_ == type_)
}

/// Whether `current` already says what `wanted` says (same status, reason and message; times aside).
pub fn same(current: Option<&PodCondition>, wanted: &PodCondition) -> bool {
    current.is_some_and(|c| {
        c.status == wanted.status && c.reason == wanted.reason && c.message == wanted.message
    })
}

/// Puts `wanted` into `conditions`, keeping the old `lastTransitionTime` when the status did not change.
/// Returns whether anything but times changed.
pub fn set(conditions: &mut Vec<PodCondition>, mut wanted: PodCondition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == wanted.type_) {
        Some(current) => {
            let changed = !same(Some(current), &wanted);
            if current.status == wanted.status && current.last_transition_time.is_some() {
                wanted.last_transition_time = current.last_transition_time.clone();
            }
            *current = wanted;
            changed
        }
        None => {
            conditions.push(wanted);
            true
        }
    }
}

/// `object` (a pod as the store holds it) with `wanted` set in its status, for a read-modify-write of the status.
/// Refuses (409) a pod whose uid is not `uid`: a new pod of the same name is not the one decided about.
pub fn set_in_pod(object: Value, uid: &str, wanted: PodCondition) -> Result<Value, ApiError> {
    let mut pod: Pod = serde_json::from_value(object).map_err(ApiError::internal)?;
    if pod.metadata.uid.as_deref() != Some(uid) {
        return Err(ApiError::new(
            Reason::Conflict,
            format!("pod uid changed (wanted {uid})"),
        ));
    }
    let status = pod.status.get_or_insert_with(Default::default);
    set(status.conditions.get_or_insert_with(Vec::new), wanted);
    serde_json::to_value(&pod).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::meta::parse_time;

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let t1 = parse_time("2026-01-01T00:00:00Z").unwrap();
        let t2 = parse_time("2026-01-01T00:01:00Z").unwrap();
        let mut conditions = Vec::new();
        assert!(set(
            &mut conditions,
            pod_condition("Ready", false, Some("ContainersNotReady"), None, t1)
        ));
        assert!(set(
            &mut conditions,
            pod_condition("Ready", false, Some("Other"), None, t2)
        ));
        assert_eq!(conditions[0].last_transition_time, Some(Time(t1)));
        assert!(!set(
            &mut conditions,
            pod_condition("Ready", false, Some("Other"), None, t2)
        ));
        assert!(set(
            &mut conditions,
            pod_condition("Ready", true, None, None, t2)
        ));
        assert_eq!(conditions[0].last_transition_time, Some(Time(t2)));
        assert_eq!(conditions.len(), 1);
    }
}
