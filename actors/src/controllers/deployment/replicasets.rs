//! What a Deployment knows about ReplicaSets, as Kubernetes' `deployment/util`: the `pod-template-hash`, which
//! ReplicaSet is the new one, revisions and their annotations, which ReplicaSets it claims, and how to make a new
//! one from its template.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use navarch_bus::api::selector_matches as matches;

use super::Action;
use crate::controllers::replicaset::pods::{controlled_by, controller_of, controller_ref, labels};
use crate::informer::ObjectKey;

/// The label that ties a ReplicaSet and its pods to one version of its Deployment's template.
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// The revision of a ReplicaSet (and, copied, of its Deployment).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a ReplicaSet had, when a rollback made it the new one again.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's `spec.replicas` when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's `spec.replicas + maxSurge` when the ReplicaSet was last scaled (for proportional scaling).
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Longest `revision-history` annotation, in characters (Kubernetes' `maxRevHistoryLengthInChars`).
const MAX_REVISION_HISTORY: usize = 2000;

/// Annotations of the Deployment that are not copied to its ReplicaSets (Kubernetes' `annotationsToSkip`).
const NOT_COPIED: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// Kubernetes' alphabet for generated names (no vowels, no look-alikes).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// 32-bit FNV-1a over several byte strings.
fn fnv1a(parts: &[&[u8]]) -> u32 {
    parts
        .iter()
        .flat_map(|p| p.iter())
        .fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
        })
}

/// The `pod-template-hash` of a template, as Kubernetes' `ComputeHash`: FNV-1a of the template (its JSON form here,
/// Go's object dump there) followed by `collisionCount` when set, spelled in the safe alphabet
/// (`rand.SafeEncodeString(fmt.Sprint(hash))`).
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    let count = collision_count.map(|c| c.to_le_bytes());
    let hash = match &count {
        Some(c) => fnv1a(&[&json, c]),
        None => fnv1a(&[&json]),
    };
    hash.to_string()
        .bytes()
        .map(|b| SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()] as char)
        .collect()
}

fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(TEMPLATE_HASH_LABEL);
        if labels.is_empty() {
            if let Some(m) = t.metadata.as_mut() {
                m.labels = None;
            }
        }
    }
    t
}

/// Whether two templates are the same but for the `pod-template-hash` label (Kubernetes' `EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

/// `spec.replicas` of a ReplicaSet (defaulted to 1 by the API).
pub fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `status.replicas`.
pub fn actual(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

/// `status.availableReplicas`.
pub fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// `status.readyReplicas`.
pub fn ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// An annotation holding a number (None: absent or not a number).
pub fn number_annotation(rs: &ReplicaSet, key: &str) -> Option<i64> {
    annotation(&rs.metadata, key)?.parse().ok()
}

/// The ReplicaSet's revision (0 when it has none).
pub fn revision(rs: &ReplicaSet) -> i64 {
    number_annotation(rs, REVISION).unwrap_or(0)
}

/// Orders ReplicaSets oldest first (name breaks ties), as `ReplicaSetsByCreationTimestamp`.
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let created = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    created(a)
        .cmp(&created(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Orders ReplicaSets by revision, lowest first (age breaks ties), as `ReplicaSetsByRevision`.
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    revision(a)
        .cmp(&revision(b))
        .then_with(|| by_creation(a, b))
}

/// The index of the Deployment's new ReplicaSet among `replica_sets`: the oldest whose template is the
/// Deployment's (Kubernetes' `FindNewReplicaSet`).
pub fn find_new(d: &Deployment, replica_sets: &[ReplicaSet]) -> Option<usize> {
    let template = &d.spec.as_ref()?.template;
    let mut candidates: Vec<usize> = (0..replica_sets.len())
        .filter(|&i| {
            replica_sets[i]
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, template))
        })
        .collect();
    candidates.sort_by(|&a, &b| by_creation(&replica_sets[a], &replica_sets[b]));
    candidates.first().copied()
}

/// Sets the `desired-replicas` and `max-replicas` annotations; whether they changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let value = value.to_string();
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.into(), value);
            changed = true;
        }
    }
    changed
}

