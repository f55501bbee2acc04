//! Bad input at the API gets a Kubernetes Status with the right code and changes nothing.

#![allow(clippy::disallowed_methods)]

mod util;

use serde_json::Value;
use util::*;

fn status(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not a Status ({e}): {body}"))
}

fn assert_status(resp: Option<(u16, String)>, code: u16, reason: &str) -> Value {
    let (got, body) = resp.expect("an HTTP answer");
    let s = status(&body);
    assert_eq!(got, code, "{body}");
    assert_eq!(s["kind"], "Status", "{body}");
    assert_eq!(s["code"], code, "{body}");
    assert_eq!(s["reason"], reason, "{body}");
    assert!(
        s["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    s
}

/// Every object in namespace `demo`, as (kind/name, resourceVersion).
fn snapshot(api: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in [
        "/apis/apps/v1/namespaces/demo/deployments",
        "/api/v1/namespaces/demo/pods",
    ] {
        let (code, body) = http_get(api, path).expect("list");
        assert_eq!(code, 200, "{body}");
        let list: Value = serde_json::from_str(&body).expect("list json");
        for item in list["items"].as_array().into_iter().flatten() {
            out.push((
                format!("{}/{}", list["kind"], item["metadata"]["name"]),
                item["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn bad_requests_get_statuses_and_change_nothing() {
    let up = start_up(&[]);
    let api = up.api.as_str();
    let deployments = "/apis/apps/v1/namespaces/demo/deployments";
    let good = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
        "spec":{"replicas":1,"selector":{"matchLabels":{"app":"web"}},
        "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"i","command":["sleep","3613"]}]}}}}"#;
    let ns = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"demo"}}"#;
    assert_eq!(
        http(
            api,
            "POST",
            "/api/v1/namespaces",
            "application/json",
            ns.as_bytes()
        )
        .unwrap()
        .0,
        201
    );
    assert_eq!(
        http(
            api,
            "POST",
            deployments,
            "application/json",
            good.as_bytes()
        )
        .unwrap()
        .0,
        201
    );
    // Let the control loops converge (pod created, bound, running; deployment status written) before comparing.
    let before = wait_for("the deployment to settle", || {
        let first = snapshot(api);
        let running = http_get(api, "/api/v1/namespaces/demo/pods")
            .is_some_and(|(_, body)| body.contains("\"phase\":\"Running\""));
        std::thread::sleep(std::time::Duration::from_secs(2));
        (running && first.len() == 2 && snapshot(api) == first).then_some(first)
    });

    // Malformed JSON and YAML.
    assert_status(
        http(
            api,
            "POST",
            deployments,
            "application/json",
            b"{\"apiVersion\": ",
        ),
        400,
        "BadRequest",
    );
    assert_status(
        http(
            api,
            "POST",
            deployments,
            "application/yaml",
            b"apiVersion: apps/v1\nkind: [unclosed\n",
        ),
        400,
        "BadRequest",
    );
    // A body that is JSON but not an object.
    assert_status(
        http(api, "POST", deployments, "application/json", b"[1,2,3]"),
        400,
        "BadRequest",
    );
    // Unknown resource.
    assert_status(
        http(
            api,
            "POST",
            "/apis/apps/v1/namespaces/demo/frobnicators",
            "application/json",
            b"{}",
        ),
        404,
        "NotFound",
    );
    // A kind that does not match the URL.
    let wrong_kind = good.replace("\"Deployment\"", "\"Frobnicator\"");
    assert_status(
        http(
            api,
            "POST",
            deployments,
            "application/json",
            wrong_kind.as_bytes(),
        ),
        400,
        "BadRequest",
    );
    // Missing name.
    let nameless = good.replace(r#""metadata":{"name":"web"}"#, r#""metadata":{}"#);
    let s = assert_status(
        http(
            api,
            "POST",
            deployments,
            "application/json",
            nameless.as_bytes(),
        ),
        422,
        "Invalid",
    );
    assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
    // Negative replicas on create, update and scale.
    let negative = good.replace(r#""replicas":1"#, r#""replicas":-1"#).replace(
        r#""metadata":{"name":"web"}"#,
        r#""metadata":{"name":"web2"}"#,
    );
    let s = assert_status(
        http(
            api,
            "POST",
            deployments,
            "application/json",
            negative.as_bytes(),
        ),
        422,
        "Invalid",
    );
    assert_eq!(s["details"]["causes"][0]["field"], "spec.replicas");
    assert_status(
        http(
            api,
            "PATCH",
            &format!("{deployments}/web"),
            "application/merge-patch+json",
            br#"{"spec":{"replicas":-1}}"#,
        ),
        422,
        "Invalid",
    );
    assert_status(
        http(
            api,
            "PATCH",
            &format!("{deployments}/web/scale"),
            "application/merge-patch+json",
            br#"{"spec":{"replicas":-1}}"#,
        ),
        422,
        "Invalid",
    );
    // Wrong types.
    assert_status(
        http(
            api,
            "PATCH",
            &format!("{deployments}/web"),
            "application/merge-patch+json",
            br#"{"spec":{"replicas":"three"}}"#,
        ),
        400,
        "BadRequest",
    );
    // Missing objects.
    assert_status(
        http_get(api, &format!("{deployments}/nope")),
        404,
        "NotFound",
    );
    assert_status(
        http(
            api,
            "DELETE",
            &format!("{deployments}/nope"),
            "application/json",
            b"",
        ),
        404,
        "NotFound",
    );
    // Creating twice.
    assert_status(
        http(
            api,
            "POST",
            deployments,
            "application/json",
            good.as_bytes(),
        ),
        409,
        "AlreadyExists",
    );
    // A namespace that does not exist.
    assert_status(
        http(
            api,
            "POST",
            "/apis/apps/v1/namespaces/nowhere/deployments",
            "application/json",
            good.as_bytes(),
        ),
        404,
        "NotFound",
    );

    assert_eq!(snapshot(api), before, "bad requests changed stored objects");
}

#[test]
fn kubectl_reports_bad_manifests_without_changing_anything() {
    let up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);
    k.ok(&["get", "ns"]);
    let negative = r#"apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  replicas: -1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: i, command: [sleep, "3613"]}]}
"#;
    let out = k.apply_stdin(&["apply", "-f", "-"], negative);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.replicas"), "{err}");
    assert!(err.contains("is invalid"), "{err}");
    let deployments = k.json(&["get", "deployments", "-n", "demo"]);
    assert_eq!(deployments["items"].as_array().map(Vec::len), Some(0));

    let unknown = r#"{"apiVersion":"apps/v1","kind":"Frobnicator","metadata":{"name":"x","namespace":"demo"}}"#;
    let out = k.apply_stdin(&["apply", "-f", "-"], unknown);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Frobnicator"));

    // A `kind: List` goes through kubectl's OpenAPI v2 fallback; the server still refuses unknown fields.
    let list = r#"{"apiVersion":"v1","kind":"List","items":[
      {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"typo","labelz":{"a":"b"}}}]}"#;
    let out = k.apply_stdin(&["apply", "-f", "-"], list);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field \"metadata.labelz\""));
    assert!(!k.run(&["get", "namespace", "typo"]).status.success());

    let out = k.run(&["scale", "deployment", "nope", "-n", "demo", "--replicas=2"]);
    assert!(!out.status.success());
    // kubectl 1.32 words it "no objects passed to scale deployments.apps \"nope\" not found".
    assert!(String::from_utf8_lossy(&out.stderr).contains("deployments.apps \"nope\" not found"));
}
