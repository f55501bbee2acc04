use super::*;
use crate::api::resource;

fn now() -> DateTime<Utc> {
    meta::parse_time("2026-11-27T12:00:00Z").unwrap()
}

fn kind(k: &str) -> &'static ResourceInfo {
    resource::RESOURCES.iter().find(|r| r.kind == k).unwrap()
}

fn bound_pod(grace: Option<i64>) -> Value {
    json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": grace},
           "status": {"phase": "Running"}})
}

fn pending(d: Deletion) -> Value {
    match d {
        Deletion::Pending(v) => v,
        Deletion::Now => panic!("expected a pending deletion"),
    }
}

#[test]
fn bound_pods_get_a_deletion_timestamp() {
    let pods = kind("Pod");
    let p = pending(plan(pods, &bound_pod(Some(30)), None, None, now()));
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 30);
    assert_eq!(p["metadata"]["deletionTimestamp"], "2026-11-27T12:00:30Z");
    assert_eq!(
        plan(pods, &bound_pod(Some(30)), Some(0), None, now()),
        Deletion::Now
    );
    let mut unbound = bound_pod(None);
    unbound["spec"]["nodeName"] = Value::Null;
    assert_eq!(plan(pods, &unbound, None, None, now()), Deletion::Now);
}

#[test]
fn namespaces_with_finalizers_turn_terminating() {
    let namespaces = kind("Namespace");
    let ns = json!({"metadata": {"name": "demo"}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
    let p = pending(plan(namespaces, &ns, None, None, now()));
    assert_eq!(p["status"]["phase"], "Terminating");
    assert!(meta::is_deleting(&p));
    let again = pending(plan(namespaces, &p, None, None, now()));
    assert_eq!(again, p, "a second delete changes nothing");
    let finalized = json!({"metadata": {"name": "demo"}, "spec": {"finalizers": []}});
    assert_eq!(
        plan(namespaces, &finalized, None, None, now()),
        Deletion::Now
    );
}

#[test]
fn huge_grace_periods_end_at_year_9999_instead_of_panicking() {
    let pods = kind("Pod");
    for grace in [99_999_999_999_999, i64::MAX] {
        let p = pending(plan(pods, &bound_pod(Some(grace)), None, None, now()));
        assert_eq!(p["metadata"]["deletionTimestamp"], "9999-12-31T23:59:59Z");
        let p = pending(plan(pods, &bound_pod(Some(30)), Some(grace), None, now()));
        assert_eq!(p["metadata"]["deletionTimestamp"], "9999-12-31T23:59:59Z");
    }
}

#[test]
fn finalizers_keep_an_object_marked_for_deletion() {
    let cms = kind("ConfigMap");
    let cm = json!({"metadata": {"name": "c", "finalizers": ["example.com/hold"]}});
    let p = pending(plan(cms, &cm, None, None, now()));
    assert_eq!(p["metadata"]["deletionTimestamp"], "2026-11-27T12:00:00Z");
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(p["metadata"]["finalizers"], json!(["example.com/hold"]));
    let later = meta::parse_time("2026-11-27T13:00:00Z").unwrap();
    assert_eq!(
        pending(plan(cms, &p, None, None, later)),
        p,
        "a second delete keeps the first timestamp"
    );
    assert_eq!(
        plan(cms, &json!({"metadata": {"name": "c"}}), None, None, now()),
        Deletion::Now
    );
}

#[test]
fn propagation_policies_set_the_gc_finalizers() {
    let deployments = kind("Deployment");
    let d = json!({"metadata": {"name": "web", "finalizers": ["a"]}});
    let orphaning = pending(plan(
        deployments,
        &d,
        None,
        Some(Propagation::Orphan),
        now(),
    ));
    assert_eq!(orphaning["metadata"]["finalizers"], json!(["a", "orphan"]));
    let foreground = pending(plan(
        deployments,
        &orphaning,
        None,
        Some(Propagation::Foreground),
        now(),
    ));
    assert_eq!(
        foreground["metadata"]["finalizers"],
        json!(["a", "foregroundDeletion"]),
        "a later delete may switch the policy while only finalizers hold the object"
    );
    let kept = pending(plan(deployments, &foreground, None, None, now()));
    assert_eq!(kept, foreground, "no policy keeps the finalizers it has");
    let plain = json!({"metadata": {"name": "web"}});
    assert_eq!(
        plan(
            deployments,
            &plain,
            None,
            Some(Propagation::Background),
            now()
        ),
        Deletion::Now
    );
    let foreground_only = pending(plan(
        deployments,
        &plain,
        None,
        Some(Propagation::Foreground),
        now(),
    ));
    assert_eq!(
        plan(
            deployments,
            &foreground_only,
            None,
            Some(Propagation::Background),
            now()
        ),
        Deletion::Now,
        "Background drops the GC finalizers, and nothing else holds the object"
    );
}

#[test]
fn a_finalized_pod_stopped_by_its_agent_waits_for_the_finalizer() {
    let pods = kind("Pod");
    let foreground = pending(plan(
        pods,
        &bound_pod(Some(30)),
        None,
        Some(Propagation::Foreground),
        now(),
    ));
    assert_eq!(foreground["metadata"]["deletionGracePeriodSeconds"], 30);
    assert_eq!(
        foreground["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    // The agent stopped it and deletes with grace 0: the finalizer still holds it, now with no grace left.
    let stopped = pending(plan(pods, &foreground, Some(0), None, now()));
    assert_eq!(stopped["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(
        stopped["metadata"]["deletionTimestamp"],
        "2026-11-27T12:00:00Z"
    );
    let mut finalized = stopped.clone();
    finalized["metadata"]["finalizers"] = json!([]);
    assert!(deletes_on_update(pods, &finalized));
    assert!(!deletes_on_update(pods, &stopped));
    let mut still_graceful = foreground.clone();
    still_graceful["metadata"]["finalizers"] = json!([]);
    assert!(
        !deletes_on_update(pods, &still_graceful),
        "a pod in its grace period is the agent's to delete"
    );
}

#[test]
fn namespaces_go_on_update_only_once_their_spec_finalizers_are_gone_too() {
    let namespaces = kind("Namespace");
    let ns = json!({"metadata": {"name": "demo"}, "spec": {"finalizers": ["kubernetes"]}});
    let terminating = pending(plan(namespaces, &ns, None, None, now()));
    assert!(!deletes_on_update(namespaces, &terminating));
    let mut emptied = terminating.clone();
    emptied["spec"]["finalizers"] = json!([]);
    assert!(deletes_on_update(namespaces, &emptied));
    assert!(!deletes_on_update(
        kind("ConfigMap"),
        &json!({"metadata": {"name": "c"}})
    ));
}

#[test]
fn delete_options_pick_a_propagation_as_kube_apiserver_does() {
    assert_eq!(
        Propagation::from_options(Some("Orphan"), None).unwrap(),
        Some(Propagation::Orphan)
    );
    assert_eq!(
        Propagation::from_options(Some("Foreground"), None).unwrap(),
        Some(Propagation::Foreground)
    );
    assert_eq!(
        Propagation::from_options(None, Some(true)).unwrap(),
        Some(Propagation::Orphan)
    );
    assert_eq!(
        Propagation::from_options(None, Some(false)).unwrap(),
        Some(Propagation::Background)
    );
    assert_eq!(Propagation::from_options(None, None).unwrap(), None);
    let unknown = Propagation::from_options(Some("Sideways"), None).unwrap_err();
    assert_eq!(unknown.code(), 422);
    assert_eq!(
        unknown.message,
        "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Sideways\": \
         supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
    );
    let both = Propagation::from_options(Some("Orphan"), Some(true)).unwrap_err();
    assert_eq!(both.code(), 422);
    assert!(both
        .message
        .ends_with("orphanDependents and deletionPropagation cannot be both set"));
    let both_wrong = Propagation::from_options(Some("Sideways"), Some(false)).unwrap_err();
    assert_eq!(
        both_wrong.to_status()["details"]["causes"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "every problem is reported at once, as kube-apiserver does"
    );
}
