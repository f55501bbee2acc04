//! Every core kind through the real kubectl against `navarch up`: discovery lists them, apply creates them with
//! Kubernetes' defaults and re-applies them unchanged, and invalid objects are refused with their field causes.

#![allow(clippy::disallowed_methods)]

mod util;

use base64::Engine;
use util::*;

const MANIFEST: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: kinds
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: kinds}
data: {greeting: hello, "app.properties": "a=b"}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: kinds}
stringData: {password: hunter2}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: kinds}
# No selector: the Endpoints below are given by hand, as for a Service in front of something outside the cluster
# (with a selector, the endpoints controller would replace them with the selected pods).
spec:
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: metrics, port: 9090}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: robot, namespace: kinds}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: kinds}
rules:
- {apiGroups: [""], resources: [pods, configmaps], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: robot-reads, namespace: kinds}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
- {kind: ServiceAccount, name: robot, namespace: kinds}
- {kind: User, name: alice}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "kinds:node-viewer"}
rules:
- {apiGroups: [""], resources: [nodes], verbs: [get, list]}
- {nonResourceURLs: ["/healthz"], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kinds:robot-views-nodes"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "kinds:node-viewer"}
subjects:
- {kind: ServiceAccount, name: robot, namespace: kinds}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: kinds}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 5
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: leader, namespace: kinds}
spec: {holderIdentity: me, leaseDurationSeconds: 15}
---
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: kinds}
subsets:
- addresses: [{ip: 10.1.0.5}]
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web-rs, namespace: kinds}
spec:
  replicas: 0
  selector: {matchLabels: {app: rs}}
  template:
    metadata: {labels: {app: rs}}
    spec:
      containers: [{name: main, image: busybox, command: [sleep, "3611"]}]
"#;

/// The kinds the manifest creates, as `kubectl apply` names them.
const CREATED: &[&str] = &[
    "configmap/cfg",
    "secret/creds",
    "service/web",
    "serviceaccount/robot",
    "role.rbac.authorization.k8s.io/reader",
    "rolebinding.rbac.authorization.k8s.io/robot-reads",
    "clusterrole.rbac.authorization.k8s.io/kinds:node-viewer",
    "clusterrolebinding.rbac.authorization.k8s.io/kinds:robot-views-nodes",
    "horizontalpodautoscaler.autoscaling/web",
    "lease.coordination.k8s.io/leader",
    "endpoints/web",
    "replicaset.apps/web-rs",
];

