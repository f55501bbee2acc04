//! Tests of the ReplicaSet core: exact actions for creation, deletion order, claims and status.

use super::*;
use navarch_bus::api::meta::parse_time;
use serde_json::{json, Value};

fn now() -> DateTime<Utc> {
    parse_time("2026-11-27T12:00:00Z").unwrap()
}

fn rs_value(replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-abc", "namespace": "demo", "uid": "rs-uid", "generation": 2,
                     "labels": {"app": "web", "pod-template-hash": "abc"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web", "pod-template-hash": "abc"}},
            "template": {
                "metadata": {"labels": {"app": "web", "pod-template-hash": "abc", "tier": "front"},
                             "annotations": {"note": "x"}},
                "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}
            }
        }
    })
}

fn replica_set(replicas: i32) -> ReplicaSet {
    serde_json::from_value(rs_value(replicas)).unwrap()
}

/// A pod of `rs-uid` unless changed: scheduled, Running, Ready since 11:00, created at 10:00.
struct P {
    name: &'static str,
    node: Option<&'static str>,
    phase: &'static str,
    ready_at: Option<&'static str>,
    created: &'static str,
    deleting: bool,
    owner: Option<&'static str>,
    labels: Value,
}

impl P {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            node: Some("n1"),
            phase: "Running",
            ready_at: Some("2026-11-27T11:00:00Z"),
            created: "2026-11-27T10:00:00Z",
            deleting: false,
            owner: Some("rs-uid"),
            labels: json!({"app": "web", "pod-template-hash": "abc", "tier": "front"}),
        }
    }

    fn build(self) -> Pod {
        let mut v = json!({
            "metadata": {"name": self.name, "namespace": "demo", "uid": format!("uid-{}", self.name),
                         "creationTimestamp": self.created, "labels": self.labels},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            "status": {"phase": self.phase, "conditions": []}
        });
        if let Some(owner) = self.owner {
            v["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "web-abc", "uid": owner, "controller": true, "blockOwnerDeletion": true}]);
        }
        if let Some(node) = self.node {
            v["spec"]["nodeName"] = json!(node);
        }
        if let Some(at) = self.ready_at {
            v["status"]["conditions"] =
                json!([{"type": "Ready", "status": "True", "lastTransitionTime": at}]);
        }
        if self.deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-11-27T11:59:00Z");
        }
        serde_json::from_value(v).unwrap()
    }
}

fn deleted(name: &str) -> Action {
    Action::DeletePod {
        key: ObjectKey::new("demo", name),
        uid: format!("uid-{name}"),
    }
}

fn status_of(plan: &Plan) -> ReplicaSetStatus {
    plan.actions
        .iter()
        .find_map(|a| match a {
            Action::UpdateStatus(s) => Some((**s).clone()),
            _ => None,
        })
        .expect("a status update")
}

fn without_status(plan: &Plan) -> Vec<Action> {
    plan.actions
        .iter()
        .filter(|a| !matches!(a, Action::UpdateStatus(_)))
        .cloned()
        .collect()
}

