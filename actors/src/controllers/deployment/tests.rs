//! Tests of the deployment core: exact actions for creating, rolling, recreating, pausing, scaling, rolling back
//! and cleaning up ReplicaSets, and the status conditions.

use std::collections::BTreeMap;

use super::replicasets::{template_hash, REVISION, REVISION_HISTORY};
use super::rollout::fenceposts;
use super::*;
use k8s_openapi::api::apps::v1::DeploymentCondition;
use navarch_bus::api::meta::parse_time;
use serde_json::{json, Value};

fn now() -> DateTime<Utc> {
    parse_time("2026-11-27T12:00:00Z").unwrap()
}

fn template(argv: &[&str]) -> Value {
    json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"restartPolicy": "Always",
                 "containers": [{"name": "main", "image": "busybox", "command": argv}]}
    })
}

const V1: [&str; 2] = ["sleep", "1"];
const V2: [&str; 2] = ["sleep", "2"];
const V3: [&str; 2] = ["sleep", "3"];

fn deployment_value(replicas: i32, argv: &[&str]) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "demo", "uid": "d-uid", "generation": 1,
                     "annotations": {"note": "copied"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "template": template(argv)
        }
    })
}

fn deployment(replicas: i32, argv: &[&str]) -> Deployment {
    serde_json::from_value(deployment_value(replicas, argv)).unwrap()
}

fn hash(argv: &[&str]) -> String {
    template_hash(&serde_json::from_value(template(argv)).unwrap(), None)
}

/// A ReplicaSet of the Deployment for template `argv`: `replicas` wanted, `available` of them running and
/// available, at `revision`, created at `created`.
fn rs(argv: &[&str], replicas: i32, available: i32, revision: i64, created: &str) -> ReplicaSet {
    let h = hash(argv);
    let mut t = template(argv);
    t["metadata"]["labels"]["pod-template-hash"] = json!(h);
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": format!("web-{h}"), "namespace": "demo", "uid": format!("rs-{h}"), "resourceVersion": "7",
            "generation": 1, "creationTimestamp": created,
            "labels": {"app": "web", "pod-template-hash": h},
            "annotations": {"note": "copied", REVISION: revision.to_string(),
                            "deployment.kubernetes.io/desired-replicas": "4",
                            "deployment.kubernetes.io/max-replicas": "5"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-uid",
                                 "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web", "pod-template-hash": h}},
                 "template": t},
        "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available,
                   "observedGeneration": 1}
    }))
    .unwrap()
}

fn scaled(mut rs: ReplicaSet, to: i32, desired: i32, max: i32) -> ReplicaSet {
    rs.spec.as_mut().unwrap().replicas = Some(to);
    let a = rs.metadata.annotations.as_mut().unwrap();
    a.insert(
        "deployment.kubernetes.io/desired-replicas".into(),
        desired.to_string(),
    );
    a.insert(
        "deployment.kubernetes.io/max-replicas".into(),
        max.to_string(),
    );
    rs
}

fn update(rs: ReplicaSet, from: i32) -> Action {
    Action::UpdateReplicaSet {
        replica_set: Box::new(rs),
        from,
    }
}

fn without_status(plan: &Plan) -> Vec<Action> {
    plan.actions
        .iter()
        .filter(|a| !matches!(a, Action::UpdateStatus(_)))
        .cloned()
        .collect()
}

fn status_of(plan: &Plan) -> DeploymentStatus {
    plan.actions
        .iter()
        .find_map(|a| match a {
            Action::UpdateStatus(s) => Some((**s).clone()),
            _ => None,
        })
        .expect("a status update")
}

fn condition(s: &DeploymentStatus, type_: &str) -> DeploymentCondition {
    s.conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .cloned()
        .unwrap_or_else(|| panic!("no {type_} condition in {s:?}"))
}

fn reasons(s: &DeploymentStatus) -> (String, String) {
    let r = |t| condition(s, t).reason.unwrap_or_default();
    (r("Available"), r("Progressing"))
}

fn plan(d: &Deployment, rses: &[ReplicaSet]) -> Plan {
    let refs: Vec<&ReplicaSet> = rses.iter().collect();
    reconcile(d, &refs, &[], now())
}