#[test]
fn every_core_kind_applies_with_defaults_and_reapplies_unchanged() {
    let up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);

    let resources = k.ok(&["api-resources"]);
    for row in [
        ["configmaps", "cm", "v1", "true", "ConfigMap"],
        ["endpoints", "ep", "v1", "true", "Endpoints"],
        ["events", "ev", "v1", "true", "Event"],
        ["serviceaccounts", "sa", "v1", "true", "ServiceAccount"],
        ["services", "svc", "v1", "true", "Service"],
        ["replicasets", "rs", "apps/v1", "true", "ReplicaSet"],
        [
            "horizontalpodautoscalers",
            "hpa",
            "autoscaling/v2",
            "true",
            "HorizontalPodAutoscaler",
        ],
    ] {
        assert!(
            resources
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == row),
            "api-resources has no row {row:?}:\n{resources}"
        );
    }
    for (name, group, namespaced, kind) in [
        ("secrets", "v1", "true", "Secret"),
        ("leases", "coordination.k8s.io/v1", "true", "Lease"),
        ("roles", "rbac.authorization.k8s.io/v1", "true", "Role"),
        (
            "clusterrolebindings",
            "rbac.authorization.k8s.io/v1",
            "false",
            "ClusterRoleBinding",
        ),
    ] {
        let row = [name, group, namespaced, kind];
        assert!(
            resources
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == row),
            "api-resources has no row {row:?}:\n{resources}"
        );
    }

    let out = k.apply_stdin(&["apply", "-f", "-"], MANIFEST);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in CREATED {
        assert!(
            stdout.contains(&format!("{name} created")),
            "{name} not created:\n{stdout}"
        );
    }

    let secret = k.json(&["get", "secret", "creds", "-n", "kinds"]);
    assert_eq!(secret["type"], "Opaque");
    assert!(
        secret.get("stringData").is_none(),
        "stringData is folded into data: {secret}"
    );
    let password = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["password"].as_str().expect("data.password"))
        .expect("base64");
    assert_eq!(password, b"hunter2");

    let svc = k.json(&["get", "svc", "web", "-n", "kinds"]);
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["sessionAffinity"], "None");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(svc["spec"]["ports"][1]["targetPort"], 9090);
    assert_eq!(svc["spec"]["ports"][1]["protocol"], "TCP");

    let hpa = k.json(&["get", "hpa", "web", "-n", "kinds"]);
    assert_eq!(hpa["spec"]["minReplicas"], 1);
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["name"], "cpu");
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );

    let rs = k.json(&["get", "rs", "web-rs", "-n", "kinds"]);
    assert_eq!(rs["metadata"]["generation"], 1);
    assert_eq!(rs["spec"]["template"]["spec"]["restartPolicy"], "Always");

    let crb = k.json(&["get", "clusterrolebinding", "kinds:robot-views-nodes"]);
    assert_eq!(crb["roleRef"]["name"], "kinds:node-viewer");
    let rb = k.json(&["get", "rolebinding", "robot-reads", "-n", "kinds"]);
    assert_eq!(rb["subjects"][1]["apiGroup"], "rbac.authorization.k8s.io");

    // Applying the same manifest again changes nothing, except where Kubernetes' own three-way merge reports a
    // change each time too: `stringData` is never stored (it is folded into `data`), and the User subject's
    // defaulted apiGroup makes the atomic `subjects` list differ from the applied one.
    let out = k.apply_stdin(&["apply", "-f", "-"], MANIFEST);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in CREATED {
        let expected = match *name {
            "secret/creds" | "rolebinding.rbac.authorization.k8s.io/robot-reads" => "configured",
            _ => "unchanged",
        };
        assert!(
            stdout.contains(&format!("{name} {expected}")),
            "{name} not {expected}:\n{stdout}"
        );
    }

    // A changed ConfigMap value is configured in place; the other key stays.
    let changed = MANIFEST.replace("greeting: hello", "greeting: bonjour");
    let out = k.apply_stdin(&["apply", "-f", "-"], &changed);
    assert!(String::from_utf8_lossy(&out.stdout).contains("configmap/cfg configured"));
    let cm = k.json(&["get", "cm", "cfg", "-n", "kinds"]);
    assert_eq!(cm["data"]["greeting"], "bonjour");
    assert_eq!(cm["data"]["app.properties"], "a=b");

    // Tables carry Kubernetes' columns for each kind.
    let row = |args: &[&str], name: &str| -> Vec<String> {
        let out = k.ok(args);
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name} in:\n{out}"));
        line.split_whitespace().map(str::to_string).collect()
    };
    let header = |args: &[&str]| -> String {
        let out = k.ok(args);
        out.lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(header(&["get", "cm", "-n", "kinds"]), "NAME DATA AGE");
    assert_eq!(row(&["get", "cm", "-n", "kinds"], "cfg")[..2], ["cfg", "2"]);
    assert_eq!(
        header(&["get", "secret", "-n", "kinds"]),
        "NAME TYPE DATA AGE"
    );
    assert_eq!(
        row(&["get", "secret", "-n", "kinds"], "creds")[..3],
        ["creds", "Opaque", "1"]
    );
    assert_eq!(
        header(&["get", "svc", "-n", "kinds"]),
        "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE"
    );
    assert!(row(&["get", "svc", "-n", "kinds"], "web").contains(&"80/TCP,9090/TCP".to_string()));
    assert_eq!(
        header(&["get", "hpa", "-n", "kinds"]),
        "NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE"
    );
    assert_eq!(
        row(&["get", "hpa", "-n", "kinds"], "web")[..2],
        ["web", "Deployment/web"]
    );
    assert_eq!(
        row(
            &["get", "rolebinding", "-n", "kinds", "-o", "wide"],
            "robot-reads"
        )[..2],
        ["robot-reads", "Role/reader"]
    );
    assert_eq!(
        row(&["get", "ep", "-n", "kinds"], "web")[..2],
        ["web", "10.1.0.5:8080"]
    );
    assert_eq!(
        header(&["get", "rs", "-n", "kinds"]),
        "NAME DESIRED CURRENT READY AGE"
    );

    // kubectl get all shows the service and the autoscaler among the namespace's objects.
    let all = k.ok(&["get", "all", "-n", "kinds", "-o", "name"]);
    for name in [
        "service/web",
        "horizontalpodautoscaler.autoscaling/web",
        "replicaset.apps/web-rs",
    ] {
        assert!(
            all.lines().any(|l| l == name),
            "get all lacks {name}:\n{all}"
        );
    }
}

