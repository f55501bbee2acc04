//! What a delete does to an object, and when an update finishes a deletion, as kube-apiserver's generic registry
//! decides: graceful deletion (pods bound to a node), Terminating namespaces, `metadata.finalizers`, and the
//! garbage collector's `orphan` and `foregroundDeletion` finalizers that a propagation policy asks for. Pure.

use k8s_openapi::chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use super::error::{ApiError, Cause};
use super::meta;
use super::resource::ResourceInfo;

/// The finalizer that makes the garbage collector strip the owner's reference from its dependents before the owner
/// goes (`propagationPolicy: Orphan`).
pub const ORPHAN_FINALIZER: &str = "orphan";
/// The finalizer that keeps an owner until the garbage collector has deleted its blocking dependents
/// (`propagationPolicy: Foreground`).
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// What happens to an object's dependents when it is deleted (`DeleteOptions.propagationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// The dependents stay, without their reference to the deleted owner.
    Orphan,
    /// The owner goes at once; the garbage collector deletes the dependents afterwards.
    Background,
    /// The owner stays (with `deletionTimestamp`) until the garbage collector has deleted its blocking dependents.
    Foreground,
}

impl Propagation {
    /// `Orphan`, `Background`, `Foreground`.
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Orphan => "Orphan",
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
        }
    }

    /// The propagation that `propagationPolicy` and the deprecated `orphanDependents` ask for (None: neither, so the
    /// object's own GC finalizers, else Background, decide). Refused as kube-apiserver's `ValidateDeleteOptions`
    /// refuses: an unknown policy, or both fields set.
    pub fn from_options(
        policy: Option<&str>,
        orphan_dependents: Option<bool>,
    ) -> Result<Option<Self>, ApiError> {
        let mut causes = Vec::new();
        if let (Some(policy), Some(_)) = (policy, orphan_dependents) {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                field: "propagationPolicy".into(),
                message: format!(
                    "Invalid value: \"{policy}\": orphanDependents and deletionPropagation cannot be both set"
                ),
            });
        }
        let chosen = match (policy, orphan_dependents) {
            (Some("Orphan"), _) | (None, Some(true)) => Some(Propagation::Orphan),
            (Some("Background"), _) | (None, Some(false)) => Some(Propagation::Background),
            (Some("Foreground"), _) => Some(Propagation::Foreground),
            (Some(other), _) => {
                causes.push(Cause {
                    reason: "FieldValueNotSupported".into(),
                    field: "propagationPolicy".into(),
                    message: format!(
                        "Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \
                         \"Orphan\", \"nil\""
                    ),
                });
                None
            }
            (None, None) => None,
        };
        if causes.is_empty() {
            Ok(chosen)
        } else {
            Err(ApiError::invalid_kind(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                causes,
            ))
        }
    }
}

/// What a delete does.
#[derive(Debug, Clone, PartialEq)]
pub enum Deletion {
    /// Remove the object from the store now.
    Now,
    /// Store this state of the object instead (its deletion is pending); equal to the object when the delete
    /// changes nothing.
    Pending(Value),
}

