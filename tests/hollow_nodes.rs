//! `navarch agent --simulate N`: N hollow nodes in one process, on a cluster of separate role processes over a real
//! nats-server, seen through the real kubectl.

#![allow(clippy::disallowed_methods)]

mod util;

use std::collections::BTreeSet;

use util::*;

const NODES: usize = 20;
const REPLICAS: usize = 30;

#[test]
fn hollow_nodes_register_and_run_a_deployment() {
    let (_nats, url) = start_nats();
    let dir = tempfile::tempdir().expect("temp dir");
    let common = ["--nats", url.as_str(), "--cluster", "hollow"];
    let start = |name: &str, args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(common);
        spawn(name, &all)
    };
    let plane = ControlPlane::start((&url, "hollow"), dir.path());
    let (_scheduler, _) = start("scheduler", &["scheduler"]);
    let (_controllers, _) = start("controllers", &["controllers"]);
    let count = NODES.to_string();
    let (mut hollow, hollow_out) = start(
        "hollow nodes",
        &["agent", "--simulate", &count, "--node-prefix", "sim"],
    );
    assert_eq!(
        read_line_starting(&hollow_out, &format!("{NODES} hollow nodes")),
        "are running (sim-00001 .. sim-00020)"
    );
    plane.wait_ready();
    let k = plane.kubectl();

    let ready_nodes = |k: &Kubectl| -> Vec<String> {
        let out = k.run(&["get", "nodes", "--no-headers"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("Ready"))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    };
    let nodes = wait_for("20 hollow nodes Ready", || {
        Some(ready_nodes(&k)).filter(|n| n.len() == NODES)
    });
    let expected: Vec<String> = (1..=NODES).map(|i| format!("sim-{i:05}")).collect();
    assert_eq!(nodes, expected);
    let node = k.json(&["get", "node", "sim-00002"]);
    assert_eq!(
        node["metadata"]["labels"]["topology.kubernetes.io/zone"],
        "zone-1"
    );
    assert_eq!(node["metadata"]["labels"]["navarch.io/hollow"], "true");
    assert_eq!(node["status"]["allocatable"]["pods"], "110");
    assert_eq!(node["spec"]["podCIDR"], "10.0.1.0/24");
    // Each node renews its heartbeat (every 10 s, as the real agent).
    let heartbeat = |k: &Kubectl| {
        k.json(&["get", "node", "sim-00020"])["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned())
            .map(|c| c["lastHeartbeatTime"].clone())
    };
    let first = heartbeat(&k).expect("a Ready condition");
    wait_for("a renewed heartbeat", || {
        heartbeat(&k).filter(|t| *t != first).map(|_| ())
    });
    // ... and its Lease, owned by its Node.
    let lease = wait_for("sim-00020's lease", || {
        let out = k.run(&[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            "sim-00020",
            "-o",
            "json",
        ]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).ok())
            .flatten()
    });
    assert_eq!(lease["spec"]["holderIdentity"], "sim-00020");
    assert_eq!(lease["metadata"]["ownerReferences"][0]["name"], "sim-00020");

    let manifest = format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: demo}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: demo}}
spec:
  replicas: {REPLICAS}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: main, image: busybox, command: ["sleep", "3600"]}}]}}
"#
    );
    assert!(k
        .apply_stdin(&["apply", "-f", "-"], &manifest)
        .status
        .success());
    let pods = wait_for("30 pods Running on hollow nodes", || {
        let pods = k.json(&["get", "pods", "-n", "demo"]);
        let items = pods["items"].as_array().cloned().unwrap_or_default();
        let running = items
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count();
        (items.len() == REPLICAS && running == REPLICAS).then_some(items)
    });
    let mut used = BTreeSet::new();
    let mut ips = BTreeSet::new();
    for pod in &pods {
        let node = pod["spec"]["nodeName"].as_str().expect("bound");
        assert!(expected.iter().any(|n| n == node), "{node} is not hollow");
        used.insert(node.to_string());
        let ready = pod["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        assert!(ready, "pod not Ready: {pod}");
        let ip = pod["status"]["podIP"].as_str().expect("pod IP");
        let index: usize = node["sim-".len()..].parse().expect("node number");
        let subnet = format!("10.0.{}.", index - 1);
        assert!(ip.starts_with(&subnet), "{ip} not in {node}'s range");
        ips.insert(ip.to_string());
        assert!(pod["status"]["containerStatuses"][0]["state"]["running"].is_object());
    }
    assert!(used.len() > 1, "all pods on one node: {used:?}");
    assert_eq!(ips.len(), REPLICAS, "pod IPs are unique");

    k.ok(&["delete", "deployment", "web", "-n", "demo"]);
    wait_for("the pods gone", || {
        let pods = k.json(&["get", "pods", "-n", "demo"]);
        pods["items"]
            .as_array()
            .is_some_and(Vec::is_empty)
            .then_some(())
    });

    // Stopped, the hollow nodes mark themselves not ready.
    assert!(hollow.terminate().success());
    wait_for("no hollow node Ready", || {
        ready_nodes(&k).is_empty().then_some(())
    });
}

#[test]
fn bad_simulate_flags_are_refused_with_one_clear_line() {
    for (args, says) in [
        (vec!["agent", "--simulate", "0"], "count"),
        (
            vec!["agent", "--simulate", "3", "--node-prefix", "Bad_Prefix"],
            "prefix",
        ),
        (
            vec!["agent", "--simulate", "3", "--data-dir", "/tmp/x"],
            "cannot be used with",
        ),
        (vec!["agent", "--node-prefix", "p"], "--simulate"),
    ] {
        let out = navarch()
            .args(&args)
            .args(["--nats", "nats://127.0.0.1:1"])
            .output()
            .expect("run navarch");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
