//! Tests of the deployment core: exact actions for scaling, replacement, deletion and status.

use super::pods::template_hash;
use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use navarch_bus::api::meta::parse_time;
use serde_json::{json, Value};

fn now() -> DateTime<Utc> {
    parse_time("2026-11-27T12:00:00Z").unwrap()
}

fn deployment_value(replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "demo", "uid": "d-uid", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "progressDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"note": "x"}},
                "spec": {"restartPolicy": "Always",
                         "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}
            }
        }
    })
}

fn deployment(replicas: i32) -> Deployment {
    serde_json::from_value(deployment_value(replicas)).unwrap()
}

fn hash_of(d: &Deployment) -> String {
    template_hash(&d.spec.as_ref().unwrap().template)
}

/// A pod owned by `d-uid`: `ready_at` None means not ready.
struct P {
    name: &'static str,
    hash: String,
    node: Option<&'static str>,
    phase: &'static str,
    ready_at: Option<&'static str>,
    created: &'static str,
    deleting: bool,
    owner_uid: &'static str,
}

impl P {
    fn new(name: &'static str, hash: &str) -> Self {
        Self {
            name,
            hash: hash.to_string(),
            node: Some("n1"),
            phase: "Running",
            ready_at: Some("2026-11-27T11:00:00Z"),
            created: "2026-11-27T10:00:00Z",
            deleting: false,
            owner_uid: "d-uid",
        }
    }

    fn build(self) -> Pod {
        let mut v = json!({
            "metadata": {
                "name": self.name, "namespace": "demo", "uid": format!("uid-{}", self.name),
                "creationTimestamp": self.created,
                "labels": {"app": "web", "pod-template-hash": self.hash},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                     "uid": self.owner_uid, "controller": true, "blockOwnerDeletion": true}]
            },
            "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            "status": {"phase": self.phase, "conditions": []}
        });
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

fn creates(plan: &Plan) -> usize {
    plan.actions
        .iter()
        .filter(|a| matches!(a, Action::CreatePod(_)))
        .count()
}

fn pod_actions(plan: &Plan) -> Vec<Action> {
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

fn condition<'a>(
    s: &'a DeploymentStatus,
    type_: &str,
) -> &'a k8s_openapi::api::apps::v1::DeploymentCondition {
    s.conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .unwrap()
}

