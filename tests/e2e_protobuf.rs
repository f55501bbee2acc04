//! The real kubectl's protobuf bodies against `navarch up`: `kubectl create namespace|deployment|configmap|secret`
//! send `application/vnd.kubernetes.protobuf` and never fall back to JSON; answers stay JSON even when the client
//! prefers protobuf.

#![allow(clippy::disallowed_methods)]

mod util;

use std::io::Write;

use util::*;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// A captured kubectl body (see gateway/tests/fixtures/protobuf/capture.py).
fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/gateway/tests/fixtures/protobuf/{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// GET with an `Accept` header; returns the response head (lowercased) and body.
fn get_accepting(base: &str, path: &str, accept: &str) -> (String, String) {
    let (mut stream, addr) = connect(base).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{}Accept: {accept}\r\nConnection: close\r\n\r\n",
        auth_header(base)
    )
    .expect("write");
    stream.flush().expect("flush");
    let raw = read_all(&mut stream).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    (head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn kubectl_create_sends_protobuf_and_it_works() {
    let up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);

    let out = k.ok(&["create", "namespace", "team-a"]);
    assert_eq!(out.trim(), "namespace/team-a created");
    let ns = k.json(&["get", "ns", "team-a"]);
    assert_eq!(ns["metadata"]["name"], "team-a");
    assert!(ns["metadata"]["creationTimestamp"].is_string(), "{ns}");
    assert!(ns["metadata"]["uid"].is_string(), "{ns}");

    let out = k.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "-n",
        "team-a",
    ]);
    assert_eq!(out.trim(), "deployment.apps/web created");
    let d = k.json(&["get", "deployment", "web", "-n", "team-a"]);
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox"
    );

    // A pointer set to zero survives decoding and admission (the body of `--replicas=0`).
    let (code, body) = http(
        &up.api,
        "POST",
        "/apis/apps/v1/namespaces/team-a/deployments?fieldManager=kubectl-create&fieldValidation=Strict",
        PROTOBUF,
        &fixture("deployment-zero"),
    )
    .expect("POST");
    assert_eq!(code, 201, "{body}");
    let d = k.json(&["get", "deployment", "idle", "-n", "team-a"]);
    assert_eq!(d["spec"]["replicas"], 0);

    // PUT takes protobuf too.
    let (code, body) = http(
        &up.api,
        "PUT",
        "/api/v1/namespaces/team-a",
        PROTOBUF,
        &fixture("namespace"),
    )
    .expect("PUT");
    assert_eq!(code, 200, "{body}");

    // Garbage is a 400 Status, the connection and the server unharmed.
    let (code, body) = http(
        &up.api,
        "POST",
        "/api/v1/namespaces",
        PROTOBUF,
        b"k8s\0\x0a\xff\xff",
    )
    .expect("POST garbage");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("\"kind\":\"Status\""), "{body}");

    // A client preferring protobuf answers still gets JSON, labelled as such.
    let (head, body) = get_accepting(
        &up.api,
        "/api/v1/namespaces/team-a",
        &format!("{PROTOBUF}, application/json"),
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let ns: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(ns["metadata"]["name"], "team-a");
    let out = k.ok(&["describe", "namespace", "team-a"]);
    assert!(out.contains("team-a"), "{out}");

    // ConfigMap and Secret: `kubectl create configmap|secret` send protobuf too.
    {
        let out = k.ok(&[
            "create",
            "configmap",
            "cfg",
            "--from-literal=a=b",
            "--from-literal=c=d",
            "-n",
            "team-a",
        ]);
        assert_eq!(out.trim(), "configmap/cfg created");
        let cm = k.json(&["get", "configmap", "cfg", "-n", "team-a"]);
        assert_eq!(cm["data"], serde_json::json!({"a": "b", "c": "d"}));
    }
    {
        let out = k.ok(&[
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=password=hunter2",
            "-n",
            "team-a",
        ]);
        assert_eq!(out.trim(), "secret/s created");
        let s = k.json(&["get", "secret", "s", "-n", "team-a"]);
        assert_eq!(s["data"]["password"], "aHVudGVyMg==");
    }

    // The other `kubectl create` generators that send protobuf.
    for (args, created) in [
        (
            &[
                "create",
                "service",
                "clusterip",
                "svc",
                "--tcp=80:8080",
                "-n",
                "team-a",
            ][..],
            "service/svc created",
        ),
        (
            &["create", "serviceaccount", "sa", "-n", "team-a"][..],
            "serviceaccount/sa created",
        ),
        (
            &[
                "create",
                "role",
                "r",
                "--verb=get",
                "--resource=pods",
                "-n",
                "team-a",
            ][..],
            "role.rbac.authorization.k8s.io/r created",
        ),
        (
            &[
                "create",
                "rolebinding",
                "rb",
                "--role=r",
                "--serviceaccount=team-a:sa",
                "-n",
                "team-a",
            ][..],
            "rolebinding.rbac.authorization.k8s.io/rb created",
        ),
    ] {
        assert_eq!(k.ok(args).trim(), created);
    }
    let svc = k.json(&["get", "service", "svc", "-n", "team-a"]);
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    let role = k.json(&["get", "role", "r", "-n", "team-a"]);
    assert_eq!(role["rules"][0]["verbs"], serde_json::json!(["get"]));
    assert_eq!(role["rules"][0]["resources"], serde_json::json!(["pods"]));
    let rb = k.json(&["get", "rolebinding", "rb", "-n", "team-a"]);
    assert_eq!(rb["subjects"][0]["kind"], "ServiceAccount");
    assert_eq!(rb["subjects"][0]["namespace"], "team-a");
}
