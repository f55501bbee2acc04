//! Strategic merge patch, directive by directive, and the patches kubectl apply sends.

use serde_json::json;

use super::*;

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"},
                     "finalizers": ["a", "b"],
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"old\":1}\n"}},
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"spec": {
                "containers": [
                    {"name": "nginx", "image": "nginx:1.25",
                     "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}],
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "args": ["x", "y"]},
                    {"name": "sidecar", "image": "busybox"}
                ],
                "volumes": [{"name": "data", "emptyDir": {}}]
            }}
        }
    })
}

fn patch(original: &Value, patch: Value) -> Value {
    apply("Deployment", original, &patch).unwrap()
}

fn containers(v: &Value) -> &Vec<Value> {
    v["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
}

#[test]
fn the_kubectl_apply_patch_changes_one_container_and_keeps_the_rest() {
    let d = deployment();
    let p = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":2}\n"}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
            "containers": [{"image": "nginx:1.26", "name": "nginx"}]
        }}}
    });
    let out = patch(&d, p);
    let c = containers(&out);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0]["image"], "nginx:1.26");
    assert_eq!(
        c[0]["ports"],
        d["spec"]["template"]["spec"]["containers"][0]["ports"]
    );
    assert_eq!(c[1]["name"], "sidecar");
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{\"new\":2}\n"
    );
    assert_eq!(out["spec"]["replicas"], 2);
    assert_eq!(out["metadata"]["labels"], d["metadata"]["labels"]);
}

#[test]
fn lists_merge_by_their_keys() {
    let d = deployment();
    let out = patch(
        &d,
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "nginx",
             "ports": [{"containerPort": 8080}, {"containerPort": 80, "name": "http"}],
             "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
             "args": ["z"]},
            {"name": "third", "image": "alpine"}
        ]}}}}),
    );
    let c = containers(&out);
    assert_eq!(
        c.iter().map(|c| c["name"].clone()).collect::<Vec<_>>(),
        vec!["nginx", "sidecar", "third"]
    );
    assert_eq!(
        c[0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443, "protocol": "TCP"}, {"containerPort": 8080}])
    );
    assert_eq!(
        c[0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}])
    );
    assert_eq!(
        c[0]["args"],
        json!(["z"]),
        "lists without a strategy are replaced"
    );
    assert_eq!(c[0]["image"], "nginx:1.25");
}

#[test]
fn null_deletes_and_patch_delete_removes_items() {
    let d = deployment();
    let out = patch(
        &d,
        json!({
            "metadata": {"labels": {"tier": null}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}],
                "containers": [
                    {"name": "nginx", "$setElementOrder/env": [{"name": "A"}],
                     "env": [{"$patch": "delete", "name": "B"}],
                     "ports": [{"$patch": "delete", "containerPort": 443}]},
                    {"$patch": "delete", "name": "sidecar"}
                ]
            }}}
        }),
    );
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
    let c = containers(&out);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["env"], json!([{"name": "A", "value": "1"}]));
    assert_eq!(
        c[0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
}

#[test]
fn patch_replace_replaces_lists_and_maps() {
    let d = deployment();
    let out = patch(
        &d,
        json!({"spec": {"template": {"spec": {"containers": [
            {"$patch": "replace"}, {"name": "only", "image": "x"}
        ]}}}}),
    );
    assert_eq!(
        containers(&out),
        &vec![json!({"name": "only", "image": "x"})]
    );

    let out = patch(
        &d,
        json!({"metadata": {"labels": {"$patch": "replace", "new": "1"}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"new": "1"}));

    let out = patch(&d, json!({"metadata": {"labels": {"$patch": "delete"}}}));
    assert_eq!(out["metadata"]["labels"], json!({}));

    let out = patch(
        &d,
        json!({"metadata": {"labels": {"$patch": "merge", "x": "1"}}}),
    );
    assert_eq!(out["metadata"]["labels"]["x"], "1");
    assert_eq!(out["metadata"]["labels"]["app"], "web");
}

#[test]
fn retain_keys_clears_fields_not_listed() {
    let d = deployment();
    let out = patch(
        &d,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    );
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn finalizers_merge_as_a_set_and_delete_from_primitive_list_removes() {
    let d = deployment();
    let out = patch(&d, json!({"metadata": {"finalizers": ["b", "c"]}}));
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
    let out = patch(
        &d,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    let out = patch(
        &d,
        json!({"metadata": {"$setElementOrder/finalizers": ["b", "a"], "finalizers": ["a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b", "a"]));
}

#[test]
fn set_element_order_sorts_patched_items_and_keeps_server_only_ones_in_place() {
    let d = deployment();
    let out = patch(
        &d,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "new"}],
            "containers": [{"name": "new", "image": "n"}]
        }}}}),
    );
    let names: Vec<_> = containers(&out).iter().map(|c| c["name"].clone()).collect();
    // nginx is not named by the order: it keeps its place ahead of sidecar (first on the server).
    assert_eq!(names, vec!["nginx", "sidecar", "new"]);

    let out = patch(
        &d,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "nginx"}]
        }}}}),
    );
    let names: Vec<_> = containers(&out).iter().map(|c| c["name"].clone()).collect();
    assert_eq!(names, vec!["sidecar", "nginx"]);
}

#[test]
fn conditions_and_owner_references_merge_on_their_keys() {
    let pod = json!({"metadata": {"ownerReferences": [{"uid": "u1", "name": "a"}, {"uid": "u2", "name": "b"}]},
                     "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}});
    let out = apply(
        "Pod",
        &pod,
        &json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": "u1"}]},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    )
    .unwrap();
    assert_eq!(
        out["metadata"]["ownerReferences"],
        json!([{"uid": "u2", "name": "b"}])
    );
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}])
    );
}

#[test]
fn new_fields_have_their_directives_applied() {
    let out = apply(
        "Deployment",
        &json!({"spec": {}}),
        &json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "env": [{"$patch": "delete", "name": "X"}]}]}}}}),
    )
    .unwrap();
    assert_eq!(containers(&out), &vec![json!({"name": "a", "env": []})]);
}

#[test]
fn malformed_patches_are_bad_requests() {
    let d = deployment();
    for p in [
        json!([1]),
        json!({"metadata": {"$patch": "explode"}}),
        json!({"spec": {"template": {"spec": {"containers": [{"image": "no-name"}]}}}}),
        json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}}),
        json!({"spec": {"template": {"spec": {"containers": ["scalar"]}}}}),
        json!({"metadata": {"finalizers": [{"a": 1}]}}),
        json!({"metadata": {"$retainKeys": "name"}}),
        json!({"metadata": {"$setElementOrder/finalizers": "a"}}),
        json!({"metadata": {"$unknown": 1}}),
        json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"image": "x"}]}}}}),
    ] {
        let e = apply("Deployment", &d, &p);
        assert_eq!(
            e.as_ref().map_err(|e| e.code()).unwrap_err(),
            400,
            "{p} gave {e:?}"
        );
    }
}