/// `d` with the status its plan writes, and revision annotation.
fn settled(mut d: Deployment, p: &Plan) -> Deployment {
    if let Some(Action::UpdateStatus(s)) = p.actions.last() {
        d.status = Some((**s).clone());
    }
    for a in &p.actions {
        if let Action::SetRevision(r) = a {
            d.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(REVISION.into(), r.clone());
        }
    }
    d
}

#[test]
fn surge_rounds_up_unavailable_down_and_both_zero_is_one_unavailable() {
    let mut d = deployment(10, &V1);
    assert_eq!(fenceposts(&d, 10), (3, 2));
    assert_eq!(fenceposts(&d, 1), (1, 0));
    let rolling = d.spec.as_mut().unwrap().strategy.as_mut().unwrap();
    rolling.rolling_update =
        serde_json::from_value(json!({"maxSurge": 0, "maxUnavailable": "0%"})).unwrap();
    assert_eq!(fenceposts(&d, 10), (0, 1));
    let rolling = d.spec.as_mut().unwrap().strategy.as_mut().unwrap();
    rolling.rolling_update =
        serde_json::from_value(json!({"maxSurge": 2, "maxUnavailable": "50%"})).unwrap();
    assert_eq!(fenceposts(&d, 5), (2, 2));
}

#[test]
fn a_new_deployment_creates_its_replica_set_at_revision_1() {
    let d = deployment(3, &V1);
    let h = hash(&V1);
    let p = plan(&d, &[]);
    let mut t = template(&V1);
    t["metadata"]["labels"]["pod-template-hash"] = json!(h);
    let expected: ReplicaSet = serde_json::from_value(json!({
        "metadata": {
            "name": format!("web-{h}"), "namespace": "demo",
            "labels": {"app": "web", "pod-template-hash": h},
            "annotations": {"note": "copied", REVISION: "1",
                            "deployment.kubernetes.io/desired-replicas": "3",
                            "deployment.kubernetes.io/max-replicas": "4"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-uid",
                                 "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": h}},
                 "template": t}
    }))
    .unwrap();
    assert_eq!(
        without_status(&p),
        vec![
            Action::CreateReplicaSet(Box::new(expected)),
            Action::SetRevision("1".into())
        ]
    );
    let s = status_of(&p);
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!((s.replicas, s.unavailable_replicas), (None, Some(3)));
    assert_eq!(
        reasons(&s),
        (
            "MinimumReplicasUnavailable".into(),
            "NewReplicaSetCreated".into()
        )
    );
    assert_eq!(
        condition(&s, "Progressing").message.as_deref(),
        Some(format!("Created new replica set \"web-{h}\"").as_str())
    );
    assert_eq!(p.requeue_after, Some(Duration::from_secs(601)));
}

#[test]
fn a_complete_deployment_reports_success_once_then_does_nothing() {
    let d = deployment(4, &V1);
    let mut d = settled(d.clone(), &plan(&d, &[]));
    d.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(REVISION.into(), "1".into());
    let rses = [rs(&V1, 4, 4, 1, "2026-11-27T10:00:00Z")];
    let p = plan(&d, &rses);
    assert_eq!(without_status(&p), vec![]);
    let s = status_of(&p);
    assert_eq!(
        (
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas,
            s.unavailable_replicas
        ),
        (Some(4), Some(4), Some(4), Some(4), None)
    );
    assert_eq!(
        reasons(&s),
        (
            "MinimumReplicasAvailable".into(),
            "NewReplicaSetAvailable".into()
        )
    );
    assert_eq!(p.requeue_after, None);
    let d = settled(d, &p);
    assert_eq!(plan(&d, &rses), Plan::default());
}

