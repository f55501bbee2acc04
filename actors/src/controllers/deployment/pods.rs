//! What a Deployment knows about pods: which it owns, which are ready or available, which to delete first, and
//! how to make a new one from its template.

use std::cmp::Ordering;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::chrono::{DateTime, Utc};

use crate::informer::ObjectKey;

/// The label that ties a pod to one version of its Deployment's template.
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Kubernetes' alphabet for generated names (no vowels, no look-alikes).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Longest `generateName` prefix, leaving room for the 5-character suffix within a 63-character label.
const MAX_GENERATE_NAME: usize = 58;

/// The pod's controller owner reference, if it has one.
pub fn controller_of(pod: &Pod) -> Option<&OwnerReference> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// The Deployment that controls `pod` (by its owner reference), as a key in the pod's namespace.
pub fn owner_key(pod: &Pod) -> Option<ObjectKey> {
    let owner = controller_of(pod)?;
    (owner.kind == "Deployment" && owner.api_version == "apps/v1").then(|| {
        ObjectKey::new(
            pod.metadata.namespace.clone().unwrap_or_default(),
            owner.name.clone(),
        )
    })
}

/// Whether `pod` is controlled by the Deployment with `uid`.
pub fn owned_by(pod: &Pod, uid: &str) -> bool {
    controller_of(pod).is_some_and(|o| o.uid == uid)
}

/// Whether the pod is being deleted.
pub fn is_deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Whether the pod has finished (Succeeded or Failed): it no longer counts as a replica.
pub fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), Some("Succeeded" | "Failed"))
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// Since when the pod has been Ready, if it is.
fn ready_since(pod: &Pod) -> Option<Option<DateTime<Utc>>> {
    let ready = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(ready.last_transition_time.as_ref().map(|t| t.0))
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// How long until a ready pod counts as available (ready for `min_ready`), or None if it is not ready.
/// Zero means available now.
pub fn until_available(pod: &Pod, min_ready: Duration, now: DateTime<Utc>) -> Option<Duration> {
    let since = ready_since(pod)?;
    if min_ready.is_zero() {
        return Some(Duration::ZERO);
    }
    let Some(since) = since else {
        return Some(Duration::ZERO);
    };
    let ready_for = now
        .signed_duration_since(since)
        .to_std()
        .unwrap_or_default();
    Some(min_ready.saturating_sub(ready_for))
}

/// Whether the pod has been ready for at least `min_ready`.
pub fn is_available(pod: &Pod, min_ready: Duration, now: DateTime<Utc>) -> bool {
    until_available(pod, min_ready, now).is_some_and(|d| d.is_zero())
}

/// Orders pods so that the ones to delete first come first, as Kubernetes' `ActivePods` does: unscheduled before
/// scheduled, pending before running, not ready before ready, ready more recently before longer, more restarts
/// before fewer, newer before older.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let scheduled = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let phase_rank = |p: &Pod| match phase(p) {
        Some("Pending") | None => 0,
        Some("Running") => 2,
        _ => 1,
    };
    let restarts = |p: &Pod| -> i32 {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map_or(0, |cs| {
                cs.iter().map(|c| c.restart_count).max().unwrap_or(0)
            })
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    scheduled(a)
        .cmp(&scheduled(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| ready_since(b).flatten().cmp(&ready_since(a).flatten()))
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| created(b).cmp(&created(a)))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// 32-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The `pod-template-hash` of a template: FNV-1a of its JSON form, spelled in Kubernetes' safe alphabet (as
/// `rand.SafeEncodeString(fmt.Sprint(hash))`). Any change of the template changes it.
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    fnv1a(&json)
        .to_string()
        .bytes()
        .map(|b| SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// A new pod of `deployment` from its template (`hash` is the template's [`template_hash`]): the template's labels
/// plus `pod-template-hash`, its annotations and spec, `generateName: <deployment>-<hash>-`, and a controller
/// owner reference to the Deployment.
pub fn new_pod(deployment: &Deployment, hash: &str) -> Pod {
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let template = deployment
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    let mut labels = template_meta.labels.unwrap_or_default();
    labels.insert(TEMPLATE_HASH_LABEL.into(), hash.to_string());
    let mut prefix = format!("{name}-{hash}-");
    if prefix.len() > MAX_GENERATE_NAME {
        let mut cut = MAX_GENERATE_NAME;
        while !prefix.is_char_boundary(cut) {
            cut -= 1;
        }
        prefix.truncate(cut);
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(prefix),
            namespace: deployment.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: template_meta.annotations,
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name,
                uid: deployment.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}
