//! Deployment rollouts end to end: the real kubectl against `navarch up` with the process runtime. A Deployment
//! owns ReplicaSets, which own pods with readiness probes; rolling updates, `kubectl rollout status | history |
//! undo | pause | resume | restart`, a rollout that exceeds its progress deadline, and orphaning ReplicaSets.

#![allow(clippy::disallowed_methods)]

mod util;

use serde_json::Value;
use util::*;

const NS: &str = "rollouts";

/// Deployment `name` of `replicas` pods running `sleep <seconds>` (a command no other test uses), ready when
/// `probe` (a shell command) succeeds, with maxSurge 1 and maxUnavailable 1.
fn deployment(name: &str, replicas: u32, seconds: &str, probe: &str, extra_spec: &str) -> String {
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
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 1{extra_spec}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: busybox
        command: ["sleep", "{seconds}"]
        readinessProbe:
          exec:
            command: ["sh", "-c", "{probe}"]
          periodSeconds: 1
"#
    )
}

fn start() -> (Up, Kubectl) {
    let up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);
    k.ok(&["create", "namespace", NS]);
    wait_for("the node to be Ready", || {
        k.ok(&["get", "nodes"])
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some("Ready"))
            .then_some(())
    });
    (up, k)
}

fn apply(k: &Kubectl, manifest: &str) {
    let out = k.apply_stdin(&["apply", "-f", "-"], manifest);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn items(k: &Kubectl, args: &[&str]) -> Vec<Value> {
    k.json(args)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The ReplicaSets of app `name`, oldest first.
fn replica_sets(k: &Kubectl, name: &str) -> Vec<Value> {
    let mut rses = items(
        k,
        &["get", "replicasets", "-n", NS, "-l", &format!("app={name}")],
    );
    rses.sort_by_key(|rs| {
        rs["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    rses
}

fn annotation<'a>(object: &'a Value, key: &str) -> &'a str {
    object["metadata"]["annotations"][key]
        .as_str()
        .unwrap_or_default()
}

fn revision(object: &Value) -> &str {
    annotation(object, "deployment.kubernetes.io/revision")
}

fn spec_replicas(rs: &Value) -> i64 {
    rs["spec"]["replicas"].as_i64().unwrap_or(-1)
}

/// `kubectl rollout status`, which waits for the rollout to finish.
fn rollout_status(k: &Kubectl, name: &str) -> std::process::Output {
    k.run(&[
        "rollout",
        "status",
        &format!("deployment/{name}"),
        "-n",
        NS,
        "--timeout=150s",
    ])
}

fn rolled_out(k: &Kubectl, name: &str) {
    let out = rollout_status(k, name);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("successfully rolled out"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn processes(up: &Up, seconds: &str) -> usize {
    children_running(up.proc.pid(), &["sleep", seconds]).len()
}

fn wait_processes(up: &Up, seconds: &str, count: usize) {
    wait_for(&format!("{count} processes of sleep {seconds}"), || {
        (processes(up, seconds) == count).then_some(())
    });
}

#[test]
fn a_rolling_update_history_undo_pause_resume_restart_and_orphaning() {
    let (up, k) = start();
    apply(&k, &deployment("web", 4, "4631", "true", ""));
    rolled_out(&k, "web");
    wait_processes(&up, "4631", 4);

    // Deployment -> one ReplicaSet at revision 1 -> 4 pods it controls, tied by pod-template-hash.
    let rses = replica_sets(&k, "web");
    assert_eq!(rses.len(), 1, "{rses:?}");
    let first = rses[0].clone();
    let first_name = first["metadata"]["name"].as_str().unwrap().to_string();
    let hash = first["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(first_name, format!("web-{hash}"));
    assert_eq!(revision(&first), "1");
    assert_eq!(
        annotation(&first, "deployment.kubernetes.io/desired-replicas"),
        "4"
    );
    assert_eq!(
        annotation(&first, "deployment.kubernetes.io/max-replicas"),
        "5"
    );
    let owner = &first["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["controller"].as_bool()),
        (Some("Deployment"), Some(true))
    );
    let pods = items(&k, &["get", "pods", "-n", NS, "-l", "app=web"]);
    assert_eq!(pods.len(), 4);
    for pod in &pods {
        assert_eq!(
            pod["metadata"]["labels"]["pod-template-hash"],
            hash.as_str()
        );
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ReplicaSet");
        assert_eq!(owner["name"], first_name.as_str());
        assert_eq!(owner["blockOwnerDeletion"], true);
    }
    let d = k.json(&["get", "deployment", "web", "-n", NS]);
    assert_eq!(revision(&d), "1");

    // A new command rolls out: a new ReplicaSet at 4, the old one at 0, every process replaced.
    apply(&k, &deployment("web", 4, "4632", "true", ""));
    rolled_out(&k, "web");
    wait_processes(&up, "4632", 4);
    wait_processes(&up, "4631", 0);
    let rses = replica_sets(&k, "web");
    assert_eq!(rses.len(), 2, "{rses:?}");
    assert_eq!(rses[0]["metadata"]["name"], first_name.as_str());
    assert_eq!((spec_replicas(&rses[0]), revision(&rses[0])), (0, "1"));
    assert_eq!((spec_replicas(&rses[1]), revision(&rses[1])), (4, "2"));
    assert_eq!(rses[1]["status"]["availableReplicas"], 4);
    let second_name = rses[1]["metadata"]["name"].as_str().unwrap().to_string();
    let d = k.json(&["get", "deployment", "web", "-n", NS]);
    assert_eq!(revision(&d), "2");
    let status = &d["status"];
    assert_eq!(
        (
            &status["replicas"],
            &status["updatedReplicas"],
            &status["availableReplicas"]
        ),
        (&Value::from(4), &Value::from(4), &Value::from(4))
    );

    // History lists both revisions; revision 1's template has the first command.
    let history = k.ok(&["rollout", "history", "deployment/web", "-n", NS]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    let one = k.ok(&[
        "rollout",
        "history",
        "deployment/web",
        "-n",
        NS,
        "--revision=1",
    ]);
    assert!(one.contains("4631"), "{one}");

    // Undo to revision 1 re-uses the first ReplicaSet, which becomes revision 3.
    let out = k.ok(&[
        "rollout",
        "undo",
        "deployment/web",
        "-n",
        NS,
        "--to-revision=1",
    ]);
    assert!(out.contains("rolled back"), "{out}");
    rolled_out(&k, "web");
    wait_processes(&up, "4631", 4);
    wait_processes(&up, "4632", 0);
    let rses = replica_sets(&k, "web");
    assert_eq!(rses.len(), 2, "no new ReplicaSet for a rollback: {rses:?}");
    assert_eq!(rses[0]["metadata"]["name"], first_name.as_str());
    assert_eq!((spec_replicas(&rses[0]), revision(&rses[0])), (4, "3"));
    assert_eq!(
        annotation(&rses[0], "deployment.kubernetes.io/revision-history"),
        "1"
    );
    assert_eq!((spec_replicas(&rses[1]), revision(&rses[1])), (0, "2"));
    assert_eq!(
        revision(&k.json(&["get", "deployment", "web", "-n", NS])),
        "3"
    );

    // The controllers told what they did.
    let events = items(&k, &["get", "events", "-n", NS]);
    let reasons: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["involvedObject"]["kind"].as_str().unwrap_or_default(),
                e["reason"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    for wanted in [
        ("Deployment", "ScalingReplicaSet"),
        ("ReplicaSet", "SuccessfulCreate"),
        ("ReplicaSet", "SuccessfulDelete"),
    ] {
        assert!(reasons.contains(&wanted), "no {wanted:?} in {reasons:?}");
    }

    // Paused: a template change makes no ReplicaSet; resumed, it rolls out.
    k.ok(&["rollout", "pause", "deployment/web", "-n", NS]);
    apply(&k, &deployment("web", 4, "4633", "true", ""));
    wait_for("the Progressing condition to say DeploymentPaused", || {
        let d = k.json(&["get", "deployment", "web", "-n", NS]);
        d["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Progressing" && c["reason"] == "DeploymentPaused")
            .then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        replica_sets(&k, "web").len(),
        2,
        "a paused deployment rolled out"
    );
    assert_eq!(processes(&up, "4633"), 0);
    k.ok(&["rollout", "resume", "deployment/web", "-n", NS]);
    rolled_out(&k, "web");
    wait_processes(&up, "4633", 4);
    let rses = replica_sets(&k, "web");
    assert_eq!(rses.len(), 3);
    assert_eq!((spec_replicas(&rses[2]), revision(&rses[2])), (4, "4"));

    // Restart: same command, new pods, through a template annotation.
    let before: Vec<Value> = items(&k, &["get", "pods", "-n", NS, "-l", "app=web"])
        .into_iter()
        .map(|p| p["metadata"]["name"].clone())
        .collect();
    k.ok(&["rollout", "restart", "deployment/web", "-n", NS]);
    rolled_out(&k, "web");
    let d = k.json(&["get", "deployment", "web", "-n", NS]);
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string(),
        "{d}"
    );
    assert_eq!(revision(&d), "5");
    wait_for("every pod from before the restart to be gone", || {
        let now: Vec<Value> = items(&k, &["get", "pods", "-n", NS, "-l", "app=web"])
            .into_iter()
            .map(|p| p["metadata"]["name"].clone())
            .collect();
        (now.len() == 4 && now.iter().all(|n| !before.contains(n))).then_some(())
    });
    wait_processes(&up, "4633", 4);

    // Orphan: the Deployment goes, its ReplicaSets (and their pods) stay, without the reference to it.
    let uid = d["metadata"]["uid"].as_str().unwrap().to_string();
    k.ok(&[
        "delete",
        "deployment",
        "web",
        "-n",
        NS,
        "--cascade=orphan",
        "--timeout=60s",
    ]);
    let out = k.run(&["get", "deployment", "web", "-n", NS]);
    assert!(!out.status.success());
    let rses = replica_sets(&k, "web");
    assert_eq!(rses.len(), 4, "{rses:?}");
    for rs in &rses {
        let refs = rs["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(refs.iter().all(|r| r["uid"] != uid.as_str()), "{rs}");
    }
    assert!(rses
        .iter()
        .any(|rs| rs["metadata"]["name"] == second_name.as_str()));
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        processes(&up, "4633"),
        4,
        "the orphaned ReplicaSet's pods keep running"
    );
}

#[test]
fn a_rollout_whose_pods_never_get_ready_stops_and_exceeds_its_deadline() {
    let (up, k) = start();
    let deadline = "\n  progressDeadlineSeconds: 20";
    apply(&k, &deployment("stuck", 4, "4641", "true", deadline));
    rolled_out(&k, "stuck");
    wait_processes(&up, "4641", 4);

    // The new pods never become ready: one more pod (maxSurge) and one old one fewer (maxUnavailable), then no
    // further.
    apply(&k, &deployment("stuck", 4, "4642", "false", deadline));
    let d = wait_for(
        "the Progressing condition to say ProgressDeadlineExceeded",
        || {
            let d = k.json(&["get", "deployment", "stuck", "-n", NS]);
            let exceeded = d["status"]["conditions"].as_array()?.iter().any(|c| {
                c["type"] == "Progressing"
                    && c["status"] == "False"
                    && c["reason"] == "ProgressDeadlineExceeded"
            });
            exceeded.then_some(d)
        },
    );
    let rses = replica_sets(&k, "stuck");
    assert_eq!(rses.len(), 2);
    assert_eq!(spec_replicas(&rses[0]), 3, "old: 4 - maxUnavailable");
    assert_eq!(spec_replicas(&rses[1]), 2, "new: up to 4 + maxSurge in all");
    assert_eq!(rses[1]["status"]["readyReplicas"], Value::Null);
    assert_eq!(d["status"]["availableReplicas"], 3);
    let available = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Available")
        .cloned()
        .unwrap();
    assert_eq!(available["status"], "True");
    assert_eq!(processes(&up, "4641"), 3);

    let out = rollout_status(&k, "stuck");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exceeded its progress deadline"),
        "{stderr}"
    );
}