#[test]
fn a_rolling_update_surges_one_then_scales_old_down_within_max_unavailable() {
    // 4 replicas, 25%: one more than 4 at most, at least 3 available.
    let old = rs(&V1, 4, 4, 1, "2026-11-27T10:00:00Z");
    let d = deployment(4, &V2);
    let p = plan(&d, std::slice::from_ref(&old));
    let actions = without_status(&p);
    let Action::CreateReplicaSet(new) = &actions[0] else {
        panic!("{actions:?}")
    };
    assert_eq!(new.metadata.name, Some(format!("web-{}", hash(&V2))));
    assert_eq!(new.spec.as_ref().unwrap().replicas, Some(1));
    assert_eq!(new.metadata.annotations.as_ref().unwrap()[REVISION], "2");
    assert_eq!(
        actions[1..],
        [
            Action::SetRevision("2".into()),
            update(scaled(old.clone(), 3, 4, 5), 4)
        ]
    );

    // The new pod is not available yet: one more new (5 in all), no old one goes.
    let new = rs(&V2, 1, 0, 2, "2026-11-27T11:00:00Z");
    let old = rs(&V1, 3, 3, 1, "2026-11-27T10:00:00Z");
    let p = plan(&d, &[old.clone(), new.clone()]);
    assert_eq!(
        without_status(&p),
        vec![
            Action::SetRevision("2".into()),
            update(scaled(new.clone(), 2, 4, 5), 1)
        ]
    );

    // Two new ones available: old ones go down to keep 3 available.
    let new = rs(&V2, 2, 2, 2, "2026-11-27T11:00:00Z");
    let p = plan(&d, &[old.clone(), new]);
    assert_eq!(
        without_status(&p),
        vec![
            Action::SetRevision("2".into()),
            update(scaled(old, 1, 4, 5), 3)
        ]
    );
    let s = status_of(&p);
    assert_eq!(
        (s.replicas, s.updated_replicas, s.available_replicas),
        (Some(5), Some(2), Some(5))
    );
}

#[test]
fn new_pods_that_never_get_ready_stop_the_rollout_until_the_deadline() {
    let mut d = deployment(4, &V2);
    d.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(REVISION.into(), "2".into());
    // Progress last seen 601 s ago.
    d.status = Some(serde_json::from_value(json!({
        "observedGeneration": 1, "replicas": 5, "updatedReplicas": 2, "readyReplicas": 3,
        "availableReplicas": 3, "unavailableReplicas": 2,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability.",
             "lastUpdateTime": "2026-11-27T11:00:00Z", "lastTransitionTime": "2026-11-27T11:00:00Z"},
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
             "message": "ReplicaSet \"web-x\" is progressing.",
             "lastUpdateTime": "2026-11-27T11:49:59Z", "lastTransitionTime": "2026-11-27T11:00:00Z"}
        ]
    }))
    .unwrap());
    let rses = [
        rs(&V1, 3, 3, 1, "2026-11-27T10:00:00Z"),
        rs(&V2, 2, 0, 2, "2026-11-27T11:00:00Z"),
    ];
    let p = plan(&d, &rses);
    assert_eq!(
        without_status(&p),
        vec![],
        "no more old pods go, no more new ones come"
    );
    let s = status_of(&p);
    let progressing = condition(&s, "Progressing");
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_deref()),
        ("False", Some("ProgressDeadlineExceeded"))
    );
    assert_eq!(
        progressing.message,
        Some(format!(
            "ReplicaSet \"web-{}\" has timed out progressing.",
            hash(&V2)
        ))
    );
    assert_eq!(p.requeue_after, None);

    // Before the deadline: nothing changes, and a look is due when it passes.
    let mut early = d.clone();
    let conditions = early.status.as_mut().unwrap().conditions.as_mut().unwrap();
    conditions[1].last_update_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        parse_time("2026-11-27T11:55:00Z").unwrap(),
    ));
    let p = plan(&early, &rses);
    assert_eq!(p.actions, vec![]);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(301)));
}