/// Brings the new ReplicaSet's annotations up to date (Kubernetes' `SetNewReplicaSetAnnotations`): the
/// Deployment's own annotations (but the skipped ones), the revision raised to `new_revision` (the old one joins
/// `revision-history`: a rollback), and for a ReplicaSet about to be created the replica annotations. Whether
/// anything changed.
pub fn set_new_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    (desired, max): (i32, i32),
) -> bool {
    let mut changed = false;
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if NOT_COPIED.contains(&k.as_str()) || annotations.get(k) == Some(v) {
            continue;
        }
        annotations.insert(k.clone(), v.clone());
        changed = true;
    }
    let old = annotations.get(REVISION).cloned();
    let old_number = match old.as_deref().map(str::parse::<i64>) {
        Some(Ok(n)) => n,
        // A revision that is not a number is left alone, as Kubernetes does.
        Some(Err(_)) => return changed,
        None => 0,
    };
    if old_number < new_revision {
        annotations.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            let history = annotations
                .get(REVISION_HISTORY)
                .cloned()
                .unwrap_or_default();
            let mut revisions: Vec<&str> = history.split(',').filter(|r| !r.is_empty()).collect();
            revisions.push(&old);
            while revisions.iter().map(|r| r.len() + 1).sum::<usize>() - 1 > MAX_REVISION_HISTORY
                && revisions.len() > 1
            {
                revisions.remove(0);
            }
            annotations.insert(REVISION_HISTORY.into(), revisions.join(","));
        }
    }
    if !exists && set_replicas_annotations(rs, desired, max) {
        changed = true;
    }
    changed
}

/// A new ReplicaSet for `d`'s template (Kubernetes' `getNewReplicaSet`): named `<deployment>-<hash>`, labelled and
/// selecting with `pod-template-hash`, controlled by the Deployment, with `minReadySeconds` and `replicas`. Its
/// annotations are [`set_new_annotations`]'s business.
pub fn new_replica_set(d: &Deployment, hash: &str, replicas: i32) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let mut template = spec.template;
    let mut template_labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    template_labels.insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels = Some(template_labels.clone());
    let mut selector = spec.selector;
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-{hash}",
                d.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: d.metadata.namespace.clone(),
            owner_references: Some(vec![controller_ref(&d.metadata, "Deployment")]),
            labels: Some(template_labels),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

fn key_uid(meta: &ObjectMeta) -> (ObjectKey, String) {
    (ObjectKey::of(meta), meta.uid.clone().unwrap_or_default())
}

fn selects(selector: &LabelSelector, meta: &ObjectMeta) -> bool {
    matches(selector, &labels(meta))
}

/// The ReplicaSets `d` controls once its claims are carried out, and the claims (Kubernetes'
/// `ClaimReplicaSets`): an orphan it selects is adopted unless either is being deleted; one it controls but no
/// longer selects is released (left alone while the Deployment is being deleted).
pub fn claim(d: &Deployment, replica_sets: &[&ReplicaSet]) -> (Vec<ReplicaSet>, Vec<Action>) {
    let (Some(uid), Some(spec)) = (d.metadata.uid.as_deref(), &d.spec) else {
        return (vec![], vec![]);
    };
    let deleting = d.metadata.deletion_timestamp.is_some();
    let mut claimed = Vec::new();
    let mut actions = Vec::new();
    for rs in replica_sets {
        let selected = selects(&spec.selector, &rs.metadata);
        match controller_of(&rs.metadata) {
            Some(_) if controlled_by(&rs.metadata, uid) => {
                if selected {
                    claimed.push((*rs).clone());
                } else if !deleting {
                    let (key, uid) = key_uid(&rs.metadata);
                    actions.push(Action::ReleaseReplicaSet { key, uid });
                }
            }
            Some(_) => {}
            None if selected && !deleting && rs.metadata.deletion_timestamp.is_none() => {
                let (key, rs_uid) = key_uid(&rs.metadata);
                actions.push(Action::AdoptReplicaSet { key, uid: rs_uid });
                let mut adopted = (*rs).clone();
                adopted
                    .metadata
                    .owner_references
                    .get_or_insert_with(Vec::new)
                    .push(controller_ref(&d.metadata, "Deployment"));
                claimed.push(adopted);
            }
            None => {}
        }
    }
    (claimed, actions)
}
