use serde_json::{json, Value};

use super::*;

fn object(value: Value) -> PartialObject {
    serde_json::from_value(value).unwrap()
}

fn owner_ref(kind: &str, name: &str, uid: &str, block: bool) -> Value {
    let api_version = match kind {
        "Deployment" | "ReplicaSet" => "apps/v1",
        "ClusterRole" => "rbac.authorization.k8s.io/v1",
        _ => "v1",
    };
    json!({"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "blockOwnerDeletion": block})
}

fn pod(name: &str, owners: Vec<Value>) -> PartialObject {
    object(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "demo", "uid": format!("{name}-uid"), "ownerReferences": owners}}))
}

fn deployment(name: &str, uid: &str) -> PartialObject {
    object(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "demo", "uid": uid}}))
}

fn deleting(mut o: PartialObject, finalizers: &[&str]) -> PartialObject {
    o.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
    ));
    o.metadata.finalizers = Some(finalizers.iter().map(|f| f.to_string()).collect());
    o
}

fn kind(k: &str) -> usize {
    RESOURCES.iter().position(|r| r.kind == k).unwrap()
}

fn item(k: &str, name: &str) -> Item {
    Item {
        kind: kind(k),
        key: ObjectKey::new("demo", name),
    }
}

use OwnerState::{Absent, Solid, WaitingForDependents as Waiting};

#[test]
fn owners_are_matched_by_uid_not_by_name() {
    let r: OwnerReference =
        serde_json::from_value(owner_ref("Deployment", "web", "d-1", true)).unwrap();
    let live = deployment("web", "d-1");
    assert_eq!(owner_state(&r, Some(&live), "demo"), Solid);
    let successor = deployment("web", "d-2");
    assert_eq!(
        owner_state(&r, Some(&successor), "demo"),
        Absent,
        "a new Deployment of the same name does not own the old one's pods"
    );
    assert_eq!(owner_state(&r, None, "demo"), Absent);
    let foreground = deleting(deployment("web", "d-1"), &["foregroundDeletion"]);
    assert_eq!(owner_state(&r, Some(&foreground), "demo"), Waiting);
    let orphaning = deleting(deployment("web", "d-1"), &["orphan"]);
    assert_eq!(owner_state(&r, Some(&orphaning), "demo"), Solid);
    let unknown: OwnerReference = serde_json::from_value(
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": "w-1"}),
    )
    .unwrap();
    assert_eq!(
        owner_state(&unknown, None, "demo"),
        Solid,
        "what cannot be looked up is not collected"
    );
    // A cluster-scoped dependent cannot have a namespaced owner.
    assert_eq!(owner_state(&r, Some(&live), ""), Absent);
}

#[test]
fn owner_references_resolve_in_the_dependents_namespace_or_cluster_wide() {
    let r: OwnerReference =
        serde_json::from_value(owner_ref("Deployment", "web", "d-1", true)).unwrap();
    assert_eq!(owner_item("demo", &r), Some(item("Deployment", "web")));
    let cluster: OwnerReference =
        serde_json::from_value(owner_ref("ClusterRole", "admin", "c-1", false)).unwrap();
    assert_eq!(
        owner_item("demo", &cluster),
        Some(Item {
            kind: kind("ClusterRole"),
            key: ObjectKey::new("", "admin")
        })
    );
}

#[test]
fn a_dependent_goes_with_its_last_owner_in_the_background() {
    let p = pod("p", vec![owner_ref("Deployment", "web", "d-1", true)]);
    assert_eq!(judge_dependent(&p, &[Solid], false), DependentAction::Keep);
    assert_eq!(
        judge_dependent(&p, &[Absent], false),
        DependentAction::Delete(Propagation::Background)
    );
}

#[test]
fn a_dependent_with_several_owners_survives_while_one_exists() {
    let cm = pod(
        "c",
        vec![
            owner_ref("ConfigMap", "a", "a-1", false),
            owner_ref("ConfigMap", "b", "b-1", false),
        ],
    );
    assert_eq!(
        judge_dependent(&cm, &[Absent, Solid], false),
        DependentAction::RemoveOwnerReferences(vec!["a-1".into()])
    );
    assert_eq!(
        judge_dependent(&cm, &[Solid, Waiting], false),
        DependentAction::RemoveOwnerReferences(vec!["b-1".into()]),
        "an owner waiting for it does not take it while another owner keeps it"
    );
    assert_eq!(
        judge_dependent(&cm, &[Absent, Absent], false),
        DependentAction::Delete(Propagation::Background)
    );
}

#[test]
fn foreground_deletion_reaches_down_through_dependents_that_have_dependents() {
    let p = pod("p", vec![owner_ref("Deployment", "web", "d-1", true)]);
    assert_eq!(
        judge_dependent(&p, &[Waiting], false),
        DependentAction::Delete(Propagation::Background)
    );
    assert_eq!(
        judge_dependent(&p, &[Waiting], true),
        DependentAction::Delete(Propagation::Foreground),
        "with dependents of its own it is deleted in the foreground, so its owner waits for those too"
    );
}