#[test]
fn recreate_scales_old_to_zero_waits_for_their_pods_then_creates_the_new() {
    let mut v = deployment_value(4, &V2);
    v["spec"]["strategy"] = json!({"type": "Recreate"});
    let d: Deployment = serde_json::from_value(v).unwrap();
    let old = rs(&V1, 4, 4, 1, "2026-11-27T10:00:00Z");
    let p = plan(&d, std::slice::from_ref(&old));
    assert_eq!(without_status(&p), vec![update(scaled(old, 0, 4, 4), 4)]);

    // Scaled to 0 but a pod of it is still terminating: wait.
    let old = {
        let mut r = scaled(rs(&V1, 0, 0, 1, "2026-11-27T10:00:00Z"), 0, 4, 4);
        r.status.as_mut().unwrap().replicas = 0;
        r
    };
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web-old-1", "namespace": "demo", "uid": "p1", "labels": {"app": "web"},
                     "deletionTimestamp": "2026-11-27T11:59:00Z",
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x",
                                          "uid": format!("rs-{}", hash(&V1)), "controller": true}]},
        "status": {"phase": "Running"}
    }))
    .unwrap();
    let p = reconcile(&d, &[&old], &[&pod], now());
    assert_eq!(without_status(&p), vec![]);

    // Gone: the new ReplicaSet comes with every replica at once.
    let p = plan(&d, &[old]);
    let actions = without_status(&p);
    let Action::CreateReplicaSet(new) = &actions[0] else {
        panic!("{actions:?}")
    };
    assert_eq!(new.spec.as_ref().unwrap().replicas, Some(4));
    assert_eq!(actions[1], Action::SetRevision("2".into()));
}

#[test]
fn a_paused_deployment_does_not_roll_out_but_scales() {
    let mut v = deployment_value(4, &V2);
    v["spec"]["paused"] = json!(true);
    let d: Deployment = serde_json::from_value(v).unwrap();
    let old = rs(&V1, 4, 4, 1, "2026-11-27T10:00:00Z");
    let p = plan(&d, std::slice::from_ref(&old));
    assert_eq!(without_status(&p), vec![]);
    let progressing = condition(&status_of(&p), "Progressing");
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_deref()),
        ("Unknown", Some("DeploymentPaused"))
    );
    assert_eq!(p.requeue_after, None);

    let mut v = deployment_value(6, &V2);
    v["spec"]["paused"] = json!(true);
    let d: Deployment = serde_json::from_value(v).unwrap();
    let p = plan(&d, std::slice::from_ref(&old));
    assert_eq!(without_status(&p), vec![update(scaled(old, 6, 6, 8), 4)]);

    // Resumed, the rollout starts.
    let sized = scaled(rs(&V1, 6, 6, 1, "2026-11-27T10:00:00Z"), 6, 6, 8);
    let paused = settled(d.clone(), &plan(&d, std::slice::from_ref(&sized)));
    let mut resumed = paused.clone();
    resumed.spec.as_mut().unwrap().paused = None;
    let p = plan(&resumed, &[sized]);
    assert!(matches!(without_status(&p)[0], Action::CreateReplicaSet(_)));
    assert_eq!(
        reasons(&status_of(&p)),
        (
            "MinimumReplicasAvailable".into(),
            "NewReplicaSetCreated".into()
        )
    );
}

#[test]
fn scaling_during_a_rollout_is_proportional() {
    // 10 replicas (surge 3): old 8, new 5, both sized for max 13. Scaled to 20 (max 25): 12 more, spread 7 + 5.
    let mut old = rs(&V1, 8, 8, 1, "2026-11-27T10:00:00Z");
    let mut new = rs(&V2, 5, 0, 2, "2026-11-27T11:00:00Z");
    for r in [&mut old, &mut new] {
        let a = r.metadata.annotations.as_mut().unwrap();
        a.insert(
            "deployment.kubernetes.io/desired-replicas".into(),
            "10".into(),
        );
        a.insert("deployment.kubernetes.io/max-replicas".into(), "13".into());
    }
    let mut d = deployment(20, &V2);
    d.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(REVISION.into(), "2".into());
    let p = plan(&d, &[old.clone(), new.clone()]);
    assert_eq!(
        without_status(&p),
        vec![
            update(scaled(old, 15, 20, 25), 8),
            update(scaled(new, 10, 20, 25), 5),
        ]
    );
}