#[test]
fn invalid_objects_of_the_new_kinds_are_refused_with_field_causes() {
    let up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);
    let out = k.apply_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: bad}\n",
    );
    assert!(out.status.success());
    let refused = |manifest: &str, expected: &[&str]| {
        let out = k.apply_stdin(&["apply", "-n", "bad", "-f", "-"], manifest);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted:\n{manifest}");
        for text in expected {
            assert!(stderr.contains(text), "{text:?} missing from:\n{stderr}");
        }
    };
    refused(
        "apiVersion: v1\nkind: Service\nmetadata: {name: 1web}\nspec: {ports: [{port: 70000}]}\n",
        &[
            "metadata.name: Invalid value: \"1web\"",
            "spec.ports[0].port: Invalid value: 70000",
        ],
    );
    refused(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: tls}\ntype: kubernetes.io/tls\nstringData: {tls.crt: x}\n",
        &["data[tls.key]: Required value"],
    );
    refused(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {\"bad key\": x}\n",
        &["data[bad key]: Invalid value"],
    );
    refused(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: rb}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Robot, name: r}\n",
        &["roleRef.kind: Unsupported value: \"Robot\""],
    );
    refused(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec: {scaleTargetRef: {kind: Deployment, name: web}, minReplicas: 3, maxReplicas: 2}\n",
        &["spec.maxReplicas: Invalid value: 2"],
    );

    // An immutable ConfigMap keeps its data.
    let frozen = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\ndata: {k: \"1\"}\n";
    let out = k.apply_stdin(&["apply", "-n", "bad", "-f", "-"], frozen);
    assert!(out.status.success());
    refused(
        &frozen.replace("\"1\"", "\"2\""),
        &["field is immutable when `immutable` is set"],
    );
    let cm = k.json(&["get", "cm", "frozen", "-n", "bad"]);
    assert_eq!(cm["data"]["k"], "1");
    let names = k.ok(&[
        "get",
        "svc,secret,cm,rolebinding,hpa",
        "-n",
        "bad",
        "-o",
        "name",
    ]);
    assert_eq!(names.trim(), "configmap/frozen", "nothing else was stored");
}

#[test]
fn kubectl_discovers_the_whole_api_in_two_aggregated_requests() {
    let up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);
    let out = k.run(&["api-resources", "-v=6"]);
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    let gets: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("GET http") && l.contains("200 OK"))
        .collect();
    assert!(
        gets.iter().any(|l| l.contains("/api?")) && gets.iter().any(|l| l.contains("/apis?")),
        "{log}"
    );
    assert!(
        !gets
            .iter()
            .any(|l| l.contains("/apis/apps/v1") || l.contains("/api/v1?")),
        "aggregated discovery needs no per-group request:\n{log}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("deployments"), "{stdout}");
    assert!(stdout.contains("horizontalpodautoscalers"), "{stdout}");
}
