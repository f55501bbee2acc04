//! An agent killed and restarted on the same node leaves the same processes running: it adopts its pods' running
//! processes instead of starting them again, kills what belongs to pods deleted meanwhile, and keeps running pods
//! while the control plane is away. Every role is its own process over a real nats-server, as in `e2e_roles`.

#![allow(clippy::disallowed_methods)]

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use util::*;

/// The roles but the agent, and how to start (again) the agent of node `restart-node`.
struct Cluster {
    nats_url: String,
    dir: tempfile::TempDir,
    /// The store and the gateway.
    plane: ControlPlane,
    _scheduler: Proc,
    _controllers: Proc,
    kubectl: Kubectl,
    name: &'static str,
    /// Whether the agent gives pods their own network namespaces (`--pod-cidr auto`, root only).
    pod_network: bool,
    /// Last, so that it stops after the roles.
    nats: Proc,
}

impl Cluster {
    fn start(name: &'static str, pod_network: bool) -> (Proc, Self) {
        let (nats, nats_url) = start_nats();
        let dir = tempfile::tempdir().expect("temp dir");
        let plane = ControlPlane::start((&nats_url, name), dir.path());
        let (scheduler, _) = spawn_role("scheduler", (&nats_url, name), &["scheduler"]);
        let (controllers, _) = spawn_role("controllers", (&nats_url, name), &["controllers"]);
        plane.wait_ready();
        let cluster = Self {
            nats_url,
            kubectl: plane.kubectl(),
            plane,
            _scheduler: scheduler,
            _controllers: controllers,
            dir,
            name,
            pod_network,
            nats,
        };
        let agent = cluster.start_agent();
        wait_for("node restart-node Ready", || {
            let out = cluster.kubectl.run(&["get", "node", "restart-node"]);
            String::from_utf8_lossy(&out.stdout)
                .contains(" Ready")
                .then_some(())
        });
        (agent, cluster)
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Starts the agent, always with the same data dir and node name.
    fn start_agent(&self) -> Proc {
        let data = self.path("agent");
        let data = data.to_str().expect("utf-8");
        let mut args = vec![
            "agent",
            "--data-dir",
            data,
            "--node-name",
            "restart-node",
            "--nats",
            &self.nats_url,
            "--cluster",
            self.name,
        ];
        if self.pod_network {
            args.extend(["--pod-cidr", "auto"]);
        }
        spawn("agent", &args).0
    }

    /// Creates namespace `ns` and a Deployment `web` of `replicas` pods running `argv`.
    fn deploy(&self, ns: &str, replicas: u32, argv: &[&str]) {
        let command = argv
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let manifest = format!(
            r#"apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: main, image: busybox, command: [{command}]}}]}}
"#
        );
        let out = self.kubectl.apply_stdin(&["apply", "-f", "-"], &manifest);
        assert!(out.status.success(), "apply failed");
    }

    /// The pods of `ns`: (name, phase, restart count of `main`).
    fn pods(&self, ns: &str) -> Vec<(String, String, i64)> {
        let pods = self.kubectl.json(&["get", "pods", "-n", ns]);
        pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    p["status"]["phase"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    p["status"]["containerStatuses"][0]["restartCount"]
                        .as_i64()
                        .unwrap_or(-1),
                )
            })
            .collect()
    }

    /// Per pod uid of `ns`: its IP and the inode of its network namespace (`/run/netns/navarch-<uid>`), if any.
    fn networks(&self, ns: &str) -> BTreeMap<String, (String, Option<u64>)> {
        let pods = self.kubectl.json(&["get", "pods", "-n", ns]);
        pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let uid = p["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let ip = p["status"]["podIP"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let inode = std::fs::metadata(format!("/run/netns/navarch-{uid}"))
                    .ok()
                    .map(|m| m.ino());
                (uid, (ip, inode))
            })
            .collect()
    }

    /// Waits until `n` pods of `ns` are Running with restart count 0 and exactly `n` processes run `argv`;
    /// returns their pids.
    fn wait_running(&self, ns: &str, n: usize, argv: &[&str]) -> BTreeSet<u32> {
        wait_for(&format!("{n} pods Running on {n} processes"), || {
            let pods = self.pods(ns);
            let running = pods
                .iter()
                .filter(|(_, phase, restarts)| phase == "Running" && *restarts == 0)
                .count();
            let procs: BTreeSet<u32> = processes_running(argv).into_iter().collect();
            (pods.len() == n && running == n && procs.len() == n).then_some(procs)
        })
    }
}

/// Kills every process still running `argv` when dropped (a failed test must not leave sleeps behind: the agent
/// that would stop them was killed).
struct Sweep(&'static [&'static str]);