#[test]
fn rolling_back_reuses_the_old_replica_set_with_a_new_revision() {
    // Revision 1 (V1) was rolled out to revision 2 (V2); the template is V1 again.
    let mut d = deployment(4, &V1);
    d.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(REVISION.into(), "2".into());
    let one = rs(&V1, 0, 0, 1, "2026-11-27T10:00:00Z");
    let two = rs(&V2, 4, 4, 2, "2026-11-27T11:00:00Z");
    let p = plan(&d, &[one.clone(), two.clone()]);
    let mut revived = one.clone();
    let a = revived.metadata.annotations.as_mut().unwrap();
    a.insert(REVISION.into(), "3".into());
    a.insert(REVISION_HISTORY.into(), "1".into());
    assert_eq!(
        without_status(&p),
        vec![
            update(scaled(revived.clone(), 1, 4, 5), 0),
            Action::SetRevision("3".into()),
        ]
    );
    // Once it shows revision 3, it is scaled up like any new ReplicaSet: no other is created.
    let p = plan(&d, &[revived.clone(), two]);
    assert_eq!(
        without_status(&p),
        vec![
            Action::SetRevision("3".into()),
            update(scaled(revived, 1, 4, 5), 0)
        ]
    );
}

#[test]
fn old_replica_sets_beyond_the_history_limit_are_deleted_once_complete() {
    let mut v = deployment_value(4, &V3);
    v["spec"]["revisionHistoryLimit"] = json!(1);
    v["metadata"]["annotations"][REVISION] = json!("3");
    let d: Deployment = serde_json::from_value(v).unwrap();
    let rses = [
        rs(&V1, 0, 0, 1, "2026-11-27T09:00:00Z"),
        rs(&V2, 0, 0, 2, "2026-11-27T10:00:00Z"),
        rs(&V3, 4, 4, 3, "2026-11-27T11:00:00Z"),
    ];
    let p = plan(&d, &rses);
    assert_eq!(
        without_status(&p),
        vec![Action::DeleteReplicaSet {
            key: ObjectKey::new("demo", format!("web-{}", hash(&V1))),
            uid: format!("rs-{}", hash(&V1)),
        }]
    );
}

#[test]
fn a_name_taken_by_another_replica_set_counts_a_collision() {
    let d = deployment(2, &V1);
    let mut squatter = rs(&V2, 1, 1, 1, "2026-11-27T09:00:00Z");
    squatter.metadata.name = Some(format!("web-{}", hash(&V1)));
    squatter.metadata.owner_references = None;
    squatter.metadata.labels = Some(BTreeMap::from([("app".into(), "other".into())]));
    let p = plan(&d, &[squatter]);
    assert_eq!(without_status(&p), vec![]);
    assert_eq!(status_of(&p).collision_count, Some(1));
    // The next hash is another one.
    assert_ne!(
        template_hash(&d.spec.as_ref().unwrap().template, Some(1)),
        hash(&V1)
    );
}

#[test]
fn orphans_are_adopted_and_non_matching_ones_released() {
    let d = deployment(4, &V1);
    let mut orphan = rs(&V1, 4, 4, 1, "2026-11-27T09:00:00Z");
    orphan.metadata.owner_references = None;
    let mut stray = rs(&V2, 0, 0, 2, "2026-11-27T10:00:00Z");
    stray.metadata.labels = Some(BTreeMap::from([("app".into(), "other".into())]));
    let p = plan(&d, &[orphan.clone(), stray]);
    let actions = without_status(&p);
    assert_eq!(
        actions[..2],
        [
            Action::AdoptReplicaSet {
                key: ObjectKey::new("demo", format!("web-{}", hash(&V1))),
                uid: format!("rs-{}", hash(&V1)),
            },
            Action::ReleaseReplicaSet {
                key: ObjectKey::new("demo", format!("web-{}", hash(&V2))),
                uid: format!("rs-{}", hash(&V2)),
            },
        ]
    );
    // The adopted one is the new ReplicaSet: nothing is created.
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::CreateReplicaSet(_))));
}

#[test]
fn a_deployment_being_deleted_only_reports_status() {
    let mut v = deployment_value(4, &V2);
    v["metadata"]["deletionTimestamp"] = json!("2026-11-27T11:59:00Z");
    let d: Deployment = serde_json::from_value(v).unwrap();
    let p = plan(&d, &[rs(&V1, 4, 4, 1, "2026-11-27T10:00:00Z")]);
    assert_eq!(without_status(&p), vec![]);
    assert_eq!(status_of(&p).replicas, Some(4));
}