#[test]
fn a_new_deployment_creates_its_pods_from_the_template() {
    let d = deployment(3);
    let hash = hash_of(&d);
    let plan = reconcile(&d, &[], now());
    assert_eq!(creates(&plan), 3);
    let Action::CreatePod(pod) = &plan.actions[0] else {
        panic!("first action is not a create")
    };
    let expected: Pod = serde_json::from_value(json!({
        "metadata": {
            "generateName": format!("web-{hash}-"), "namespace": "demo",
            "labels": {"app": "web", "pod-template-hash": hash},
            "annotations": {"note": "x"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-uid",
                                 "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {"restartPolicy": "Always",
                 "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}
    }))
    .unwrap();
    assert_eq!(**pod, expected);

    let s = status_of(&plan);
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(s.replicas, None);
    assert_eq!(s.unavailable_replicas, Some(3));
    let progressing = condition(&s, "Progressing");
    assert_eq!(progressing.reason.as_deref(), Some("NewReplicaSetCreated"));
    assert_eq!(
        progressing.message.as_deref(),
        Some(format!("Created new replica set \"web-{hash}\"").as_str())
    );
    let available = condition(&s, "Available");
    assert_eq!(available.status, "False");
    assert_eq!(
        available.reason.as_deref(),
        Some("MinimumReplicasUnavailable")
    );
}

#[test]
fn a_complete_deployment_reports_success_once_then_does_nothing() {
    let mut d = deployment(3);
    let hash = hash_of(&d);
    let pods: Vec<Pod> = ["a", "b", "c"]
        .iter()
        .map(|n| P::new(n, &hash).build())
        .collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    let plan = reconcile(&d, &refs, now());
    assert_eq!(pod_actions(&plan), vec![]);
    let s = status_of(&plan);
    assert_eq!(
        (
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas,
            s.unavailable_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3), None)
    );
    let progressing = condition(&s, "Progressing");
    assert_eq!(progressing.status, "True");
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    assert_eq!(
        progressing.message.as_deref(),
        Some(format!("ReplicaSet \"web-{hash}\" has successfully progressed.").as_str())
    );
    assert_eq!(
        condition(&s, "Available").reason.as_deref(),
        Some("MinimumReplicasAvailable")
    );

    d.status = Some(s);
    let later = now() + k8s_openapi::chrono::Duration::seconds(30);
    assert_eq!(reconcile(&d, &refs, later), Plan::default());
}

#[test]
fn scaling_down_deletes_unscheduled_then_unready_then_newest() {
    let d = deployment(1);
    let hash = hash_of(&d);
    let mut unscheduled = P::new("unscheduled", &hash);
    unscheduled.node = None;
    unscheduled.phase = "Pending";
    unscheduled.ready_at = None;
    let mut unready = P::new("unready", &hash);
    unready.ready_at = None;
    let mut newest = P::new("newest", &hash);
    newest.created = "2026-11-27T11:30:00Z";
    let oldest = P::new("oldest", &hash);
    let pods = [
        unscheduled.build(),
        unready.build(),
        newest.build(),
        oldest.build(),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let plan = reconcile(&d, &refs, now());
    assert_eq!(
        pod_actions(&plan),
        vec![
            deleted("unscheduled"),
            deleted("unready"),
            deleted("newest")
        ]
    );
}

#[test]
fn terminating_finished_and_foreign_pods_do_not_count() {
    let d = deployment(3);
    let hash = hash_of(&d);
    let mut terminating = P::new("terminating", &hash);
    terminating.deleting = true;
    let mut failed = P::new("failed", &hash);
    failed.phase = "Failed";
    let mut foreign = P::new("foreign", &hash);
    foreign.owner_uid = "someone-else";
    let pods = [
        P::new("a", &hash).build(),
        terminating.build(),
        failed.build(),
        foreign.build(),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let plan = reconcile(&d, &refs, now());
    assert_eq!(creates(&plan), 2);
    assert_eq!(pod_actions(&plan).len(), 2);
    assert_eq!(status_of(&plan).replicas, Some(1));
}

#[test]
fn a_deployment_being_deleted_neither_creates_nor_deletes_pods() {
    // Its pods are the garbage collector's now (deleted in the foreground, or orphaned): recreating the pods it
    // deletes, or deleting pods it is about to orphan, would undo its work. The status is still kept up.
    let mut d = deployment(3);
    d.metadata.deletion_timestamp = Some(Time(now()));
    d.metadata.finalizers = Some(vec!["foregroundDeletion".into()]);
    let hash = hash_of(&d);
    let plan = reconcile(&d, &[], now());
    assert_eq!(pod_actions(&plan), vec![]);
    assert_eq!(status_of(&plan).replicas, None);
    let pods: Vec<Pod> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|n| P::new(n, &hash).build())
        .collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    assert_eq!(
        pod_actions(&reconcile(&d, &refs, now())),
        vec![],
        "one pod too many, and still none deleted"
    );
    let live = deployment(3);
    assert_eq!(
        pod_actions(&reconcile(&live, &refs, now())).len(),
        1,
        "the same Deployment alive scales down"
    );
}

#[test]
fn a_template_change_rolls_within_surge_and_unavailability() {
    // 3 replicas, 25%: maxSurge 1, maxUnavailable 0.
    let d = deployment(3);
    let hash = hash_of(&d);
    let old: Vec<Pod> = ["o1", "o2", "o3"]
        .iter()
        .map(|n| P::new(n, "old").build())
        .collect();

    let refs: Vec<&Pod> = old.iter().collect();
    let plan = reconcile(&d, &refs, now());
    assert_eq!((creates(&plan), pod_actions(&plan).len()), (1, 1));

    // The new pod is not ready yet: nothing more may happen.
    let mut starting = P::new("n1", &hash);
    starting.ready_at = None;
    let starting = starting.build();
    let mut refs: Vec<&Pod> = old.iter().collect();
    refs.push(&starting);
    assert_eq!(pod_actions(&reconcile(&d, &refs, now())), vec![]);

    // Once it is ready, one old pod goes (the newest of them).
    let mut o3 = P::new("o3-newer", "old");
    o3.created = "2026-11-27T11:00:00Z";
    let old2 = [
        P::new("o1", "old").build(),
        P::new("o2", "old").build(),
        o3.build(),
    ];
    let ready = P::new("n1", &hash).build();
    let mut refs: Vec<&Pod> = old2.iter().collect();
    refs.push(&ready);
    assert_eq!(
        pod_actions(&reconcile(&d, &refs, now())),
        vec![deleted("o3-newer")]
    );
}

#[test]
fn unavailable_old_pods_go_first_during_a_rollout() {
    let d = deployment(3);
    let mut broken = P::new("broken", "old");
    broken.ready_at = None;
    let hash = hash_of(&d);
    let pods = [
        broken.build(),
        P::new("o1", "old").build(),
        P::new("o2", "old").build(),
        P::new("n1", &hash).build(),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    // 4 pods, at least 3 available: room to remove one, and the broken one goes, not a healthy one.
    assert_eq!(
        pod_actions(&reconcile(&d, &refs, now())),
        vec![deleted("broken")]
    );
}

#[test]
fn recreate_deletes_every_old_pod_before_creating() {
    let mut v = deployment_value(2);
    v["spec"]["strategy"] = json!({"type": "Recreate"});
    let d: Deployment = serde_json::from_value(v).unwrap();
    let old = [P::new("o1", "old").build(), P::new("o2", "old").build()];
    let refs: Vec<&Pod> = old.iter().collect();
    assert_eq!(
        pod_actions(&reconcile(&d, &refs, now())),
        vec![deleted("o1"), deleted("o2")]
    );

    let mut terminating = P::new("o1", "old");
    terminating.deleting = true;
    let terminating = terminating.build();
    assert_eq!(pod_actions(&reconcile(&d, &[&terminating], now())), vec![]);
    assert_eq!(creates(&reconcile(&d, &[], now())), 2);
}

#[test]
fn min_ready_seconds_delay_availability_and_ask_for_a_second_look() {
    let mut v = deployment_value(1);
    v["spec"]["minReadySeconds"] = json!(10);
    let d: Deployment = serde_json::from_value(v).unwrap();
    let hash = hash_of(&d);
    let mut p = P::new("a", &hash);
    p.ready_at = Some("2026-11-27T11:59:55Z");
    let pod = p.build();
    let plan = reconcile(&d, &[&pod], now());
    let s = status_of(&plan);
    assert_eq!((s.ready_replicas, s.available_replicas), (Some(1), None));
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(5)));
}

#[test]
fn no_progress_past_the_deadline_is_reported() {
    let mut d = deployment(2);
    let hash = hash_of(&d);
    let mut stuck = P::new("a", &hash);
    stuck.ready_at = None;
    let pods = [P::new("ok", &hash).build(), stuck.build()];
    let refs: Vec<&Pod> = pods.iter().collect();
    let status = status_of(&reconcile(&d, &refs, now()));
    let mut status = status;
    let stamp = Time(parse_time("2026-11-27T11:40:00Z").unwrap());
    for c in status.conditions.iter_mut().flatten() {
        c.last_update_time = Some(stamp.clone());
        c.last_transition_time = Some(stamp.clone());
    }
    d.status = Some(status.clone());
    // 20 minutes without progress, deadline 10 minutes.
    let s = status_of(&reconcile(&d, &refs, now()));
    let progressing = condition(&s, "Progressing");
    assert_eq!(progressing.status, "False");
    assert_eq!(
        progressing.reason.as_deref(),
        Some("ProgressDeadlineExceeded")
    );
    assert_eq!(
        progressing.message.as_deref(),
        Some(format!("ReplicaSet \"web-{hash}\" has timed out progressing.").as_str())
    );
    // Within the deadline the controller only asks to look again when it would pass.
    let early = parse_time("2026-11-27T11:45:00Z").unwrap();
    let plan = reconcile(&d, &refs, early);
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(301)));
}

