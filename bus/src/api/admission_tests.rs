use serde_json::json;

use super::*;
use crate::api::error::Reason;
use crate::api::resource::by_kind;

fn cx(ns: Option<&str>) -> Context<'_> {
    Context {
        namespace: ns,
        validation: FieldValidation::Strict,
        now: meta::parse_time("2026-11-27T00:00:00Z").unwrap(),
        uid: "u-1".into(),
        name_suffix: "abcde".into(),
    }
}

fn deployment(replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"x\": 1}\n"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}}
        }
    })
}

#[test]
fn create_fills_metadata_and_defaults() {
    let info = by_kind("apps/v1", "Deployment").unwrap();
    let a = create(info, deployment(3), &cx(Some("demo"))).unwrap();
    let o = &a.object;
    assert_eq!(o["metadata"]["namespace"], "demo");
    assert_eq!(o["metadata"]["uid"], "u-1");
    assert_eq!(o["metadata"]["generation"], 1);
    assert_eq!(o["metadata"]["creationTimestamp"], "2026-11-27T00:00:00Z");
    assert_eq!(
        o["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{\"x\": 1}\n"
    );
    assert_eq!(o["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(o["spec"]["revisionHistoryLimit"], 10);
    let c = &o["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(o["spec"]["template"]["spec"]["restartPolicy"], "Always");
    assert!(o["metadata"].get("resourceVersion").is_none());
    assert!(o.get("status").is_none());
}

#[test]
fn negative_replicas_are_invalid_with_a_cause() {
    let info = by_kind("apps/v1", "Deployment").unwrap();
    let e = create(info, deployment(-1), &cx(Some("demo"))).unwrap_err();
    assert_eq!(e.reason, Reason::Invalid);
    assert_eq!(e.causes()[0].field, "spec.replicas");
    assert!(
        e.message.contains("must be greater than or equal to 0"),
        "{}",
        e.message
    );
}

#[test]
fn decoding_errors_and_unknown_fields() {
    let info = by_kind("apps/v1", "Deployment").unwrap();
    let mut d = deployment(1);
    d["spec"]["replicas"] = json!("three");
    let e = create(info, d, &cx(Some("demo"))).unwrap_err();
    assert_eq!(e.reason, Reason::BadRequest);

    let mut d = deployment(1);
    d["spec"]["replicaz"] = json!(2);
    let e = create(info, d.clone(), &cx(Some("demo"))).unwrap_err();
    assert!(
        e.message.contains("unknown field \"spec.replicaz\""),
        "{}",
        e.message
    );
    let mut lax = cx(Some("demo"));
    lax.validation = FieldValidation::Warn;
    let mut nested = d.clone();
    nested["spec"]["template"]["spec"]["containers"][0]["imag"] = json!("x");
    let e = create(info, nested, &cx(Some("demo"))).unwrap_err();
    assert!(
        e.message
            .contains("\"spec.template.spec.containers[0].imag\""),
        "{}",
        e.message
    );
    let a = create(info, d, &lax).unwrap();
    assert_eq!(
        a.warnings,
        vec!["unknown field \"spec.replicaz\"".to_string()]
    );
    assert!(a.object["spec"].get("replicaz").is_none());
}

#[test]
fn names_and_namespaces() {
    let info = by_kind("v1", "Pod").unwrap();
    let pod = json!({"metadata": {"generateName": "web-"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    let a = create(info, pod.clone(), &cx(Some("demo"))).unwrap();
    assert_eq!(a.object["metadata"]["name"], "web-abcde");
    assert_eq!(a.object["status"]["phase"], "Pending");
    assert_eq!(a.object["status"]["qosClass"], "BestEffort");

    let e = create(
        info,
        json!({"metadata": {}, "spec": {"containers": []}}),
        &cx(Some("demo")),
    )
    .unwrap_err();
    assert_eq!(e.reason, Reason::Invalid);
    assert_eq!(e.causes()[0].field, "metadata.name");

    let mut other = pod.clone();
    other["metadata"]["namespace"] = json!("elsewhere");
    assert_eq!(
        create(info, other, &cx(Some("demo"))).unwrap_err().reason,
        Reason::BadRequest
    );

    let mut bad = pod;
    bad["metadata"]["name"] = json!("Bad_Name");
    assert_eq!(
        create(info, bad, &cx(Some("demo"))).unwrap_err().reason,
        Reason::Invalid
    );

    let wrong_kind = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}});
    assert_eq!(
        create(info, wrong_kind, &cx(Some("demo")))
            .unwrap_err()
            .reason,
        Reason::BadRequest
    );
    assert_eq!(
        create(info, json!([1, 2]), &cx(Some("demo")))
            .unwrap_err()
            .reason,
        Reason::BadRequest
    );
}

#[test]
fn update_bumps_generation_only_on_spec_changes_and_keeps_server_fields() {
    let info = by_kind("apps/v1", "Deployment").unwrap();
    let old = create(info, deployment(3), &cx(Some("demo")))
        .unwrap()
        .object;
    let mut same = old.clone();
    same["metadata"]["labels"] = json!({"team": "a"});
    same["metadata"]["uid"] = json!("");
    same["metadata"]["creationTimestamp"] = json!("2000-01-01T00:00:00Z");
    let a = update(info, &old, same, Part::Main, &cx(Some("demo"))).unwrap();
    assert_eq!(a.object["metadata"]["generation"], 1);
    assert_eq!(a.object["metadata"]["uid"], "u-1");
    assert_eq!(
        a.object["metadata"]["creationTimestamp"],
        "2026-11-27T00:00:00Z"
    );

    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(5);
    scaled["status"] = json!({"replicas": 99});
    let a = update(info, &old, scaled, Part::Main, &cx(Some("demo"))).unwrap();
    assert_eq!(a.object["metadata"]["generation"], 2);
    assert!(
        a.object.get("status").is_none(),
        "status is written through /status only"
    );

    let mut status = old.clone();
    status["spec"]["replicas"] = json!(7);
    status["status"] = json!({"replicas": 3, "observedGeneration": 1});
    let a = update(info, &old, status, Part::Status, &cx(Some("demo"))).unwrap();
    assert_eq!(a.object["spec"]["replicas"], 3);
    assert_eq!(a.object["status"]["replicas"], 3);

    let mut reselect = old.clone();
    reselect["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
    reselect["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
    let e = update(info, &old, reselect, Part::Main, &cx(Some("demo"))).unwrap_err();
    assert_eq!(e.causes()[0].field, "spec.selector");
}

#[test]
fn pod_specs_are_immutable_except_binding_and_images() {
    let info = by_kind("v1", "Pod").unwrap();
    let pod =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    let old = create(info, pod, &cx(Some("demo"))).unwrap().object;
    let mut bound = old.clone();
    bound["spec"]["nodeName"] = json!("node-1");
    let bound = update(info, &old, bound, Part::Main, &cx(Some("demo")))
        .unwrap()
        .object;
    assert_eq!(bound["spec"]["nodeName"], "node-1");
    let mut moved = bound.clone();
    moved["spec"]["nodeName"] = json!("node-2");
    assert!(update(info, &bound, moved, Part::Main, &cx(Some("demo"))).is_err());
    let mut image = bound.clone();
    image["spec"]["containers"][0]["image"] = json!("j");
    assert!(update(info, &bound, image, Part::Main, &cx(Some("demo"))).is_ok());
    let mut command = bound.clone();
    command["spec"]["containers"][0]["command"] = json!(["x"]);
    assert_eq!(
        update(info, &bound, command, Part::Main, &cx(Some("demo")))
            .unwrap_err()
            .reason,
        Reason::Invalid
    );
}

#[test]
fn namespaces_get_defaults() {
    let info = by_kind("v1", "Namespace").unwrap();
    let a = create(
        info,
        json!({"metadata": {"name": "demo", "namespace": "x"}}),
        &cx(None),
    )
    .unwrap();
    assert_eq!(a.object["status"]["phase"], "Active");
    assert_eq!(
        a.object["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "demo"
    );
    assert!(a.object["metadata"].get("namespace").is_none());
    let e = create(info, json!({"metadata": {"name": "a.b"}}), &cx(None)).unwrap_err();
    assert_eq!(e.reason, Reason::Invalid);
}

#[test]
fn managed_fields_are_kept_as_sent_or_as_stored() {
    let info = by_kind("apps/v1", "Deployment").unwrap();
    let entry = json!([{"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
                        "time": "2026-11-27T00:00:00Z", "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
    let mut sent = deployment(3);
    sent["metadata"]["managedFields"] = entry.clone();
    let created = create(info, sent, &cx(Some("demo"))).unwrap().object;
    assert_eq!(created["metadata"]["managedFields"], entry);
    // An update without managedFields keeps the stored ones; one with them replaces them (kube-apiserver's rule).
    let kept = update(info, &created, deployment(4), Part::Main, &cx(Some("demo")))
        .unwrap()
        .object;
    assert_eq!(kept["metadata"]["managedFields"], entry);
    let mut cleared = deployment(4);
    cleared["metadata"]["managedFields"] = json!([]);
    let cleared = update(info, &created, cleared, Part::Main, &cx(Some("demo")))
        .unwrap()
        .object;
    assert!(cleared["metadata"]["managedFields"]
        .as_array()
        .is_none_or(Vec::is_empty));
}

#[test]
fn an_object_being_deleted_may_lose_finalizers_but_gain_none() {
    let info = by_kind("v1", "ConfigMap").unwrap();
    let old = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "demo", "uid": "u-1", "finalizers": ["a", "b"],
                     "deletionTimestamp": "2026-11-27T00:00:00Z", "deletionGracePeriodSeconds": 0}});
    let mut fewer = old.clone();
    fewer["metadata"]["finalizers"] = json!(["b"]);
    let admitted = update(info, &old, fewer, Part::Main, &cx(Some("demo"))).unwrap();
    assert_eq!(admitted.object["metadata"]["finalizers"], json!(["b"]));
    assert!(meta::is_deleting(&admitted.object));
    let mut more = old.clone();
    more["metadata"]["finalizers"] = json!(["a", "c"]);
    let e = update(info, &old, more, Part::Main, &cx(Some("demo"))).unwrap_err();
    assert_eq!(e.reason, Reason::Invalid);
    assert_eq!(
        e.message,
        "ConfigMap \"c\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object \
         is being deleted, found new finalizers []string{\"c\"}"
    );
    let mut live = old.clone();
    meta::metadata_mut(&mut live).remove("deletionTimestamp");
    let mut more = live.clone();
    more["metadata"]["finalizers"] = json!(["a", "c"]);
    assert!(update(info, &live, more, Part::Main, &cx(Some("demo"))).is_ok());
}

#[test]
fn rolling_update_bounds_are_validated_as_kubernetes_does() {
    let info = by_kind("apps/v1", "Deployment").unwrap();
    let refused = |rolling: Value, extra: Option<(&str, Value)>| -> Vec<(String, String)> {
        let mut d = deployment(4);
        d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": rolling});
        if let Some((k, v)) = extra {
            d["spec"][k] = v;
        }
        match create(info, d, &cx(Some("demo"))) {
            Ok(_) => vec![],
            Err(e) => {
                assert_eq!(e.reason, Reason::Invalid);
                e.causes()
                    .iter()
                    .map(|c| (c.field.clone(), c.message.clone()))
                    .collect()
            }
        }
    };
    assert_eq!(
        refused(json!({"maxSurge": 1, "maxUnavailable": "0%"}), None),
        vec![]
    );
    let both_zero = refused(json!({"maxSurge": "0%", "maxUnavailable": 0}), None);
    assert_eq!(both_zero.len(), 1, "{both_zero:?}");
    assert_eq!(both_zero[0].0, "spec.strategy.rollingUpdate.maxUnavailable");
    assert!(
        both_zero[0].1.contains("may not be 0 when `maxSurge` is 0"),
        "{both_zero:?}"
    );
    let bad = refused(json!({"maxSurge": "ten", "maxUnavailable": "101%"}), None);
    let fields: Vec<&str> = bad.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.strategy.rollingUpdate.maxSurge",
            "spec.strategy.rollingUpdate.maxUnavailable"
        ],
        "{bad:?}"
    );
    assert!(
        bad[1].1.contains("must not be greater than 100%"),
        "{bad:?}"
    );
    let negative = refused(json!({"maxSurge": -1, "maxUnavailable": 1}), None);
    assert_eq!(negative[0].0, "spec.strategy.rollingUpdate.maxSurge");
    let deadline = refused(
        json!({"maxSurge": 1, "maxUnavailable": 1}),
        Some(("minReadySeconds", json!(30))),
    );
    assert_eq!(deadline, vec![]);
    let mut d = deployment(1);
    d["spec"]["minReadySeconds"] = json!(30);
    d["spec"]["progressDeadlineSeconds"] = json!(30);
    let e = create(info, d, &cx(Some("demo"))).unwrap_err();
    assert_eq!(e.causes()[0].field, "spec.progressDeadlineSeconds");
    let mut d = deployment(1);
    d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}});
    let e = create(info, d, &cx(Some("demo"))).unwrap_err();
    assert_eq!(e.causes()[0].field, "spec.strategy.rollingUpdate");
}

#[test]
fn new_pods_tolerate_failed_nodes_for_five_minutes_unless_they_say_otherwise() {
    let info = by_kind("v1", "Pod").unwrap();
    let pod = |tolerations: Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [{"name": "c", "image": "busybox"}], "tolerations": tolerations}})
    };
    let created = create(info, pod(Value::Null), &cx(Some("demo")))
        .unwrap()
        .object;
    assert_eq!(
        created["spec"]["tolerations"],
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ])
    );
    // A pod's own toleration of a taint is kept, whatever its seconds; only the other one is added.
    let own = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]);
    let created = create(info, pod(own), &cx(Some("demo"))).unwrap().object;
    let tolerations = created["spec"]["tolerations"].as_array().unwrap();
    assert_eq!(tolerations.len(), 2);
    assert_eq!(tolerations[0]["tolerationSeconds"], 2);
    assert_eq!(tolerations[1]["key"], "node.kubernetes.io/not-ready");
    // A toleration of everything covers both.
    let all = create(
        info,
        pod(json!([{"operator": "Exists"}])),
        &cx(Some("demo")),
    )
    .unwrap()
    .object;
    assert_eq!(all["spec"]["tolerations"], json!([{"operator": "Exists"}]));
    // Deployment templates are not pods: they get none (their pods will, when created).
    let d = create(
        by_kind("apps/v1", "Deployment").unwrap(),
        deployment(1),
        &cx(Some("demo")),
    )
    .unwrap();
    assert!(d.object["spec"]["template"]["spec"]
        .get("tolerations")
        .is_none());
}