impl Drop for Sweep {
    fn drop(&mut self) {
        for pid in processes_running(self.0) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// SIGKILL: the agent gets no chance to stop anything.
fn crash(agent: &mut Proc) {
    let _ = agent.child.kill();
    let _ = agent.child.wait();
}

/// The inodes of the network namespaces `pids` run in.
fn net_namespaces(pids: &BTreeSet<u32>) -> BTreeSet<u64> {
    pids.iter()
        .filter_map(|p| std::fs::metadata(format!("/proc/{p}/ns/net")).ok())
        .map(|m| m.ino())
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, r)| !r.starts_with('Z'))
    })
}

#[test]
fn a_restarted_agent_adopts_its_running_pods() {
    const ARGV: &[&str] = &["sleep", "3643"];
    let _sweep = Sweep(ARGV);
    // As root, with pod networks: an adopted pod keeps its namespace and IP.
    let pod_network = navarch_actors::runtime::running_as_root();
    let (mut agent, cluster) = Cluster::start("agent-restart-adopt", pod_network);
    cluster.deploy("adopt", 2, ARGV);
    let pids = cluster.wait_running("adopt", 2, ARGV);
    let networks = cluster.networks("adopt");
    if pod_network {
        assert!(
            networks.values().all(|(_, inode)| inode.is_some()),
            "each pod has its namespace: {networks:?}"
        );
        // Each process runs in its pod's namespace.
        let inodes: BTreeSet<u64> = networks.values().filter_map(|(_, i)| *i).collect();
        assert_eq!(net_namespaces(&pids), inodes);
    }

    crash(&mut agent);
    // The pods' processes outlive their agent.
    assert!(pids.iter().all(|p| alive(*p)), "pods died with the agent");

    agent = cluster.start_agent();
    // Scaling up shows the new agent has taken in the pods it found (they come first in its first list): once the
    // third pod runs, the first two were adopted, not started again.
    cluster
        .kubectl
        .ok(&["scale", "deployment", "web", "-n", "adopt", "--replicas=3"]);
    let now = cluster.wait_running("adopt", 3, ARGV);
    assert!(
        pids.is_subset(&now),
        "the adopted processes {pids:?} must still run, alone of their pods: {now:?}"
    );
    assert_eq!(processes_running(ARGV).len(), 3, "no duplicates");
    // The adopted pods' networks are the ones they had (not rebuilt: their processes are still in them).
    let after = cluster.networks("adopt");
    for (uid, network) in &networks {
        assert_eq!(after.get(uid), Some(network), "pod {uid}'s network changed");
    }
    if pod_network {
        let inodes: BTreeSet<u64> = networks.values().filter_map(|(_, i)| *i).collect();
        assert_eq!(net_namespaces(&pids), inodes);
    }

    // The adopted processes are stopped like any other when their pods go.
    cluster
        .kubectl
        .ok(&["delete", "deployment", "web", "-n", "adopt"]);
    wait_for("pods and processes gone", || {
        (cluster.pods("adopt").is_empty() && processes_running(ARGV).is_empty()).then_some(())
    });
    drop(agent);
}

