//! What a ReplicaSet knows about pods: which it controls, which count, which are ready or available, which to
//! delete first, and how to make a new one from its template.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::chrono::{DateTime, Utc};

use crate::informer::ObjectKey;

/// Longest `generateName` prefix, leaving room for the 5-character suffix within a 63-character label.
const MAX_GENERATE_NAME: usize = 58;

/// The object's controller owner reference, if it has one.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// The owner of `kind` (apps/v1) that controls the object, as a key in the object's namespace.
pub fn controller_key(meta: &ObjectMeta, kind: &str) -> Option<ObjectKey> {
    let owner = controller_of(meta)?;
    (owner.kind == kind && owner.api_version == "apps/v1").then(|| {
        ObjectKey::new(
            meta.namespace.clone().unwrap_or_default(),
            owner.name.clone(),
        )
    })
}

/// Whether the object is controlled by the owner with `uid`.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|o| o.uid == uid)
}

/// A controller owner reference to `owner` of `kind` (apps/v1), blocking its foreground deletion as Kubernetes'
/// `NewControllerRef` does.
pub fn controller_ref(owner: &ObjectMeta, kind: &str) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: kind.into(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The object's labels (none: empty).
pub fn labels(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// Whether the pod is being deleted.
pub fn is_deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Whether the pod has finished (Succeeded or Failed).
pub fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), Some("Succeeded" | "Failed"))
}

/// Whether the pod counts as a replica (Kubernetes' `FilterActivePods`): neither being deleted nor finished.
pub fn is_active(pod: &Pod) -> bool {
    !is_deleting(pod) && !is_finished(pod)
}

/// Since when the pod has been Ready (None inside: time unknown), if it is.
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
    let Some(since) = since.filter(|_| !min_ready.is_zero()) else {
        return Some(Duration::ZERO);
    };
    let ready_for = now
        .signed_duration_since(since)
        .to_std()
        .unwrap_or_default();
    Some(min_ready.saturating_sub(ready_for))
}

/// Whether the pod has been ready for at least `min_ready` (Kubernetes' `IsPodAvailable`).
pub fn is_available(pod: &Pod, min_ready: Duration, now: DateTime<Utc>) -> bool {
    until_available(pod, min_ready, now).is_some_and(|d| d.is_zero())
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Orders pods so that the ones to delete first come first, as Kubernetes' `ActivePodsWithRanks` does:
/// unscheduled before scheduled; Pending before Unknown before Running; not ready before ready; more pods of the
/// set on the same node (`rank`) before fewer; ready more recently before longer; more restarts before fewer;
/// newer before older.
pub fn deletion_order(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize) -> Ordering {
    let phase_rank = |p: &Pod| match phase(p) {
        Some("Pending") | None => 0,
        Some("Running") => 2,
        _ => 1,
    };
    let restarts = |p: &Pod| -> i32 {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum())
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let ready_at = |p: &Pod| ready_since(p).flatten();
    node_of(a)
        .is_some()
        .cmp(&node_of(b).is_some())
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| rank_b.cmp(&rank_a))
        .then_with(|| {
            if is_ready(a) && is_ready(b) {
                ready_at(b).cmp(&ready_at(a))
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| created(b).cmp(&created(a)))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// The `count` pods to delete first among `pods`, ranked by how many of them share each one's node.
pub fn to_delete<'a>(pods: &[&'a Pod], count: usize) -> Vec<&'a Pod> {
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for p in pods {
        if let Some(node) = node_of(p) {
            *per_node.entry(node).or_default() += 1;
        }
    }
    let rank = |p: &Pod| node_of(p).map_or(0, |n| per_node.get(n).copied().unwrap_or(0));
    let mut ranked: Vec<(&Pod, usize)> = pods.iter().map(|p| (*p, rank(p))).collect();
    ranked.sort_by(|(a, ra), (b, rb)| deletion_order(a, *ra, b, *rb));
    ranked.into_iter().take(count).map(|(p, _)| p).collect()
}

/// A new pod of `rs` from its template, as Kubernetes' `GetPodFromTemplate`: the template's labels, annotations,
/// finalizers and spec, `generateName: <replicaset>-`, and a controller owner reference to the ReplicaSet.
pub fn new_pod(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    let mut prefix = format!("{}-", rs.metadata.name.as_deref().unwrap_or_default());
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
            namespace: rs.metadata.namespace.clone(),
            labels: template_meta.labels,
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![controller_ref(&rs.metadata, "ReplicaSet")]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}
