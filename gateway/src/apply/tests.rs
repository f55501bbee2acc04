//! The merge, conflicts, removal and FieldsV1 encoding of server-side apply, on Deployments and ConfigMaps.

use serde_json::{json, Value};

use super::*;

const NOW: &str = "2026-01-01T00:00:00Z";

fn deployment() -> Schema<'static> {
    Schema::of_kind("apps", "v1", "Deployment")
}

fn base() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "demo"}})
}

fn config(image: &str, env: Value, replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "main", "image": image, "env": env}]}}}})
}

fn run(live: Option<&Value>, cfg: &Value, manager: &str, force: bool) -> Result<Value, ApiError> {
    apply(
        live,
        &base(),
        cfg,
        &deployment(),
        manager,
        "apps/v1",
        force,
        Part::Main,
        NOW,
    )
    .map(|a| a.object)
}

#[test]
fn fields_v1_encodes_fields_keys_and_set_members() {
    let cfg = config("nginx", json!([{"name": "A", "value": "1"}]), 2);
    let set = Set::of_value(&tracked(&cfg, Part::Main), &deployment());
    let encoded = set.to_fields_v1();
    let containers = &encoded["f:spec"]["f:template"]["f:spec"]["f:containers"];
    let main = &containers["k:{\"name\":\"main\"}"];
    assert_eq!(main["."], json!({}));
    assert_eq!(main["f:image"], json!({}));
    assert_eq!(main["f:env"]["k:{\"name\":\"A\"}"]["f:value"], json!({}));
    // The selector is an atomic map: owned whole.
    assert_eq!(encoded["f:spec"]["f:selector"], json!({}));
    assert_eq!(encoded["f:metadata"]["f:labels"]["f:app"], json!({}));
    assert!(encoded["f:metadata"].get("f:name").is_none());
    assert_eq!(Set::from_fields_v1(&encoded), set);
    let finalizers = Set::of_value(&json!({"metadata": {"finalizers": ["a/b"]}}), &deployment());
    assert_eq!(
        finalizers.to_fields_v1(),
        json!({"f:metadata": {"f:finalizers": {"v:\"a/b\"": {}}}})
    );
    assert_eq!(
        fieldset::display(&[
            "f:spec".into(),
            "k:{\"name\":\"main\"}".into(),
            "f:image".into()
        ]),
        ".spec[name=\"main\"].image"
    );
}

#[test]
fn apply_creates_then_merges_and_removes_what_it_stopped_applying() {
    let env = json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]);
    let created = run(None, &config("nginx", env, 2), "kubectl", false).unwrap();
    assert_eq!(created["metadata"]["name"], "web");
    assert_eq!(
        created["metadata"]["managedFields"][0]["manager"],
        "kubectl"
    );
    assert_eq!(
        created["metadata"]["managedFields"][0]["operation"],
        "Apply"
    );
    // The server adds fields nobody applied; they stay.
    let mut live = created.clone();
    live["spec"]["strategy"] = json!({"type": "RollingUpdate"});
    live["status"] = json!({"replicas": 2});
    // The same configuration again changes nothing.
    assert_eq!(
        run(
            Some(&live),
            &config(
                "nginx",
                json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
                2
            ),
            "kubectl",
            false
        )
        .unwrap(),
        live
    );
    let next = run(
        Some(&live),
        &config("nginx:2", json!([{"name": "A", "value": "1"}]), 2),
        "kubectl",
        false,
    )
    .unwrap();
    let c = &next["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx:2");
    assert_eq!(c["env"], json!([{"name": "A", "value": "1"}]));
    assert_eq!(next["spec"]["strategy"], json!({"type": "RollingUpdate"}));
    assert_eq!(next["status"], json!({"replicas": 2}));
}