#[test]
fn a_new_replica_set_creates_its_pods_from_the_template() {
    let rs = replica_set(3);
    let plan = reconcile(&rs, &[], now());
    let expected: Pod = serde_json::from_value(json!({
        "metadata": {
            "generateName": "web-abc-", "namespace": "demo",
            "labels": {"app": "web", "pod-template-hash": "abc", "tier": "front"},
            "annotations": {"note": "x"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "rs-uid",
                                 "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}
    }))
    .unwrap();
    assert_eq!(
        without_status(&plan),
        vec![Action::CreatePods {
            count: 3,
            pod: Box::new(expected)
        }]
    );
    assert_eq!(
        status_of(&plan),
        ReplicaSetStatus {
            replicas: 0,
            observed_generation: Some(2),
            ..Default::default()
        }
    );
    assert_eq!(plan.requeue_after, None);
}

#[test]
fn creation_starts_slow_and_doubles() {
    assert_eq!(slow_start(0), Vec::<usize>::new());
    assert_eq!(slow_start(1), vec![1]);
    assert_eq!(slow_start(10), vec![1, 2, 4, 3]);
    assert_eq!(slow_start(16), vec![1, 2, 4, 8, 1]);
    assert_eq!(slow_start(BURST).iter().sum::<usize>(), BURST);
    // One reconcile creates at most BURST pods.
    let plan = reconcile(&replica_set(100_000), &[], now());
    assert!(matches!(
        plan.actions[0],
        Action::CreatePods { count: BURST, .. }
    ));
}

#[test]
fn surplus_pods_go_unscheduled_pending_unready_then_newest_first() {
    let pods = [
        P {
            created: "2026-11-27T09:00:00Z",
            ..P::new("ready-old")
        }
        .build(),
        P {
            created: "2026-11-27T10:30:00Z",
            ..P::new("ready-new")
        }
        .build(),
        P {
            ready_at: None,
            ..P::new("unready")
        }
        .build(),
        P {
            phase: "Pending",
            ready_at: None,
            ..P::new("pending")
        }
        .build(),
        P {
            node: None,
            phase: "Pending",
            ready_at: None,
            ..P::new("unscheduled")
        }
        .build(),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let plan = reconcile(&replica_set(1), &refs, now());
    assert_eq!(
        without_status(&plan),
        vec![
            deleted("unscheduled"),
            deleted("pending"),
            deleted("unready"),
            deleted("ready-new")
        ]
    );
    let s = status_of(&plan);
    assert_eq!(
        (s.replicas, s.ready_replicas, s.available_replicas),
        (5, Some(2), Some(2))
    );
}

#[test]
fn pods_doubled_up_on_a_node_go_before_lone_ones() {
    let pods = [
        P {
            node: Some("a"),
            created: "2026-11-27T09:00:00Z",
            ..P::new("a1")
        }
        .build(),
        P {
            node: Some("a"),
            created: "2026-11-27T09:30:00Z",
            ..P::new("a2")
        }
        .build(),
        P {
            node: Some("b"),
            created: "2026-11-27T10:30:00Z",
            ..P::new("b1")
        }
        .build(),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let plan = reconcile(&replica_set(2), &refs, now());
    assert_eq!(without_status(&plan), vec![deleted("a2")]);
}

#[test]
fn orphans_are_adopted_strays_released_and_others_left_alone() {
    let pods = [
        P::new("mine").build(),
        P {
            owner: None,
            ..P::new("orphan")
        }
        .build(),
        P {
            labels: json!({"app": "other"}),
            ..P::new("stray")
        }
        .build(),
        P {
            owner: Some("someone-else"),
            ..P::new("theirs")
        }
        .build(),
        P {
            owner: None,
            labels: json!({"app": "other"}),
            ..P::new("unrelated")
        }
        .build(),
        // Terminating pods neither count nor get claimed: a replacement is made.
        P {
            deleting: true,
            ..P::new("leaving")
        }
        .build(),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let plan = reconcile(&replica_set(3), &refs, now());
    let actions = without_status(&plan);
    assert_eq!(
        actions[..2],
        [
            Action::AdoptPod {
                key: ObjectKey::new("demo", "orphan"),
                uid: "uid-orphan".into()
            },
            Action::ReleasePod {
                key: ObjectKey::new("demo", "stray"),
                uid: "uid-stray".into()
            },
        ]
    );
    assert!(matches!(actions[2], Action::CreatePods { count: 1, .. }));
    assert_eq!(actions.len(), 3);
    assert_eq!(status_of(&plan).replicas, 2);
}

#[test]
fn a_replica_set_being_deleted_only_reports_status() {
    let mut v = rs_value(3);
    v["metadata"]["deletionTimestamp"] = json!("2026-11-27T11:59:00Z");
    let rs: ReplicaSet = serde_json::from_value(v).unwrap();
    let pods = [
        P::new("a").build(),
        P {
            owner: None,
            ..P::new("orphan")
        }
        .build(),
        P {
            labels: json!({"app": "other"}),
            ..P::new("stray")
        }
        .build(),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let plan = reconcile(&rs, &refs, now());
    assert_eq!(without_status(&plan), vec![]);
    assert_eq!(status_of(&plan).replicas, 1);
}

#[test]
fn status_counts_labels_readiness_and_availability_after_min_ready_seconds() {
    let mut v = rs_value(3);
    v["spec"]["minReadySeconds"] = json!(30);
    let rs: ReplicaSet = serde_json::from_value(v).unwrap();
    let pods = [
        P::new("old-ready").build(),
        P {
            ready_at: Some("2026-11-27T11:59:50Z"),
            ..P::new("just-ready")
        }
        .build(),
        P {
            ready_at: None,
            labels: json!({"app": "web", "pod-template-hash": "abc"}),
            ..P::new("partly-labelled")
        }
        .build(),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let plan = reconcile(&rs, &refs, now());
    assert_eq!(without_status(&plan), vec![]);
    assert_eq!(
        status_of(&plan),
        ReplicaSetStatus {
            replicas: 3,
            fully_labeled_replicas: Some(2),
            ready_replicas: Some(2),
            available_replicas: Some(1),
            observed_generation: Some(2),
            conditions: None,
        }
    );
    // just-ready becomes available 20 s from now; looked at a second later.
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(21)));

    // Once the status is written, nothing is left to do.
    let mut settled = rs.clone();
    settled.status = Some(status_of(&plan));
    assert_eq!(reconcile(&settled, &refs, now()).actions, vec![]);
}

#[test]
fn a_failed_create_sets_replica_failure_once_and_success_clears_it() {
    let s = status::with_failure(
        ReplicaSetStatus::default(),
        Some(("FailedCreate", "quota".into())),
        now(),
    );
    let c = &s.conditions.as_ref().unwrap()[0];
    assert_eq!(
        (c.type_.as_str(), c.status.as_str(), c.reason.as_deref()),
        ("ReplicaFailure", "True", Some("FailedCreate"))
    );
    let again = status::with_failure(s.clone(), Some(("FailedCreate", "other".into())), now());
    assert_eq!(again, s);
    assert_eq!(status::with_failure(s, None, now()).conditions, None);
}
