use serde_json::json;

use super::*;

fn event(kind: WatchType, object: Value, revision: i64) -> ObjectEvent {
    ObjectEvent {
        kind,
        object,
        previous: None,
        revision,
    }
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "demo"}, "spec": {}})
}

fn payload(m: &EventMessage) -> Value {
    serde_json::from_slice(&m.payload).unwrap()
}

#[test]
fn a_change_becomes_a_watch_event_on_its_objects_subject() {
    let subjects = Subjects::new("c1");
    let mut checkpoint = Checkpoint::default();
    let m = message(
        &subjects,
        &event(WatchType::Added, pod("web-1"), 7),
        &mut checkpoint,
        1 << 20,
    )
    .unwrap();
    assert_eq!(m.subject, "navarch.c1.events.pods.demo.web-1");
    assert_eq!(
        payload(&m),
        json!({"type": "ADDED", "object": pod("web-1")})
    );
    assert!(
        m.payload.starts_with(br#"{"type":"ADDED""#),
        "type comes first"
    );
    assert_eq!(m.headers.get(RESOURCE_VERSION), Some("7"));
    assert_eq!(m.headers.get(EVENT_TYPE), Some("ADDED"));
    assert_eq!(m.headers.get(RESOURCE), Some("pods"));
    assert_eq!(m.headers.get(PREVIOUS), None, "nothing published before");
    assert_eq!(checkpoint.revision, 7);
    assert_eq!(checkpoint.resources.get("pods"), Some(&7));
}

#[test]
fn each_event_names_the_previous_one_of_its_resource() {
    let subjects = Subjects::new("c1");
    let mut checkpoint = Checkpoint::default();
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1.example.com"}});
    let first = message(
        &subjects,
        &event(WatchType::Added, pod("a"), 3),
        &mut checkpoint,
        1 << 20,
    )
    .unwrap();
    let other = message(
        &subjects,
        &event(WatchType::Modified, node, 4),
        &mut checkpoint,
        1 << 20,
    )
    .unwrap();
    let second = message(
        &subjects,
        &event(WatchType::Deleted, pod("a"), 9),
        &mut checkpoint,
        1 << 20,
    )
    .unwrap();
    assert_eq!(first.headers.get(PREVIOUS), None);
    assert_eq!(
        other.subject, "navarch.c1.events.nodes._.n1_example_com",
        "cluster-scoped: `_` namespace; dots in names become `_`"
    );
    assert_eq!(other.headers.get(PREVIOUS), None);
    assert_eq!(second.headers.get(PREVIOUS), Some("3"));
    assert_eq!(payload(&second)["type"], "DELETED");
    assert_eq!(checkpoint.revision, 9);
}

#[test]
fn a_lost_place_vouches_for_nothing() {
    let subjects = Subjects::new("c1");
    let mut checkpoint = Checkpoint::default();
    message(
        &subjects,
        &event(WatchType::Added, pod("a"), 3),
        &mut checkpoint,
        1 << 20,
    );
    checkpoint.lost();
    let m = message(
        &subjects,
        &event(WatchType::Added, pod("b"), 50),
        &mut checkpoint,
        1 << 20,
    )
    .unwrap();
    assert_eq!(m.headers.get(PREVIOUS), None);
}

#[test]
fn secrets_are_redacted_and_non_objects_and_bookmarks_skipped() {
    let subjects = Subjects::new("c1");
    let mut checkpoint = Checkpoint::default();
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "db", "namespace": "demo"},
        "data": {"password": "aHVudGVyMg=="}, "stringData": {"user": "admin"}});
    let m = message(
        &subjects,
        &event(WatchType::Added, secret, 5),
        &mut checkpoint,
        1 << 20,
    )
    .unwrap();
    let object = &payload(&m)["object"];
    assert_eq!(object["data"], json!({"password": ""}));
    assert_eq!(object["stringData"], json!({"user": ""}));
    assert_eq!(object["type"], "Opaque");
    assert!(!String::from_utf8_lossy(&m.payload).contains("aHVudGVyMg"));

    // A ConfigMap's data is not secret.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "demo"},
        "data": {"k": "v"}});
    let m = message(
        &subjects,
        &event(WatchType::Added, cm, 6),
        &mut checkpoint,
        1 << 20,
    )
    .unwrap();
    assert_eq!(payload(&m)["object"]["data"], json!({"k": "v"}));

    // An allocation record has no kind; a bookmark is not a change. Both still move the checkpoint.
    assert!(message(
        &subjects,
        &event(WatchType::Added, json!({"uid": "x"}), 8),
        &mut checkpoint,
        1 << 20
    )
    .is_none());
    assert!(message(
        &subjects,
        &event(WatchType::Bookmark, pod("a"), 10),
        &mut checkpoint,
        1 << 20
    )
    .is_none());
    assert_eq!(checkpoint.revision, 10);
}

#[test]
fn an_event_over_the_payload_limit_carries_only_metadata() {
    let subjects = Subjects::new("c1");
    let mut checkpoint = Checkpoint::default();
    let big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big", "namespace": "demo"},
        "data": {"k": "x".repeat(5_000)}});
    let m = message(
        &subjects,
        &event(WatchType::Modified, big, 11),
        &mut checkpoint,
        1_000,
    )
    .unwrap();
    assert!(m.payload.len() < 1_000);
    assert_eq!(m.headers.get(TRUNCATED), Some("true"));
    let p = payload(&m);
    assert_eq!(p["type"], "MODIFIED");
    assert_eq!(p["object"]["metadata"]["name"], "big");
    assert!(p["object"].get("data").is_none());
}
