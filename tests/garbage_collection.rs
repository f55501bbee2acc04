//! Cascading deletion end to end: the real kubectl against `navarch up` deletes Deployments with
//! `--cascade=background|orphan|foreground` and ConfigMaps with one, two or missing owners; the garbage collector in
//! the controllers role does the rest, checked against the store and the pods' real processes.
//!
//! A Deployment owns ReplicaSets, which own the pods: deletion cascades over both levels (foreground too, the
//! ReplicaSets being deleted in the foreground themselves), and orphaning leaves the ReplicaSets with their pods.

#![allow(clippy::disallowed_methods)]

mod util;

use serde_json::Value;
use util::*;

const NS: &str = "gc";

/// A Deployment `name` of `replicas` pods running `sleep <seconds>` (a command no other test uses), whose
/// container ignores SIGTERM (the shell's ignored signal stays ignored across `exec`) so that a deleted pod stays
/// Terminating for its grace period of `grace` seconds.
fn deployment(name: &str, replicas: u32, seconds: &str, grace: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {NS}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: {grace}
      containers:
      - name: main
        image: busybox
        command: ["sh", "-c", "trap '' TERM; exec sleep {seconds}"]
"#
    )
}

fn pods_of(k: &Kubectl, app: &str) -> Vec<Value> {
    k.json(&["get", "pods", "-n", NS, "-l", &format!("app={app}")])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn replica_sets_of(k: &Kubectl, app: &str) -> Vec<Value> {
    k.json(&["get", "replicasets", "-n", NS, "-l", &format!("app={app}")])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn running(pods: &[Value]) -> usize {
    pods.iter()
        .filter(|p| {
            p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
        })
        .count()
}

fn processes(up: &Up, seconds: &str) -> usize {
    children_running(up.proc.pid(), &["sleep", seconds]).len()
}

/// Applies Deployment `name` and waits until its `replicas` pods run, each with its process.
fn run_deployment(k: &Kubectl, up: &Up, name: &str, seconds: &str, grace: u32) -> String {
    let out = k.apply_stdin(&["apply", "-f", "-"], &deployment(name, 2, seconds, grace));
    assert!(out.status.success());
    wait_for(
        &format!("2 pods of {name} running with their processes"),
        || (running(&pods_of(k, name)) == 2 && processes(up, seconds) == 2).then_some(()),
    );
    k.json(&["get", "deployment", name, "-n", NS])["metadata"]["uid"]
        .as_str()
        .expect("a uid")
        .to_string()
}

fn owner_uids(object: &Value) -> Vec<String> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r["uid"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn exists(k: &Kubectl, args: &[&str]) -> bool {
    let out = k.run(args);
    if out.status.success() {
        return true;
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NotFound"), "unexpected failure: {stderr}");
    false
}

#[test]
fn deployments_cascade_in_the_background_in_the_foreground_and_orphan_their_pods() {
    let mut up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);
    k.ok(&["create", "namespace", NS]);
    wait_for("the node to be Ready", || {
        k.ok(&["get", "nodes"])
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some("Ready"))
            .then_some(())
    });

    // Orphan: the Deployment goes, its pods stay and keep running, without their reference to it.
    let uid = run_deployment(&k, &up, "keeper", "4817", 1);
    let before: Vec<String> = pods_of(&k, "keeper")
        .iter()
        .map(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    k.ok(&[
        "delete",
        "deployment",
        "keeper",
        "-n",
        NS,
        "--cascade=orphan",
        "--timeout=60s",
    ]);
    assert!(!exists(&k, &["get", "deployment", "keeper", "-n", NS]));
    let kept = replica_sets_of(&k, "keeper");
    assert_eq!(kept.len(), 1, "the orphaned ReplicaSet stays: {kept:?}");
    assert!(
        !owner_uids(&kept[0]).contains(&uid),
        "still owned by the deleted Deployment: {}",
        kept[0]
    );
    let orphans = pods_of(&k, "keeper");
    let names: Vec<&str> = orphans
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, before, "the orphaned pods are the same pods");
    for pod in &orphans {
        assert!(
            !owner_uids(pod).contains(&uid),
            "still owned by the deleted Deployment: {pod}"
        );
        assert!(pod["metadata"]["deletionTimestamp"].is_null(), "{pod}");
    }

    // Background: the Deployment goes at once, then the collector deletes its pods and their processes stop.
    run_deployment(&k, &up, "bg", "4818", 1);
    k.ok(&[
        "delete",
        "deployment",
        "bg",
        "-n",
        NS,
        "--cascade=background",
    ]);
    wait_for(
        "the ReplicaSet and pods of bg and their processes to be gone",
        || {
            (replica_sets_of(&k, "bg").is_empty()
                && pods_of(&k, "bg").is_empty()
                && processes(&up, "4818") == 0)
                .then_some(())
        },
    );

    // The orphans were left alone meanwhile, although the collector worked on bg's pods after them.
    assert_eq!(running(&pods_of(&k, "keeper")), 2);
    assert_eq!(processes(&up, "4817"), 2);

    // Foreground: the Deployment stays, marked, until its pods are gone; then it goes.
    run_deployment(&k, &up, "fg", "4819", 8);
    k.ok(&[
        "delete",
        "deployment",
        "fg",
        "-n",
        NS,
        "--cascade=foreground",
        "--wait=false",
    ]);
    let marked = k.json(&["get", "deployment", "fg", "-n", NS]);
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    let finalizers = marked["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        finalizers.iter().any(|f| f == "foregroundDeletion"),
        "{marked}"
    );
    wait_for(
        "fg's pods to be terminating while fg is still there",
        || {
            let pods = pods_of(&k, "fg");
            let terminating = !pods.is_empty()
                && pods
                    .iter()
                    .all(|p| p["metadata"]["deletionTimestamp"].is_string());
            (terminating && exists(&k, &["get", "deployment", "fg", "-n", NS])).then_some(())
        },
    );
    wait_for("fg and its pods to be gone", || {
        (!exists(&k, &["get", "deployment", "fg", "-n", NS]) && pods_of(&k, "fg").is_empty())
            .then_some(())
    });
    assert_eq!(
        processes(&up, "4819"),
        0,
        "fg went only once its pods' processes had stopped"
    );
    assert_eq!(running(&pods_of(&k, "keeper")), 2);

    // An unknown policy is refused as kube-apiserver refuses it.
    let out = k.run(&[
        "delete",
        "--raw",
        &format!(
            "/api/v1/namespaces/{NS}/pods/{}?propagationPolicy=Sideways",
            before[0]
        ),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Unsupported value: \\\"Sideways\\\"")
            || stderr.contains("Unsupported value: \"Sideways\""),
        "{stderr}"
    );
    assert_eq!(running(&pods_of(&k, "keeper")), 2);

    // The orphans are still navarch's pods: stopping it stops them.
    let pids = children_running(up.proc.pid(), &["sleep", "4817"]);
    assert_eq!(pids.len(), 2);
    assert!(up.proc.terminate().success());
    let left: Vec<u32> = pids
        .into_iter()
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        .collect();
    assert!(
        left.is_empty(),
        "orphaned pods' processes left running: {left:?}"
    );
}

fn configmap(name: &str, owners: &[(&str, &str)]) -> String {
    let refs: Vec<String> = owners
        .iter()
        .map(|(owner, uid)| {
            format!("\n  - apiVersion: v1\n    kind: ConfigMap\n    name: {owner}\n    uid: {uid}")
        })
        .collect();
    let owner_references = if refs.is_empty() {
        String::new()
    } else {
        format!("\n  ownerReferences:{}", refs.concat())
    };
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {NS}{owner_references}\ndata:\n  k: v\n")
}

/// Creates ConfigMap `name` owned by `owners` (name, uid); its uid.
fn create_configmap(k: &Kubectl, name: &str, owners: &[(&str, &str)]) -> String {
    let out = k.apply_stdin(
        &["create", "-f", "-", "-o", "json"],
        &configmap(name, owners),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value =
        serde_json::from_slice(&out.stdout).expect("kubectl create -o json output");
    created["metadata"]["uid"]
        .as_str()
        .expect("a uid")
        .to_string()
}

#[test]
fn a_dependent_lives_while_any_owner_does_and_goes_when_none_is_left() {
    let up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);
    k.ok(&["create", "namespace", NS]);

    let a = create_configmap(&k, "a", &[]);
    let b = create_configmap(&k, "b", &[]);
    create_configmap(&k, "child", &[("a", &a), ("b", &b)]);
    // An owner that never existed, and one whose name now belongs to another object: both count as gone.
    create_configmap(
        &k,
        "stray",
        &[("ghost", "00000000-0000-0000-0000-000000000000")],
    );
    create_configmap(&k, "successor", &[]);
    create_configmap(
        &k,
        "mistaken",
        &[("successor", "11111111-1111-1111-1111-111111111111")],
    );
    wait_for("the dependents of missing owners to be collected", || {
        (!exists(&k, &["get", "configmap", "stray", "-n", NS])
            && !exists(&k, &["get", "configmap", "mistaken", "-n", NS]))
        .then_some(())
    });
    assert!(exists(&k, &["get", "configmap", "successor", "-n", NS]));

    k.ok(&["delete", "configmap", "a", "-n", NS]);
    let child = wait_for("child to lose its reference to a", || {
        let child = k.json(&["get", "configmap", "child", "-n", NS]);
        (!owner_uids(&child).contains(&a)).then_some(child)
    });
    assert_eq!(owner_uids(&child), vec![b.clone()], "child survives with b");

    k.ok(&["delete", "configmap", "b", "-n", NS]);
    wait_for("child to go with its last owner", || {
        (!exists(&k, &["get", "configmap", "child", "-n", NS])).then_some(())
    });

    // Foreground reaches down: root <- mid <- leaf, each reference blocking, and leaf held by a finalizer of its own.
    // mid has a dependent, so it is deleted in the foreground too; both owners wait until leaf is really gone.
    let root = create_configmap(&k, "root", &[]);
    let mid = create_blocked_configmap(&k, "mid", "root", &root, &[]);
    create_blocked_configmap(&k, "leaf", "mid", &mid, &["example.com/hold"]);
    k.ok(&[
        "delete",
        "configmap",
        "root",
        "-n",
        NS,
        "--cascade=foreground",
        "--wait=false",
    ]);
    let marked = |name: &str| {
        let o = k.json(&["get", "configmap", name, "-n", NS]);
        o["metadata"]["deletionTimestamp"].is_string()
            && o["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "foregroundDeletion"))
    };
    wait_for(
        "leaf to be deleted and held while mid and root wait for it",
        || {
            let leaf = k.json(&["get", "configmap", "leaf", "-n", NS]);
            (leaf["metadata"]["deletionTimestamp"].is_string() && marked("mid") && marked("root"))
                .then_some(())
        },
    );
    k.ok(&[
        "patch",
        "configmap",
        "leaf",
        "-n",
        NS,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    wait_for("leaf, mid and root to be gone", || {
        ["leaf", "mid", "root"]
            .iter()
            .all(|n| !exists(&k, &["get", "configmap", n, "-n", NS]))
            .then_some(())
    });
}

/// Creates ConfigMap `name` owned by `owner` (with `blockOwnerDeletion`) and holding `finalizers`; its uid.
fn create_blocked_configmap(
    k: &Kubectl,
    name: &str,
    owner: &str,
    uid: &str,
    finalizers: &[&str],
) -> String {
    let manifest = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS, "finalizers": finalizers,
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": uid,
                                 "blockOwnerDeletion": true}]}
    });
    let out = k.apply_stdin(&["create", "-f", "-", "-o", "json"], &manifest.to_string());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value =
        serde_json::from_slice(&out.stdout).expect("kubectl create -o json output");
    created["metadata"]["uid"]
        .as_str()
        .expect("a uid")
        .to_string()
}
