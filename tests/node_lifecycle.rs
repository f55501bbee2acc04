//! Node failure: of a 3-node cluster (real node agents, separate processes over a real nats-server), one agent is
//! killed. After the grace period its node turns Unknown with the unreachable taints; after their toleration its
//! pods are evicted and the deployment's replacements run on the other nodes. The agent comes back with the same
//! name and data: the taints go, the evicted pods' processes are stopped, and exactly the replica count of pod
//! processes runs (no duplicates).

#![allow(clippy::disallowed_methods)] // wall-clock deadlines are fine in tests

mod util;

use serde_json::Value;
use util::*;

const CLUSTER: &str = "node-lifecycle";
const NODES: [&str; 3] = ["nl-a", "nl-b", "nl-c"];
/// The pods' command: no other test runs it, so the processes found are this test's.
const SLEEP: [&str; 2] = ["sleep", "36017"];

/// Kills this test's pod processes, whatever happened (a failed test may leave the killed agent's behind).
struct Leftovers;

impl Drop for Leftovers {
    fn drop(&mut self) {
        for pid in processes_running(&SLEEP) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn pods(k: &Kubectl) -> Vec<Value> {
    k.json(&["get", "pods", "-n", "nl", "-l", "app=web"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn node_of(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or_default()
}

fn running_not_deleting(pods: &[Value]) -> Vec<&Value> {
    pods.iter()
        .filter(|p| {
            p["metadata"]["deletionTimestamp"].is_null() && p["status"]["phase"] == "Running"
        })
        .collect()
}

fn taints(node: &Value) -> Vec<(String, String)> {
    node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| {
            (
                t["key"].as_str().unwrap_or_default().to_string(),
                t["effect"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn ready_status(node: &Value) -> String {
    node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_killed_agent_has_its_pods_replaced_and_no_duplicates_when_it_returns() {
    let _leftovers = Leftovers;
    let (_nats, url) = start_nats();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |p: &str| dir.path().join(p).to_str().expect("utf-8").to_string();
    let plane = ControlPlane::start((&url, CLUSTER), dir.path());
    plane.wait_ready();
    let _scheduler = spawn_role("scheduler", (&url, CLUSTER), &["scheduler"]);
    // A grace period well above the agents' 10 s lease renewal, yet short for the test.
    let _controllers = spawn_role(
        "controllers",
        (&url, CLUSTER),
        &["controllers", "--node-monitor-grace-period", "20s"],
    );
    let agent = |node: &str| {
        spawn_role(
            &format!("agent-{node}"),
            (&url, CLUSTER),
            &[
                "agent",
                "--data-dir",
                &path(&format!("agent-{node}")),
                "--node-name",
                node,
            ],
        )
        .0
    };
    let mut agents: Vec<Proc> = NODES.iter().map(|n| agent(n)).collect();
    let k = plane.kubectl();
    wait_for("three Ready nodes", || {
        let nodes = k.json(&["get", "nodes"]);
        let ready = nodes["items"]
            .as_array()?
            .iter()
            .filter(|n| ready_status(n) == "True")
            .count();
        (ready == 3).then_some(())
    });

    let manifest = format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: nl}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: nl}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations:
      - {{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}}
      - {{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}}
      containers: [{{name: main, image: busybox, command: ["{}", "{}"]}}]
"#,
        SLEEP[0], SLEEP[1]
    );
    assert!(k
        .apply_stdin(&["apply", "-f", "-"], &manifest)
        .status
        .success());
    let placed = wait_for("3 pods Running", || {
        let pods = pods(&k);
        let running = running_not_deleting(&pods);
        (running.len() == 3 && processes_running(&SLEEP).len() == 3)
            .then(|| running.iter().map(|p| (*p).clone()).collect::<Vec<_>>())
    });
    // The pods kept their own tolerations; admission added nothing to them.
    assert_eq!(placed[0]["spec"]["tolerations"][0]["tolerationSeconds"], 2);
    let victim = node_of(&placed[0]).to_string();
    let victim_pods: Vec<String> = placed
        .iter()
        .filter(|p| node_of(p) == victim)
        .map(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    println!("killing the agent of {victim}, which runs {victim_pods:?}");
    let index = NODES
        .iter()
        .position(|n| *n == victim)
        .expect("a known node");

    // SIGKILL: the agent's pod processes keep running, as a node cut off from the network would.
    let _ = agents[index].child.kill();
    let _ = agents[index].child.wait();

    let node = wait_for(
        "the node to turn Unknown with the unreachable taints",
        || {
            let node = k.json(&["get", "node", &victim]);
            let t = taints(&node);
            let tainted = t
                .contains(&("node.kubernetes.io/unreachable".into(), "NoExecute".into()))
                && t.contains(&("node.kubernetes.io/unreachable".into(), "NoSchedule".into()));
            (ready_status(&node) == "Unknown" && tainted).then_some(node)
        },
    );
    let ready = node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .expect("a Ready condition");
    assert_eq!(ready["reason"], "NodeStatusUnknown");
    assert_eq!(ready["message"], "Kubelet stopped posting node status.");
    let no_execute = node["spec"]["taints"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["effect"] == "NoExecute"))
        .cloned()
        .expect("the NoExecute taint");
    assert!(no_execute["timeAdded"].is_string(), "{no_execute}");

    wait_for(
        "the victim's pods evicted and replaced on the other nodes",
        || {
            let pods = pods(&k);
            let evicted = victim_pods.iter().all(|name| {
                pods.iter()
                    .find(|p| p["metadata"]["name"] == name.as_str())
                    .is_none_or(|p| !p["metadata"]["deletionTimestamp"].is_null())
            });
            let running = running_not_deleting(&pods);
            let elsewhere = running.len() == 3 && running.iter().all(|p| node_of(p) != victim);
            (evicted && elsewhere).then_some(())
        },
    );
    let events = k.json(&["get", "events", "-A"]);
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"TaintManagerEviction"), "{reasons:?}");
    assert!(reasons.contains(&"NodeNotReady"), "{reasons:?}");

    // The agent returns with the same name and data.
    agents[index] = agent(&victim);
    wait_for("the node Ready again without the lifecycle taints", || {
        let node = k.json(&["get", "node", &victim]);
        let lifecycle = taints(&node).iter().any(|(key, _)| {
            key == "node.kubernetes.io/unreachable" || key == "node.kubernetes.io/not-ready"
        });
        (ready_status(&node) == "True" && !lifecycle).then_some(())
    });
    wait_for("the evicted pods gone and their processes stopped", || {
        let pods = pods(&k);
        let gone = victim_pods
            .iter()
            .all(|name| !pods.iter().any(|p| p["metadata"]["name"] == name.as_str()));
        (gone && processes_running(&SLEEP).len() == 3).then_some(())
    });
    // And it stays so: exactly the replica count, in the API and on the machine.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let pods = pods(&k);
    assert_eq!(pods.len(), 3, "{pods:?}");
    assert_eq!(running_not_deleting(&pods).len(), 3);
    assert_eq!(processes_running(&SLEEP).len(), 3);
    let deployment = k.json(&["get", "deployment", "web", "-n", "nl"]);
    assert_eq!(deployment["status"]["readyReplicas"], 3);
}
