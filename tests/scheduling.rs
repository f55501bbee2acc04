//! The scheduler's filters and events seen through the real kubectl, with every role in its own process and three
//! node agents: required pod anti-affinity spreads a Deployment one pod per node and explains the pod left over;
//! a pod too big for any node stays Pending with a FailedScheduling event (deduplicated: its count rises); a pod
//! whose nodeSelector no node matches is scheduled once `kubectl label node` makes one match; a pod of higher
//! priority preempts one of lower priority.

#![allow(clippy::disallowed_methods)]

mod util;

use serde_json::Value;
use util::*;

const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// The pod's PodScheduled condition, if it has one.
fn scheduled_condition(pod: &Value) -> Option<&Value> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "PodScheduled")
}

/// The FailedScheduling or Scheduled events about the pod named `name`.
fn events_about<'a>(events: &'a Value, name: &str, reason: &str) -> Vec<&'a Value> {
    events["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|e| e["involvedObject"]["name"] == name && e["reason"] == reason)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn filters_and_events_through_kubectl() {
    let (_nats, url) = start_nats();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |p: &str| dir.path().join(p).to_str().expect("utf-8").to_string();
    let common = ["--nats", url.as_str(), "--cluster", "scheduling"];
    let start = |name: &str, extra: &[&str]| {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(common);
        spawn(name, &args)
    };

    let plane = ControlPlane::start((&url, "scheduling"), dir.path());
    let _scheduler = start("scheduler", &["scheduler"]);
    let _controllers = start("controllers", &["controllers"]);
    let _agents: Vec<_> = NODES
        .iter()
        .map(|n| {
            let data = path(&format!("agent-{n}"));
            start(
                &format!("agent-{n}"),
                &["agent", "--data-dir", &data, "--node-name", n],
            )
        })
        .collect();

    plane.wait_ready();
    let k = plane.kubectl();
    wait_for("three Ready nodes", || {
        let out = String::from_utf8_lossy(&k.run(&["get", "nodes"]).stdout).into_owned();
        (out.matches(" Ready").count() == 3).then_some(())
    });

    let manifest = r#"apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: web}}
            topologyKey: kubernetes.io/hostname
      containers: [{name: main, image: busybox, command: ["sleep", "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: hog, namespace: demo}
spec:
  containers:
  - {name: main, image: busybox, command: ["sleep", "3600"], resources: {requests: {cpu: "1000"}}}
---
apiVersion: v1
kind: Pod
metadata: {name: picky, namespace: demo}
spec:
  nodeSelector: {disk: ssd}
  containers: [{name: main, image: busybox, command: ["sleep", "3600"]}]
"#;
    assert!(k
        .apply_stdin(&["apply", "-f", "-"], manifest)
        .status
        .success());

    // (a) One web pod Running on each node.
    wait_for("3 web pods Running, one per node", || {
        let pods = k.json(&["get", "pods", "-n", "demo", "-l", "app=web"]);
        let items = pods["items"].as_array()?;
        let mut nodes: Vec<&str> = items
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .filter_map(|p| p["spec"]["nodeName"].as_str())
            .collect();
        nodes.sort();
        (nodes == NODES).then_some(())
    });
    k.ok(&["scale", "deployment", "web", "-n", "demo", "--replicas=4"]);
    // kube-scheduler 1.32's words, preemption's included (every pod has priority 0: no victims).
    let anti = "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. \
                preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod..";
    let left_over = wait_for("the 4th web pod to be explained", || {
        let pods = k.json(&["get", "pods", "-n", "demo", "-l", "app=web"]);
        let pending: Vec<&Value> = pods["items"]
            .as_array()?
            .iter()
            .filter(|p| p["spec"]["nodeName"].as_str().is_none_or(str::is_empty))
            .collect();
        let [pod] = pending.as_slice() else {
            return None;
        };
        let c = scheduled_condition(pod)?;
        (c["status"] == "False" && c["reason"] == "Unschedulable" && c["message"] == anti).then(
            || {
                pod["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            },
        )
    });
    let pod = k.json(&["get", "pod", "-n", "demo", &left_over]);
    assert_eq!(pod["status"]["phase"], "Pending");

    // (b) Too big for every node: Pending, explained, and a FailedScheduling event.
    let insufficient = "0/3 nodes are available: 3 Insufficient cpu. \
                        preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod..";
    wait_for("hog to be explained", || {
        let pod = k.json(&["get", "pod", "-n", "demo", "hog"]);
        let c = scheduled_condition(&pod)?;
        (pod["status"]["phase"] == "Pending"
            && c["status"] == "False"
            && c["message"] == insufficient)
            .then_some(())
    });
    wait_for("a FailedScheduling event for hog", || {
        let events = k.json(&["get", "events", "-n", "demo"]);
        let found = events_about(&events, "hog", "FailedScheduling");
        let [e] = found.as_slice() else { return None };
        assert_eq!(e["type"], "Warning");
        assert_eq!(e["message"], insufficient);
        assert_eq!(e["source"]["component"], "default-scheduler");
        assert_eq!(e["involvedObject"]["kind"], "Pod");
        Some(())
    });
    let table = k.ok(&["get", "events", "-n", "demo"]);
    assert!(
        table
            .lines()
            .any(|l| l.contains("FailedScheduling") && l.contains("pod/hog")),
        "{table}"
    );
    let described = k.ok(&["describe", "pod", "-n", "demo", "hog"]);
    assert!(described.contains("FailedScheduling"), "{described}");
    let events = k.json(&["get", "events", "-n", "demo"]);
    let scheduled = events_about(&events, &left_over, "FailedScheduling");
    assert_eq!(scheduled.len(), 1, "one event for the left-over web pod");
    assert_eq!(scheduled[0]["message"], anti);
    let web = k.json(&["get", "pods", "-n", "demo", "-l", "app=web"]);
    let placed = web["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|p| {
            p["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
        })
        .expect("a bound web pod");
    let name = placed["metadata"]["name"].as_str().expect("name");
    let node = placed["spec"]["nodeName"].as_str().expect("node");
    let assigned = events_about(&events, name, "Scheduled");
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0]["type"], "Normal");
    assert_eq!(
        assigned[0]["message"],
        format!("Successfully assigned demo/{name} to {node}")
    );

    // (c) No node has the label: Pending until n2 gets it.
    wait_for("picky to be explained", || {
        let pod = k.json(&["get", "pod", "-n", "demo", "picky"]);
        let c = scheduled_condition(&pod)?;
        let selector = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. \
                        preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling..";
        (c["message"] == selector).then_some(())
    });
    k.ok(&["label", "node", "n2", "disk=ssd"]);
    wait_for("picky Running on n2", || {
        let pod = k.json(&["get", "pod", "-n", "demo", "picky"]);
        (pod["spec"]["nodeName"] == "n2" && pod["status"]["phase"] == "Running").then_some(())
    });

    // (d) Preemption: a pod of priority 1000 wanting all of n3's CPU makes room by evicting one of priority 0.
    let cpu = k.json(&["get", "node", "n3"])["status"]["allocatable"]["cpu"]
        .as_str()
        .expect("n3's allocatable cpu")
        .to_string();
    let on_n3 = |name: &str, priority: u32| {
        format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: demo}}
spec:
  priority: {priority}
  nodeSelector: {{kubernetes.io/hostname: n3}}
  containers:
  - {{name: main, image: busybox, command: ["sleep", "3600"], resources: {{requests: {{cpu: "{cpu}"}}}}}}
"#
        )
    };
    assert!(k
        .apply_stdin(&["apply", "-f", "-"], &on_n3("filler", 0))
        .status
        .success());
    wait_for("filler Running on n3", || {
        let pod = k.json(&["get", "pod", "-n", "demo", "filler"]);
        (pod["spec"]["nodeName"] == "n3" && pod["status"]["phase"] == "Running").then_some(())
    });
    assert!(k
        .apply_stdin(&["apply", "-f", "-"], &on_n3("vip", 1000))
        .status
        .success());
    let vip = wait_for("vip Running on n3", || {
        let pod = k.json(&["get", "pod", "-n", "demo", "vip"]);
        (pod["spec"]["nodeName"] == "n3" && pod["status"]["phase"] == "Running").then_some(pod)
    });
    let gone = k.run(&["get", "pod", "-n", "demo", "filler"]);
    assert!(!gone.status.success(), "the victim is deleted");
    let events = k.json(&["get", "events", "-n", "demo"]);
    // The round that preempted explained why nothing fit then (without preemption text: preemption helped).
    let failed = events_about(&events, "vip", "FailedScheduling");
    assert!(
        failed.iter().any(|e| e["message"]
            == "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector."),
        "{failed:?}"
    );
    let preempted = events_about(&events, "filler", "Preempted");
    assert_eq!(preempted.len(), 1);
    assert_eq!(
        preempted[0]["message"],
        format!(
            "Preempted by pod {} on node n3",
            vip["metadata"]["uid"].as_str().expect("uid")
        )
    );

    // The scheduler tries hog again (every 10 s): the same event, counted, not a new one.
    wait_for("hog's FailedScheduling event counted twice", || {
        let events = k.json(&["get", "events", "-n", "demo"]);
        let found = events_about(&events, "hog", "FailedScheduling");
        assert_eq!(found.len(), 1, "one event, deduplicated");
        (found[0]["count"].as_i64()? >= 2).then_some(())
    });
}
