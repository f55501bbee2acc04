//! Server-side apply through the real kubectl against `navarch up`: `kubectl apply --server-side` creates and
//! merges (never replaces), is idempotent, removes what a manager stops applying, keeps what other managers own,
//! refuses conflicting changes with 409 until `--force-conflicts`, and takes over from client-side apply.

mod util;

use std::process::Output;

use util::{start_up, Kubectl};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn deployment(name: &str, replicas: u32, env: &[(&str, &str)]) -> String {
    let env: String = env
        .iter()
        .map(|(n, v)| format!("\n        - name: {n}\n          value: \"{v}\""))
        .collect();
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: default
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: main
        image: busybox
        command: ["sleep", "3600"]
        env:{env}
"#
    )
}

fn ssa(k: &Kubectl, extra: &[&str], manifest: &str) -> Output {
    let mut args = vec!["apply", "--server-side", "-f", "-"];
    args.extend_from_slice(extra);
    k.apply_stdin(&args, manifest)
}

/// The object with its managedFields (kubectl hides them by default).
fn get(k: &Kubectl, kind: &str, name: &str) -> serde_json::Value {
    k.json(&["get", kind, name, "--show-managed-fields"])
}

fn managers(object: &serde_json::Value) -> Vec<String> {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{}/{}",
                e["manager"].as_str().unwrap_or_default(),
                e["operation"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn server_side_apply_merges_owns_fields_and_conflicts() {
    let up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);

    // Create: the full spec is stored, owned by kubectl's Apply entry.
    let out = ssa(&k, &[], &deployment("web", 0, &[("A", "1"), ("B", "2")]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "deployment.apps/web serverside-applied"
    );
    let yaml = k.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "yaml",
        "--show-managed-fields",
    ]);
    for expected in [
        "image: busybox",
        "replicas: 0",
        "name: A",
        "manager: kubectl",
        "operation: Apply",
        "f:replicas: {}",
    ] {
        assert!(yaml.contains(expected), "{expected:?} missing from\n{yaml}");
    }
    let first = get(&k, "deployment", "web");
    assert_eq!(managers(&first), vec!["kubectl/Apply"]);

    // The same content again writes nothing.
    let out = ssa(&k, &[], &deployment("web", 0, &[("A", "1"), ("B", "2")]));
    assert!(out.status.success(), "{}", stderr(&out));
    let again = get(&k, "deployment", "web");
    assert_eq!(
        again["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );

    // Dropping an env var from the configuration removes it; the rest stays.
    let out = ssa(&k, &[], &deployment("web", 0, &[("A", "1")]));
    assert!(out.status.success(), "{}", stderr(&out));
    let d = get(&k, "deployment", "web");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["env"], serde_json::json!([{"name": "A", "value": "1"}]));
    assert_eq!(c["image"], "busybox");

    // Another manager changing replicas conflicts, naming the field and the owner.
    let out = ssa(
        &k,
        &["--field-manager", "other"],
        &deployment("web", 2, &[("A", "1")]),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"),
        "{err}"
    );
    assert!(err.contains("--force-conflicts"), "{err}");
    // Forced, it wins and takes the field.
    let out = ssa(
        &k,
        &["--field-manager", "other", "--force-conflicts"],
        &deployment("web", 2, &[("A", "1")]),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let d = get(&k, "deployment", "web");
    assert_eq!(d["spec"]["replicas"], 2);
    assert!(
        managers(&d).contains(&"other/Apply".to_string()),
        "{:?}",
        managers(&d)
    );

    // kubectl scale records an Update (kubectl sends no fieldManager there: the manager is the User-Agent's
    // "kubectl", on the scale subresource): a later apply of another replicas by someone else conflicts with it.
    k.ok(&["scale", "deployment", "web", "--replicas=1"]);
    let out = ssa(
        &k,
        &["--field-manager", "third"],
        &deployment("web", 3, &[("A", "1")]),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"
        ),
        "{err}"
    );

    // No field manager: refused as kube-apiserver refuses it.
    let (code, body) = util::http(
        &up.api,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/web",
        "application/apply-patch+yaml",
        br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"}}"#,
    )
    .expect("PATCH");
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("fieldManager: Required value: is required for apply patch"),
        "{body}"
    );

    // Unknown fields are refused, naming them.
    let bad =
        deployment("web", 1, &[("A", "1")]).replace("  replicas: 1", "  replicas: 1\n  bogus: 1");
    let out = ssa(&k, &[], &bad);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bogus"), "{}", stderr(&out));

    // A missing namespace is 404.
    let out = ssa(
        &k,
        &[],
        &deployment("web", 1, &[]).replace("namespace: default", "namespace: nowhere"),
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}

#[test]
fn server_side_apply_shares_objects_and_takes_over_from_client_side_apply() {
    let up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);

    // Two managers, each owning its own keys of one ConfigMap.
    let cm = |key: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n  namespace: default\ndata:\n  {key}: \"v\"\n")
    };
    assert!(ssa(&k, &["--field-manager", "one"], &cm("a"))
        .status
        .success());
    assert!(ssa(&k, &["--field-manager", "two"], &cm("b"))
        .status
        .success());
    let got = k.json(&["get", "configmap", "shared"]);
    assert_eq!(got["data"], serde_json::json!({"a": "v", "b": "v"}));

    // Client-side apply first, then server-side: the spec stays, the last-applied annotation is kept.
    let manifest = deployment("csa", 0, &[("X", "1")]);
    let out = k.apply_stdin(&["apply", "-f", "-"], &manifest);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ssa(&k, &[], &manifest);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "deployment.apps/csa serverside-applied"
    );
    let d = get(&k, "deployment", "csa");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox"
    );
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "csa");
    assert!(
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    let m = managers(&d);
    assert!(m.contains(&"kubectl/Apply".to_string()), "{m:?}");

    // Other kinds: a Service, a Secret with stringData, a ServiceAccount, a Namespace.
    let others = r#"apiVersion: v1
kind: Namespace
metadata:
  name: ssa-ns
  labels: {team: a}
---
apiVersion: v1
kind: Service
metadata:
  name: svc
  namespace: default
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: default
stringData:
  user: admin
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: robot
  namespace: default
"#;
    let out = ssa(&k, &[], others);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "namespace/ssa-ns serverside-applied",
        "service/svc serverside-applied",
        "secret/creds serverside-applied",
        "serviceaccount/robot serverside-applied",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from\n{text}");
    }
    // Applied again: still fine, nothing to conflict with.
    let out = ssa(&k, &[], others);
    assert!(out.status.success(), "{}", stderr(&out));
    let svc = k.json(&["get", "service", "svc"]);
    assert_eq!(
        svc["spec"]["ports"].as_array().map(Vec::len),
        Some(1),
        "{svc}"
    );
    assert_eq!(
        k.json(&["get", "secret", "creds"])["data"]["user"],
        "YWRtaW4="
    );
}
