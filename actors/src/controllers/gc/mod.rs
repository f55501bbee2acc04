//! The garbage collector: deletes objects whose owners are gone and carries out the `orphan` and
//! `foregroundDeletion` finalizers that a delete's propagation policy put on an owner, as kube-controller-manager's
//! garbage collector does. [`judge_dependent`] and [`finalize_owner`] decide; [`GarbageCollector`] watches every
//! kind and carries out.
//!
//! An owner reference names its owner by kind, name and uid, in the dependent's namespace (or cluster-wide for a
//! cluster-scoped owner kind). The owner is there only if an object of that kind and name exists *with that uid*: a
//! new object that took the name does not keep the dependents of the old one.

mod actor;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use navarch_bus::api::deletion::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};
use navarch_bus::api::{Propagation, ResourceInfo, RESOURCES};
use serde::Deserialize;

pub use actor::GarbageCollector;

use crate::informer::{Keyed, ObjectKey};

/// What the collector keeps of an object of any kind: its type and metadata, without the managed fields and
/// annotations (large, and never read here).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "RawObject")]
pub struct PartialObject {
    /// `apps/v1`, `v1`...
    pub api_version: String,
    /// `Deployment`, `Pod`...
    pub kind: String,
    /// The object's metadata.
    pub metadata: ObjectMeta,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawObject {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: ObjectMeta,
}

impl From<RawObject> for PartialObject {
    fn from(raw: RawObject) -> Self {
        let mut metadata = raw.metadata;
        metadata.managed_fields = None;
        metadata.annotations = None;
        Self {
            api_version: raw.api_version,
            kind: raw.kind,
            metadata,
        }
    }
}

impl Keyed for PartialObject {
    fn key(&self) -> ObjectKey {
        ObjectKey::of(&self.metadata)
    }
}

impl PartialObject {
    /// The object's owner references.
    pub fn owner_references(&self) -> &[OwnerReference] {
        self.metadata
            .owner_references
            .as_deref()
            .unwrap_or_default()
    }

    /// Whether `deletionTimestamp` is set.
    pub fn is_deleting(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }

    /// Whether it carries `finalizer`.
    pub fn has_finalizer(&self, finalizer: &str) -> bool {
        self.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|x| x == finalizer))
    }

    /// Whether it is being deleted and waits for the collector: to orphan or to delete its dependents.
    pub fn awaits_collector(&self) -> bool {
        self.is_deleting()
            && (self.has_finalizer(ORPHAN_FINALIZER) || self.has_finalizer(FOREGROUND_FINALIZER))
    }

    /// The uid ("" when missing).
    pub fn uid(&self) -> &str {
        self.metadata.uid.as_deref().unwrap_or_default()
    }
}

/// One object the collector looks at: a kind (its index in [`RESOURCES`]) and a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Item {
    /// Index of the kind in [`RESOURCES`].
    pub kind: usize,
    /// Namespace and name.
    pub key: ObjectKey,
}

impl Item {
    /// The kind.
    pub fn info(&self) -> &'static ResourceInfo {
        &RESOURCES[self.kind]
    }
}

/// The index in [`RESOURCES`] of the kind `api_version`/`kind`, if Navarch serves it.
pub fn kind_index(api_version: &str, kind: &str) -> Option<usize> {
    RESOURCES
        .iter()
        .position(|r| r.kind == kind && r.api_version() == api_version)
}

/// The object an owner reference of a dependent in `namespace` ("" for cluster-scoped) names, if it can name one:
/// None for a kind Navarch does not serve. A namespaced owner of a cluster-scoped dependent cannot exist; it is
/// reported as an item with an empty namespace that no object has.
pub fn owner_item(namespace: &str, reference: &OwnerReference) -> Option<Item> {
    let kind = kind_index(&reference.api_version, &reference.kind)?;
    let namespace = if RESOURCES[kind].namespaced {
        namespace
    } else {
        ""
    };
    Some(Item {
        kind,
        key: ObjectKey::new(namespace, reference.name.clone()),
    })
}

/// What the collector found behind one owner reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// The owner exists (that kind, name and uid) and keeps its dependents. Also said of an owner of a kind Navarch
    /// does not serve: what cannot be looked up is not collected.
    Solid,
    /// No object of that kind and name has that uid (or the reference cannot resolve: a namespaced owner of a
    /// cluster-scoped dependent).
    Absent,
    /// The owner is being deleted in the foreground: it waits for its dependents to go.
    WaitingForDependents,
}

/// The state of the owner `found` (the object of the reference's kind and name, if any) for `reference`.
pub fn owner_state(
    reference: &OwnerReference,
    found: Option<&PartialObject>,
    dependent_namespace: &str,
) -> OwnerState {
    let Some(item) = owner_item(dependent_namespace, reference) else {
        return OwnerState::Solid;
    };
    if dependent_namespace.is_empty() && item.info().namespaced {
        return OwnerState::Absent;
    }
    match found {
        Some(owner) if owner.uid() == reference.uid => {
            if owner.is_deleting() && owner.has_finalizer(FOREGROUND_FINALIZER) {
                OwnerState::WaitingForDependents
            } else {
                OwnerState::Solid
            }
        }
        _ => OwnerState::Absent,
    }
}