#[test]
fn a_dependent_being_deleted_is_left_to_its_deletion() {
    let going = deleting(
        pod("p", vec![owner_ref("Deployment", "web", "d-1", true)]),
        &[],
    );
    assert_eq!(
        judge_dependent(&going, &[Absent], false),
        DependentAction::Keep
    );
    let orphaning = deleting(
        pod("p", vec![owner_ref("Deployment", "web", "d-1", true)]),
        &["orphan"],
    );
    assert_eq!(
        judge_dependent(&orphaning, &[Absent], false),
        DependentAction::Keep
    );
}

#[test]
fn a_dependent_keeps_the_propagation_its_own_finalizers_ask_for() {
    let mut p = pod("p", vec![owner_ref("Deployment", "web", "d-1", true)]);
    p.metadata.finalizers = Some(vec!["orphan".into()]);
    assert_eq!(
        judge_dependent(&p, &[Absent], false),
        DependentAction::Delete(Propagation::Orphan)
    );
    p.metadata.finalizers = Some(vec!["foregroundDeletion".into()]);
    assert_eq!(
        judge_dependent(&p, &[Absent], false),
        DependentAction::Delete(Propagation::Foreground)
    );
}

#[test]
fn objects_without_owners_are_never_collected() {
    let lone = pod("p", vec![]);
    assert_eq!(judge_dependent(&lone, &[], false), DependentAction::Keep);
    let p = pod("p", vec![owner_ref("Deployment", "web", "d-1", true)]);
    assert_eq!(
        judge_dependent(&p, &[], false),
        DependentAction::Keep,
        "states that do not match the references decide nothing"
    );
}

fn dependent(name: &str, blocks: bool, deleting: bool) -> Dependent {
    Dependent {
        item: item("Pod", name),
        blocks,
        deleting,
    }
}

#[test]
fn an_orphaning_owner_strips_every_dependent_then_drops_its_finalizer() {
    let owner = deleting(deployment("web", "d-1"), &["orphan"]);
    let deps = [dependent("a", true, false), dependent("b", false, true)];
    assert_eq!(
        finalize_owner(&owner, &deps),
        vec![
            OwnerAction::Orphan(item("Pod", "a")),
            OwnerAction::Orphan(item("Pod", "b")),
            OwnerAction::RemoveFinalizer("orphan"),
        ]
    );
    assert_eq!(
        finalize_owner(&owner, &[]),
        vec![OwnerAction::RemoveFinalizer("orphan")]
    );
}

#[test]
fn a_foreground_owner_waits_for_its_blocking_dependents() {
    let owner = deleting(deployment("web", "d-1"), &["foregroundDeletion"]);
    let deps = [
        dependent("a", true, false),
        dependent("b", true, true),
        dependent("c", false, false),
    ];
    assert_eq!(
        finalize_owner(&owner, &deps),
        vec![
            OwnerAction::Collect(item("Pod", "a")),
            OwnerAction::Collect(item("Pod", "c")),
        ],
        "every dependent not yet going is collected; b is already going"
    );
    assert_eq!(
        finalize_owner(&owner, &[dependent("b", true, true)]),
        vec![],
        "a blocking dependent still terminating holds the owner"
    );
    assert_eq!(
        finalize_owner(&owner, &[dependent("c", false, false)]),
        vec![OwnerAction::RemoveFinalizer("foregroundDeletion")],
        "dependents that do not block do not hold the owner"
    );
}

#[test]
fn owners_not_awaiting_the_collector_need_nothing() {
    let live = deployment("web", "d-1");
    assert_eq!(
        finalize_owner(&live, &[dependent("a", true, false)]),
        vec![]
    );
    let held = deleting(deployment("web", "d-1"), &["example.com/hold"]);
    assert!(!held.awaits_collector());
    assert_eq!(
        finalize_owner(&held, &[dependent("a", true, false)]),
        vec![]
    );
}

#[test]
fn dependents_are_found_by_the_owners_uid() {
    let p = pod(
        "p",
        vec![
            owner_ref("Deployment", "web", "d-1", true),
            owner_ref("ConfigMap", "c", "c-1", false),
        ],
    );
    assert_eq!(
        Dependent::of(kind("Pod"), &p, "d-1"),
        Some(dependent("p", true, false))
    );
    assert_eq!(
        Dependent::of(kind("Pod"), &p, "c-1"),
        Some(dependent("p", false, false))
    );
    assert_eq!(Dependent::of(kind("Pod"), &p, "other"), None);
}

#[test]
fn the_cache_keeps_only_what_the_collector_reads() {
    let o = object(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "demo", "annotations": {"big": "x"},
                     "managedFields": [{"manager": "kubectl"}]},
        "data": {"k": "v"}}));
    assert_eq!(o.kind, "ConfigMap");
    assert_eq!(o.api_version, "v1");
    assert!(o.metadata.annotations.is_none());
    assert!(o.metadata.managed_fields.is_none());
    assert_eq!(o.key(), ObjectKey::new("demo", "c"));
    assert_eq!(kind_index("v1", "ConfigMap"), Some(kind("ConfigMap")));
    assert_eq!(kind_index("apps/v1beta1", "Deployment"), None);
}
