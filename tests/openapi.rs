//! OpenAPI v3 with Kubernetes' schemas through the real kubectl against `navarch up`: `kubectl explain` prints
//! Kubernetes' descriptions and fields, `kubectl apply` builds its strategic merge patches from the served patch
//! metadata, and unknown fields are still refused, naming the field.

mod util;

use util::{start_up, Kubectl};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn kubectl_explain_prints_kubernetes_descriptions_and_fields() {
    let up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);

    let out = k.ok(&["explain", "deployment.spec.strategy"]);
    for expected in [
        "GROUP:      apps",
        "KIND:       Deployment",
        "FIELD: strategy <DeploymentStrategy>",
        "The deployment strategy to use to replace existing pods with new ones.",
        "FIELDS:",
        "rollingUpdate\t<RollingUpdateDeployment>",
        "type\t<string>",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from\n{out}");
    }

    let out = k.ok(&["explain", "pod.spec.containers.ports"]);
    assert!(out.contains("FIELD: ports <[]ContainerPort>"), "{out}");
    assert!(out.contains("containerPort\t<integer> -required-"), "{out}");
    assert!(out.contains("protocol\t<string>"), "{out}");

    let out = k.ok(&["explain", "configmap"]);
    assert!(
        out.contains("ConfigMap holds configuration data for pods to consume."),
        "{out}"
    );
    assert!(out.contains("data\t<map[string]string>"), "{out}");
    assert!(out.contains("metadata\t<ObjectMeta>"), "{out}");

    let out = k.ok(&["explain", "hpa.spec.metrics"]);
    assert!(out.contains("VERSION:    v2"), "{out}");
    assert!(out.contains("FIELD: metrics <[]MetricSpec>"), "{out}");
    assert!(out.contains("type\t<string> -required-"), "{out}");

    let out = k.ok(&["explain", "--recursive", "service.spec"]);
    assert!(out.contains("targetPort\t<IntOrString>"), "{out}");
    assert!(
        out.contains("sessionAffinityConfig\t<SessionAffinityConfig>"),
        "{out}"
    );

    // Every served kind has its schema, cluster-scoped and RBAC kinds included.
    for kind in [
        "namespace",
        "node",
        "endpoints",
        "secret",
        "event",
        "serviceaccount",
        "lease",
        "rs",
    ] {
        k.ok(&["explain", kind]);
    }
    k.ok(&["explain", "clusterrolebinding.subjects"]);
}

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  strategy: {type: STRATEGY}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: main
        image: IMAGE
        command: [sleep, "3617"]
        env: [ENV]
"#;

fn deployment(strategy: &str, image: &str, env: &str) -> String {
    DEPLOYMENT
        .replace("STRATEGY", strategy)
        .replace("IMAGE", image)
        .replace("ENV", env)
}

#[test]
fn apply_patches_from_the_served_patch_metadata_and_unknown_fields_are_refused() {
    let up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);

    let first = deployment("RollingUpdate", "busybox:1", "{name: A, value: '1'}");
    let out = k.apply_stdin(&["apply", "-f", "-"], &first);
    assert!(
        stdout(&out).contains("deployment.apps/web created"),
        "{}",
        stderr(&out)
    );

    // A new image, another strategy, env A replaced by B: kubectl computes the patch from the v3 schemas (it no
    // longer falls back to /openapi/v2) with their directives: $retainKeys for the strategy (patch strategy
    // retainKeys), $setElementOrder for containers and env (merged by name).
    let second = deployment("Recreate", "busybox:2", "{name: B, value: '2'}");
    let out = k.apply_stdin(&["apply", "-f", "-", "-v=8"], &second);
    let log = stderr(&out);
    assert!(
        stdout(&out).contains("deployment.apps/web configured"),
        "{log}"
    );
    assert!(
        log.contains("Content-Type: application/strategic-merge-patch+json"),
        "{log}"
    );
    assert!(log.contains(r#"\"$retainKeys\":[\"type\"]"#), "{log}");
    assert!(
        log.contains(r#"\"$setElementOrder/env\":[{\"name\":\"B\"}]"#),
        "{log}"
    );
    assert!(log.contains("/openapi/v3/apis/apps/v1?hash="), "{log}");
    assert!(!log.contains("/openapi/v2"), "{log}");
    assert!(
        !log.contains("error calculating patch from openapi v3 spec"),
        "{log}"
    );
    let got = k.json(&["get", "deployment", "web"]);
    assert_eq!(
        got["spec"]["strategy"],
        serde_json::json!({"type": "Recreate"})
    );
    let container = &got["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "busybox:2");
    assert_eq!(
        container["env"],
        serde_json::json!([{"name": "B", "value": "2"}])
    );

    let out = k.apply_stdin(&["apply", "-f", "-"], &second);
    assert!(
        stdout(&out).contains("deployment.apps/web unchanged"),
        "{}",
        stderr(&out)
    );

    // Unknown fields: refused by the server on create (POST ?fieldValidation=Strict) and on configure (the patch).
    let typo = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg","namespace":"default"},
      "data":{"a":"1"},"dataz":{"b":"2"}}"#;
    let out = k.apply_stdin(&["apply", "-f", "-"], typo);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"unknown field "dataz""#),
        "{}",
        stderr(&out)
    );
    assert!(!k.run(&["get", "configmap", "cfg"]).status.success());

    let typo = second.replace("  replicas: 1\n", "  replicas: 1\n  replicaz: 3\n");
    let out = k.apply_stdin(&["apply", "-f", "-"], &typo);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"unknown field "spec.replicaz""#),
        "{}",
        stderr(&out)
    );
}