#[test]
fn a_field_owned_by_another_manager_conflicts_unless_forced() {
    let created = run(None, &config("nginx", json!([]), 2), "alice", false).unwrap();
    // bob applies the same value: shared, no conflict.
    let shared = run(Some(&created), &config("nginx", json!([]), 2), "bob", false).unwrap();
    assert_eq!(
        shared["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let err = run(Some(&shared), &config("nginx", json!([]), 5), "bob", false).unwrap_err();
    assert_eq!(err.code(), 409);
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas"
    );
    let forced = run(Some(&shared), &config("nginx", json!([]), 5), "bob", true).unwrap();
    assert_eq!(forced["spec"]["replicas"], 5);
    let alice = &forced["metadata"]["managedFields"][0];
    assert_eq!(alice["manager"], "alice");
    assert!(alice["fieldsV1"]["f:spec"].get("f:replicas").is_none());
}

#[test]
fn updates_record_their_fields_and_conflict_with_a_later_apply() {
    let created = run(None, &config("nginx", json!([]), 2), "kubectl", false).unwrap();
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(4);
    record_update(
        Some(&created),
        &mut scaled,
        &deployment(),
        "kubectl-scale",
        "apps/v1",
        Part::Scale,
        NOW,
    );
    let owners = entries(&scaled);
    assert_eq!(owners.len(), 2);
    assert_eq!(owners[1].subresource, "scale");
    assert!(!owners[0]
        .fields
        .contains(&["f:spec".into(), "f:replicas".into()]));
    // A PUT without managedFields keeps the stored entries and adds its own.
    let mut put = config("nginx:2", json!([]), 4);
    record_update(
        Some(&scaled),
        &mut put,
        &deployment(),
        "kubectl-replace",
        "apps/v1",
        Part::Main,
        NOW,
    );
    let managers: Vec<String> = entries(&put).into_iter().map(|e| e.manager).collect();
    assert_eq!(managers, ["kubectl", "kubectl-scale", "kubectl-replace"]);
    // kubectl no longer owns replicas: its re-apply does not conflict, another manager's change does.
    let err = run(
        Some(&scaled),
        &config("nginx", json!([]), 7),
        "other",
        false,
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"kubectl-scale\" with subresource \"scale\" using apps/v1: .spec.replicas"
    );
}

#[test]
fn config_maps_applied_by_two_managers_keep_both_keys() {
    let schema = Schema::of_kind("", "v1", "ConfigMap");
    let base = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"b": "2"}});
    let one = apply(None, &base, &a, &schema, "m1", "v1", false, Part::Main, NOW)
        .unwrap()
        .object;
    let two = apply(
        Some(&one),
        &base,
        &b,
        &schema,
        "m2",
        "v1",
        false,
        Part::Main,
        NOW,
    )
    .unwrap()
    .object;
    assert_eq!(two["data"], json!({"a": "1", "b": "2"}));
    // m1 stops applying `a`: it goes; m2's `b` stays.
    let empty = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    let three = apply(
        Some(&two),
        &base,
        &empty,
        &schema,
        "m1",
        "v1",
        false,
        Part::Main,
        NOW,
    )
    .unwrap()
    .object;
    assert_eq!(three["data"], json!({"b": "2"}));
}

#[test]
fn merge_follows_list_types() {
    let schema = deployment();
    let live = json!({"metadata": {"finalizers": ["a"]}, "spec": {"template": {"spec": {"containers": [
        {"name": "x", "image": "1", "args": ["p"]}, {"name": "y", "image": "2"}]}}}});
    let cfg = json!({"metadata": {"finalizers": ["b"]}, "spec": {"template": {"spec": {"containers": [
        {"name": "y", "image": "3"}, {"name": "x", "args": ["q"]}]}}}});
    let merged = merge(&live, &cfg, &schema);
    assert_eq!(merged["metadata"]["finalizers"], json!(["a", "b"]));
    assert_eq!(
        merged["spec"]["template"]["spec"]["containers"],
        json!([{"name": "x", "image": "1", "args": ["q"]}, {"name": "y", "image": "3"}])
    );
}