#[test]
fn a_pod_deleted_while_the_agent_was_away_is_killed_when_it_returns() {
    const ARGV: &[&str] = &["sleep", "3644"];
    let _sweep = Sweep(ARGV);
    let (mut agent, cluster) = Cluster::start(
        "agent-restart-orphan",
        navarch_actors::runtime::running_as_root(),
    );
    cluster.deploy("orphan", 2, ARGV);
    let pids = cluster.wait_running("orphan", 2, ARGV);

    crash(&mut agent);
    let pods = cluster.pods("orphan");
    let victim = &pods[0].0;
    let victim_uid = cluster.kubectl.ok(&[
        "get",
        "pod",
        victim,
        "-n",
        "orphan",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let victim_netns = PathBuf::from(format!("/run/netns/navarch-{}", victim_uid.trim()));
    assert_eq!(victim_netns.exists(), cluster.pod_network);
    // Gone from the store at once: its process is nobody's but the agent's to clean up.
    cluster.kubectl.ok(&[
        "delete",
        "pod",
        victim,
        "-n",
        "orphan",
        "--grace-period=0",
        "--force",
    ]);
    assert!(pids.iter().all(|p| alive(*p)));

    agent = cluster.start_agent();
    // One process of the two is left (the other pod's, adopted) plus the replacement's.
    let now = cluster.wait_running("orphan", 2, ARGV);
    let kept: Vec<&u32> = pids.intersection(&now).collect();
    assert_eq!(
        kept.len(),
        1,
        "exactly one process adopted: {pids:?} then {now:?}"
    );
    assert!(
        cluster
            .pods("orphan")
            .iter()
            .all(|(name, _, _)| name != victim),
        "the deleted pod stays deleted"
    );
    wait_for("the orphan's process killed", || {
        pids.iter()
            .filter(|p| !now.contains(p))
            .all(|p| !alive(*p))
            .then_some(())
    });
    wait_for("the orphan's network namespace removed", || {
        (!victim_netns.exists()).then_some(())
    });
    drop(agent);
}

#[test]
fn pods_keep_running_while_the_store_is_away() {
    const ARGV: &[&str] = &["sleep", "3645"];
    let _sweep = Sweep(ARGV);
    let (agent, mut cluster) = Cluster::start("agent-restart-away", false);
    cluster.deploy("away", 2, ARGV);
    let pids = cluster.wait_running("away", 2, ARGV);
    // And a pod that crashes a few seconds after each start, noting each start in a file.
    let starts = cluster.path("starts");
    let script = format!("echo started >> {}; sleep 3; exit 1", starts.display());
    let crasher = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "crasher", "namespace": "away"},
        "spec": {"restartPolicy": "Always",
                 "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}]},
    });
    let out = cluster
        .kubectl
        .apply_stdin(&["apply", "-f", "-"], &crasher.to_string());
    assert!(out.status.success());
    let count_starts = || {
        std::fs::read_to_string(&starts)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    wait_for("the crasher's first start", || {
        (count_starts() == 1).then_some(())
    });

    // The store goes away (SIGKILL) for a while: nothing of the running pods changes meanwhile, and the crashed
    // container restarts per its policy.
    // Longer than the store client's 10 s timeout, so that the agent's writes fail and must be made again.
    crash(&mut cluster.plane.store);
    for _ in 0..75 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let procs: BTreeSet<u32> = processes_running(ARGV).into_iter().collect();
        assert_eq!(procs, pids, "pods changed while the store was away");
    }
    wait_for("the crasher restarted without the store", || {
        (count_starts() >= 2).then_some(())
    });
    let store_dir = cluster.path("store");
    let store_dir = store_dir.to_str().expect("utf-8");
    cluster.plane.store = spawn(
        "store",
        &[
            "store",
            "--id",
            "1",
            "--data-dir",
            store_dir,
            "--nats",
            &cluster.nats_url,
            "--cluster",
            cluster.name,
        ],
    )
    .0;
    // Back: the same processes, the pods still Running, and the agent's reports land again (a scale-up runs).
    wait_for("the store to take writes again", || {
        let out =
            cluster
                .kubectl
                .run(&["scale", "deployment", "web", "-n", "away", "--replicas=3"]);
        out.status.success().then_some(())
    });
    let now = wait_for("3 pods of web Running on 3 processes", || {
        let web: Vec<_> = cluster
            .pods("away")
            .into_iter()
            .filter(|(name, _, _)| name.starts_with("web-"))
            .collect();
        let procs: BTreeSet<u32> = processes_running(ARGV).into_iter().collect();
        let running = web
            .iter()
            .all(|(_, phase, restarts)| phase == "Running" && *restarts == 0);
        (web.len() == 3 && running && procs.len() == 3).then_some(procs)
    });
    assert!(pids.is_subset(&now), "{pids:?} then {now:?}");
    // The restarts made while the store was away are reported once it is back.
    wait_for("the crasher's restarts reported", || {
        let pod = cluster
            .kubectl
            .json(&["get", "pod", "crasher", "-n", "away"]);
        let restarts = pod["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0);
        (restarts >= 1).then_some(())
    });
    assert_eq!(children_running(agent.pid(), ARGV).len(), 3);
    drop(agent); // stops its pods while the cluster is still there
}

#[test]
fn pods_keep_running_while_the_bus_is_away() {
    const ARGV: &[&str] = &["sleep", "3646"];
    let _sweep = Sweep(ARGV);
    let (agent, mut cluster) = Cluster::start("agent-restart-bus", false);
    cluster.deploy("bus", 2, ARGV);
    let pids = cluster.wait_running("bus", 2, ARGV);

    // nats-server goes away for a while, then comes back on the same port: every role reconnects.
    crash(&mut cluster.nats);
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let procs: BTreeSet<u32> = processes_running(ARGV).into_iter().collect();
        assert_eq!(procs, pids, "pods changed while the bus was away");
    }
    let port = cluster
        .nats_url
        .rsplit(':')
        .next()
        .expect("a port")
        .to_string();
    let child = std::process::Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nats-server");
    cluster.nats = Proc {
        child,
        name: "nats-server".into(),
    };
    wait_for("the cluster to take writes again", || {
        let out = cluster
            .kubectl
            .run(&["scale", "deployment", "web", "-n", "bus", "--replicas=3"]);
        out.status.success().then_some(())
    });
    let now = cluster.wait_running("bus", 3, ARGV);
    assert!(pids.is_subset(&now), "{pids:?} then {now:?}");
    assert_eq!(children_running(agent.pid(), ARGV).len(), 3);
    drop(agent);
}