/// `metadata.finalizers` of `object`.
pub fn finalizers(object: &Value) -> Vec<&str> {
    object["metadata"]["finalizers"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether `object` carries `finalizer`.
pub fn has_finalizer(object: &Value, finalizer: &str) -> bool {
    finalizers(object).contains(&finalizer)
}

fn grace_period(object: &Value) -> Option<i64> {
    object["metadata"]["deletionGracePeriodSeconds"].as_i64()
}

/// What deleting `object` (of kind `info`) does at `now`, given the requested grace period and propagation.
///
/// As kube-apiserver: an object with finalizers never goes at once; it gets `deletionTimestamp` (now, grace 0 unless
/// a graceful deletion set a later one) and stays until its finalizers are removed. A propagation of Orphan or
/// Foreground adds its finalizer (and drops the other one), Background drops both; no propagation keeps what the
/// object has. While a graceful deletion is pending the GC finalizers are left as they are.
pub fn plan(
    info: &ResourceInfo,
    object: &Value,
    grace: Option<i64>,
    propagation: Option<Propagation>,
    now: DateTime<Utc>,
) -> Deletion {
    let graceful_pending = meta::is_deleting(object) && grace_period(object).unwrap_or(0) > 0;
    let deferred = match info.kind {
        "Pod" => graceful_pod_deletion(object, grace, now),
        "Namespace" => terminating_namespace(object, now),
        _ => None,
    };
    let deferred_by_kind = deferred.is_some();
    let mut next = deferred.unwrap_or_else(|| object.clone());
    if !graceful_pending {
        if let Some(propagation) = propagation {
            set_gc_finalizers(&mut next, propagation);
        }
    }
    if finalizers(&next).is_empty() {
        return if deferred_by_kind {
            Deletion::Pending(next)
        } else {
            Deletion::Now
        };
    }
    if !deferred_by_kind {
        // Finalizers keep the object; nothing else needs to wait, so its deletion is due now.
        let m = meta::metadata_mut(&mut next);
        let stamped = m
            .get("deletionTimestamp")
            .and_then(Value::as_str)
            .and_then(meta::parse_time);
        if stamped.is_none_or(|t| t > now) {
            m.insert("deletionTimestamp".into(), json!(meta::format_time(now)));
        }
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
    }
    Deletion::Pending(next)
}

/// Puts the finalizer `propagation` asks for on `object` and removes the other GC finalizer; the order of the
/// others is kept.
fn set_gc_finalizers(object: &mut Value, propagation: Propagation) {
    let current: Vec<String> = finalizers(object).into_iter().map(String::from).collect();
    let mut next: Vec<String> = current
        .iter()
        .filter(|f| *f != ORPHAN_FINALIZER && *f != FOREGROUND_FINALIZER)
        .cloned()
        .collect();
    match propagation {
        Propagation::Orphan => next.push(ORPHAN_FINALIZER.into()),
        Propagation::Foreground => next.push(FOREGROUND_FINALIZER.into()),
        Propagation::Background => {}
    }
    let mut sorted_current = current.clone();
    sorted_current.sort();
    let mut sorted_next = next.clone();
    sorted_next.sort();
    if sorted_current == sorted_next {
        return;
    }
    let m = meta::metadata_mut(object);
    if next.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(next));
    }
}

/// Whether storing `object` (the result of an update) ends its deletion instead: it is being deleted with no grace
/// left and its last finalizer is gone (for a namespace, its `spec.finalizers` too), as kube-apiserver's
/// `shouldDeleteDuringUpdate`.
pub fn deletes_on_update(info: &ResourceInfo, object: &Value) -> bool {
    let namespace_finalized = info.kind != "Namespace"
        || object["spec"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty());
    meta::is_deleting(object)
        && grace_period(object) == Some(0)
        && finalizers(object).is_empty()
        && namespace_finalized
}

/// A namespace with finalizers (the namespace controller's `kubernetes`) turns Terminating instead of going.
fn terminating_namespace(namespace: &Value, now: DateTime<Utc>) -> Option<Value> {
    let finalizers = namespace["spec"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if !finalizers {
        return None;
    }
    let mut next = namespace.clone();
    if !meta::is_deleting(&next) {
        meta::metadata_mut(&mut next)
            .insert("deletionTimestamp".into(), json!(meta::format_time(now)));
        meta::metadata_mut(&mut next).insert("deletionGracePeriodSeconds".into(), json!(0));
    }
    next["status"]["phase"] = json!("Terminating");
    Some(next)
}

/// For a pod bound to a node and a positive grace period: the pod with `deletionTimestamp` set (the node agent
/// stops it, then deletes it with grace 0). None when the pod can go at once.
fn graceful_pod_deletion(pod: &Value, grace: Option<i64>, now: DateTime<Utc>) -> Option<Value> {
    let bound = pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    let grace = grace
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30);
    if !bound || finished || grace == 0 {
        return None;
    }
    // Any grace period is accepted; one that reaches past year 9999 (the last a Kubernetes timestamp can hold) ends
    // there.
    let end_of_time = DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(now);
    let deadline = TimeDelta::try_seconds(grace)
        .and_then(|delta| now.checked_add_signed(delta))
        .map_or(end_of_time, |d| d.min(end_of_time));
    let mut next = pod.clone();
    let m = meta::metadata_mut(&mut next);
    // A second delete may shorten the grace period, never lengthen it.
    let current = m
        .get("deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(meta::parse_time);
    if current.is_none_or(|c| deadline < c) {
        m.insert(
            "deletionTimestamp".into(),
            json!(meta::format_time(deadline)),
        );
        m.insert("deletionGracePeriodSeconds".into(), json!(grace));
    }
    Some(next)
}

#[cfg(test)]
#[path = "deletion_tests.rs"]
mod tests;