#[test]
fn template_hashes_and_generated_names() {
    let d = deployment(1);
    let hash = hash_of(&d);
    assert_eq!(
        hash,
        hash_of(&deployment(5)),
        "replicas are not part of the template"
    );
    assert!(hash
        .bytes()
        .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)));
    let mut v = deployment_value(1);
    v["spec"]["template"]["spec"]["containers"][0]["command"] = json!(["sleep", "10"]);
    let changed: Deployment = serde_json::from_value(v).unwrap();
    assert_ne!(hash, hash_of(&changed));

    let mut long = deployment(1);
    long.metadata.name = Some("x".repeat(80));
    let pod = pods::new_pod(&long, &hash);
    assert_eq!(pod.metadata.generate_name.unwrap().len(), 58);
}

#[test]
fn deployments_without_a_spec_or_uid_do_nothing() {
    let mut d = deployment(1);
    d.spec = None;
    assert_eq!(reconcile(&d, &[], now()), Plan::default());
    let mut d = deployment(1);
    d.metadata.uid = None;
    assert_eq!(reconcile(&d, &[], now()), Plan::default());
}

#[test]
fn absurd_strategy_values_do_not_panic() {
    let mut v = deployment_value(i32::MAX);
    v["spec"]["strategy"]["rollingUpdate"] =
        json!({"maxSurge": "99999999999999999%", "maxUnavailable": 2147483647});
    v["spec"]["minReadySeconds"] = json!(i32::MAX);
    v["spec"]["progressDeadlineSeconds"] = json!(i32::MAX);
    let d: Deployment = serde_json::from_value(v).unwrap();
    let old = P::new("o1", "old").build();
    let plan = reconcile(&d, &[&old], now());
    assert_eq!(creates(&plan), BURST);
    let mut v = deployment_value(3);
    v["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge": "lots", "maxUnavailable": -5});
    let d: Deployment = serde_json::from_value(v).unwrap();
    let _ = reconcile(&d, &[&old], now());
}
