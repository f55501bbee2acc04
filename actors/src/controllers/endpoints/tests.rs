use serde_json::{json, Value};

use super::*;

fn service(spec: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
        "spec": spec
    }))
    .unwrap()
}

fn web() -> Service {
    service(
        json!({"selector": {"app": "web"}, "clusterIP": "10.96.0.10",
                   "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}),
    )
}

/// A pod of `demo` labelled app=web, on node n1, with `ip` and Ready as `ready` says.
fn pod(name: &str, ip: &str, ready: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "demo", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x",
                 "ports": [{"name": "web", "containerPort": 9090, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    }))
    .unwrap()
}

fn address(name: &str, ip: &str) -> Value {
    json!({"ip": ip, "nodeName": "n1",
           "targetRef": {"kind": "Pod", "name": name, "namespace": "demo", "uid": format!("uid-{name}")}})
}

fn created(action: Action) -> Value {
    match action {
        Action::Create(ep) => serde_json::to_value(*ep).unwrap(),
        other => panic!("expected a create, got {other:?}"),
    }
}

#[test]
fn ready_and_not_ready_pods_are_listed_apart_with_the_target_port() {
    let (a, b, c) = (
        pod("a", "10.88.0.6", true),
        pod("b", "10.88.0.5", true),
        pod("c", "10.88.0.7", false),
    );
    let ep = created(reconcile(Some(&web()), None, &[&a, &b, &c]));
    assert_eq!(
        ep,
        json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
            "subsets": [{
                "addresses": [address("b", "10.88.0.5"), address("a", "10.88.0.6")],
                "notReadyAddresses": [address("c", "10.88.0.7")],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
            }]
        })
    );
}

#[test]
fn pods_being_deleted_finished_without_ip_or_not_selected_are_left_out() {
    let mut deleting = pod("d", "10.88.0.8", true);
    deleting.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(crate::now()),
    );
    let mut finished = pod("f", "10.88.0.9", false);
    finished.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let mut no_ip = pod("n", "", false);
    no_ip.status.as_mut().unwrap().pod_ip = None;
    let mut other = pod("o", "10.88.0.10", true);
    other.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
    let mut elsewhere = pod("e", "10.88.0.11", true);
    elsewhere.metadata.namespace = Some("prod".into());
    let kept = pod("k", "10.88.0.12", true);
    let ep = created(reconcile(
        Some(&web()),
        None,
        &[&deleting, &finished, &no_ip, &other, &elsewhere, &kept],
    ));
    assert_eq!(
        ep["subsets"][0]["addresses"],
        json!([address("k", "10.88.0.12")])
    );
    assert!(ep["subsets"][0].get("notReadyAddresses").is_none());
    // Publishing not-ready addresses lists every pod as ready, including those being deleted. Addresses sort as
    // kube-controller-manager sorts them: by the IP's text.
    let mut publish = web();
    publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
    let ep = created(reconcile(Some(&publish), None, &[&deleting, &kept]));
    assert_eq!(
        ep["subsets"][0]["addresses"],
        json!([address("k", "10.88.0.12"), address("d", "10.88.0.8")])
    );
}

#[test]
fn a_named_target_port_resolves_per_pod_and_pods_without_it_are_skipped() {
    let named = service(json!({"selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}]}));
    let with = pod("a", "10.88.0.5", true);
    let mut without = pod("b", "10.88.0.6", true);
    without.spec.as_mut().unwrap().containers[0].ports = None;
    let ep = created(reconcile(Some(&named), None, &[&with, &without]));
    assert_eq!(
        ep["subsets"],
        json!([{"addresses": [address("a", "10.88.0.5")],
                "ports": [{"name": "http", "port": 9090, "protocol": "TCP"}]}])
    );
}

#[test]
fn pods_resolving_to_different_ports_get_their_own_subsets() {
    let named = service(json!({"selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}]}));
    let a = pod("a", "10.88.0.5", true);
    let mut b = pod("b", "10.88.0.6", true);
    b.spec.as_mut().unwrap().containers[0]
        .ports
        .as_mut()
        .unwrap()[0]
        .container_port = 9191;
    let ep = created(reconcile(Some(&named), None, &[&a, &b]));
    assert_eq!(ep["subsets"].as_array().unwrap().len(), 2);
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], 9090);
    assert_eq!(ep["subsets"][1]["ports"][0]["port"], 9191);
}

#[test]
fn only_a_change_is_written() {
    let (a, b) = (pod("a", "10.88.0.5", true), pod("b", "10.88.0.6", true));
    let Action::Create(current) = reconcile(Some(&web()), None, &[&a, &b]) else {
        panic!("expected a create")
    };
    assert_eq!(
        reconcile(Some(&web()), Some(&current), &[&b, &a]),
        Action::Nothing
    );
    let c = pod("c", "10.88.0.7", true);
    match reconcile(Some(&web()), Some(&current), &[&a, &b, &c]) {
        Action::Update { subsets, labels } => {
            assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 3);
            assert_eq!(labels, [("app".to_string(), "web".to_string())].into());
        }
        other => panic!("expected an update, got {other:?}"),
    }
    // No pod left: the Endpoints stay, empty.
    match reconcile(Some(&web()), Some(&current), &[]) {
        Action::Update { subsets, .. } => assert!(subsets.is_empty()),
        other => panic!("expected an update, got {other:?}"),
    }
}

#[test]
fn services_without_selector_are_left_alone_and_a_gone_service_takes_its_endpoints() {
    let manual = service(json!({"ports": [{"port": 80}]}));
    let mut current = Endpoints::default();
    current.metadata.uid = Some("ep-uid".into());
    assert_eq!(
        reconcile(Some(&manual), Some(&current), &[]),
        Action::Nothing
    );
    assert_eq!(reconcile(Some(&manual), None, &[]), Action::Nothing);
    let external = service(
        json!({"type": "ExternalName", "externalName": "db.example", "selector": {"app": "web"}}),
    );
    assert_eq!(reconcile(Some(&external), None, &[]), Action::Nothing);
    assert_eq!(
        reconcile(None, Some(&current), &[]),
        Action::Delete {
            uid: "ep-uid".into()
        }
    );
    assert_eq!(reconcile(None, None, &[]), Action::Nothing);
}

#[test]
fn headless_services_are_labelled_and_list_pods_without_ports() {
    let headless = service(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
    let a = pod("a", "10.88.0.5", true);
    let ep = created(reconcile(Some(&headless), None, &[&a]));
    assert_eq!(ep["metadata"]["labels"][HEADLESS], "");
    assert_eq!(
        ep["subsets"],
        json!([{"addresses": [address("a", "10.88.0.5")]}])
    );
}

#[test]
fn selection_and_listing_tell_which_services_a_pod_concerns() {
    let a = pod("a", "10.88.0.5", true);
    assert!(selects(&web(), &a));
    let mut db = a.clone();
    db.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
    assert!(!selects(&web(), &db));
    let Action::Create(ep) = reconcile(Some(&web()), None, &[&a]) else {
        panic!("expected a create")
    };
    assert!(
        lists(&ep, &db),
        "a pod that left the selector is still listed until reconciled"
    );
    let other = pod("z", "10.88.0.9", true);
    assert!(!lists(&ep, &other));
}
