//! `dryRun=All` (`kubectl ... --dry-run=server`) through the real kubectl against `navarch up`: create, apply,
//! patch, scale and delete answer what they would have done, after admission and the store's preconditions, and
//! the store is left exactly as it was.

#![allow(clippy::disallowed_methods)]

mod util;

use serde_json::Value;
use util::*;

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a: \"1\"}
";

#[test]
fn server_dry_runs_write_nothing() {
    let up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);

    // Create: the would-be object (defaulted, with a uid) comes back; nothing is stored.
    let out = k.ok(&[
        "create",
        "configmap",
        "ghost",
        "--from-literal=k=v",
        "--dry-run=server",
        "-o",
        "json",
    ]);
    let ghost: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(ghost["data"]["k"], "v");
    assert!(ghost["metadata"]["uid"].is_string(), "{ghost}");
    assert!(
        ghost["metadata"]["creationTimestamp"].is_string(),
        "{ghost}"
    );
    let missing = k.run(&["get", "configmap", "ghost"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NotFound"));

    // Admission still runs: an invalid object is refused as it would be for real.
    let bad = k.run(&["create", "configmap", "Bad_Name", "--dry-run=server"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("Invalid"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    k.apply_stdin(&["apply", "-f", "-"], CONFIGMAP);
    let before = k.json(&["get", "configmap", "cfg"]);
    // Create of an existing object is AlreadyExists in a dry run too.
    let again = k.apply_stdin(&["create", "--dry-run=server", "-f", "-"], CONFIGMAP);
    assert!(String::from_utf8_lossy(&again.stderr).contains("AlreadyExists"));

    // Apply, patch, scale-like updates and delete: answered, not made.
    let changed = CONFIGMAP.replace("a: \"1\"", "a: \"2\"");
    let out = k.apply_stdin(&["apply", "--dry-run=server", "-f", "-"], &changed);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("configured (server dry run)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = k.apply_stdin(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "-f",
            "-",
        ],
        &changed,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let patched = k.ok(&[
        "patch",
        "configmap",
        "cfg",
        "--type=merge",
        "-p",
        r#"{"data":{"b":"3"}}"#,
        "--dry-run=server",
        "-o",
        "json",
    ]);
    let patched: Value = serde_json::from_str(&patched).expect("json");
    assert_eq!(patched["data"]["b"], "3");
    let out = k.ok(&["delete", "configmap", "cfg", "--dry-run=server"]);
    assert!(out.contains("deleted (server dry run)"), "{out}");
    let after = k.json(&["get", "configmap", "cfg"]);
    assert_eq!(after, before, "the store is unchanged");

    // Only "All" is a dry run; anything else is refused rather than ignored.
    let (code, body) = http(
        &up.api,
        "POST",
        "/api/v1/namespaces/default/configmaps?dryRun=Some",
        "application/json",
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
    )
    .expect("answer");
    assert_eq!(code, 400, "{body}");
}