/// What to do with a dependent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependentAction {
    /// Nothing: it has an owner, or is already going.
    Keep,
    /// It keeps a live owner but loses its references to these owner uids (gone, or waiting for it to go).
    RemoveOwnerReferences(Vec<String>),
    /// Delete it with this propagation.
    Delete(Propagation),
}

/// What `dependent` needs given the state of the owner behind each of its references (in order), and whether it has
/// dependents of its own. As kube-controller-manager's `attemptToDeleteItem`:
/// - any solid owner keeps it, and it sheds the references to absent and waiting owners;
/// - with no solid owner it is deleted: in the foreground when an owner waits for it and it has dependents itself
///   (so the wait covers them too), else as its own GC finalizers say (orphan, foreground), else in the background.
///
/// An object already being deleted is left alone unless it is itself deleting its dependents.
pub fn judge_dependent(
    dependent: &PartialObject,
    owners: &[OwnerState],
    has_dependents: bool,
) -> DependentAction {
    let references = dependent.owner_references();
    if references.is_empty() || owners.len() != references.len() {
        return DependentAction::Keep;
    }
    if dependent.is_deleting() && !dependent.has_finalizer(FOREGROUND_FINALIZER) {
        return DependentAction::Keep;
    }
    let solid = owners.contains(&OwnerState::Solid);
    let waiting = owners.contains(&OwnerState::WaitingForDependents);
    if solid {
        let shed: Vec<String> = references
            .iter()
            .zip(owners)
            .filter(|(_, s)| **s != OwnerState::Solid)
            .map(|(r, _)| r.uid.clone())
            .collect();
        return if shed.is_empty() {
            DependentAction::Keep
        } else {
            DependentAction::RemoveOwnerReferences(shed)
        };
    }
    if dependent.is_deleting() {
        // Already deleting its own dependents: nothing to add.
        return DependentAction::Keep;
    }
    if waiting && has_dependents {
        return DependentAction::Delete(Propagation::Foreground);
    }
    DependentAction::Delete(if dependent.has_finalizer(ORPHAN_FINALIZER) {
        Propagation::Orphan
    } else if dependent.has_finalizer(FOREGROUND_FINALIZER) {
        Propagation::Foreground
    } else {
        Propagation::Background
    })
}

/// A dependent of an owner being deleted, as the owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependent {
    /// Which object.
    pub item: Item,
    /// Its reference to the owner has `blockOwnerDeletion: true`.
    pub blocks: bool,
    /// It is being deleted already.
    pub deleting: bool,
}

impl Dependent {
    /// `object` (of kind `kind`) as a dependent of the owner with `owner_uid`; None if it does not reference it.
    pub fn of(kind: usize, object: &PartialObject, owner_uid: &str) -> Option<Self> {
        let reference = object
            .owner_references()
            .iter()
            .find(|r| r.uid == owner_uid)?;
        Some(Self {
            item: Item {
                kind,
                key: object.key(),
            },
            blocks: reference.block_owner_deletion == Some(true),
            deleting: object.is_deleting(),
        })
    }
}

/// What to do for an owner being deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerAction {
    /// Remove the reference to the owner from this dependent.
    Orphan(Item),
    /// Look at this dependent again: its owner waits for it to go.
    Collect(Item),
    /// Remove this finalizer from the owner (once everything before it is done).
    RemoveFinalizer(&'static str),
}

/// What `owner` (being deleted) needs given its current `dependents`:
/// - with `orphan`: strip its reference from every dependent, then drop the finalizer;
/// - with `foregroundDeletion`: once no dependent blocks it (`blockOwnerDeletion`), drop the finalizer; until then
///   have every dependent not yet going collected.
///
/// Nothing for an owner not being deleted or without these finalizers.
pub fn finalize_owner(owner: &PartialObject, dependents: &[Dependent]) -> Vec<OwnerAction> {
    if !owner.is_deleting() {
        return vec![];
    }
    if owner.has_finalizer(ORPHAN_FINALIZER) {
        let mut actions: Vec<OwnerAction> = dependents
            .iter()
            .map(|d| OwnerAction::Orphan(d.item.clone()))
            .collect();
        actions.push(OwnerAction::RemoveFinalizer(ORPHAN_FINALIZER));
        return actions;
    }
    if owner.has_finalizer(FOREGROUND_FINALIZER) {
        if !dependents.iter().any(|d| d.blocks) {
            return vec![OwnerAction::RemoveFinalizer(FOREGROUND_FINALIZER)];
        }
        return dependents
            .iter()
            .filter(|d| !d.deleting)
            .map(|d| OwnerAction::Collect(d.item.clone()))
            .collect();
    }
    vec![]
}

#[cfg(test)]
mod tests;
