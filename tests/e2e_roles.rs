//! Every role in its own process, connected only through a real nats-server: the same kubectl flow as `navarch up`.

#![allow(clippy::disallowed_methods)]

mod util;

use util::*;

const SLEEP: [&str; 2] = ["sleep", "3611"];

#[test]
fn roles_in_separate_processes_over_nats() {
    let (_nats, url) = start_nats();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |p: &str| dir.path().join(p).to_str().expect("utf-8").to_string();
    let cluster = "e2e-roles";

    let common = ["--nats", url.as_str(), "--cluster", cluster];
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend(common.iter().map(|s| s.to_string()));
        v
    };
    let start = |name: &str, args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        spawn(name, &refs)
    };

    let plane = ControlPlane::start((&url, cluster), dir.path());
    let (_scheduler, _) = start("scheduler", with(&["scheduler"]));
    let (_controllers, _) = start("controllers", with(&["controllers"]));
    let (mut agent, _) = start(
        "agent",
        with(&[
            "agent",
            "--data-dir",
            &path("agent"),
            "--node-name",
            "roles-node",
        ]),
    );

    plane.wait_ready();
    let k = plane.kubectl();
    wait_for("node roles-node Ready", || {
        let out = k.run(&["get", "node", "roles-node"]);
        String::from_utf8_lossy(&out.stdout)
            .contains(" Ready")
            .then_some(())
    });

    // Multi-document YAML: kubectl validates a `kind: List` against OpenAPI v2 schemas, which are not served yet.
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
    spec: {containers: [{name: main, image: busybox, command: [SLEEP]}]}
"#
    .replace("SLEEP", &format!("\"{}\", \"{}\"", SLEEP[0], SLEEP[1]));
    assert!(k
        .apply_stdin(&["apply", "-f", "-"], &manifest)
        .status
        .success());

    let wait_running = |n: usize| {
        wait_for(
            &format!("{n} pods Running on the agent's processes"),
            || {
                let pods = k.json(&["get", "pods", "-n", "demo"]);
                let running = pods["items"].as_array().map_or(0, |i| {
                    i.iter()
                        .filter(|p| p["status"]["phase"] == "Running")
                        .count()
                });
                let procs = children_running(agent.pid(), &SLEEP).len();
                (running == n && procs == n).then_some(())
            },
        )
    };
    wait_running(3);
    k.ok(&["scale", "deployment", "web", "-n", "demo", "--replicas=5"]);
    wait_running(5);
    k.ok(&["scale", "deployment", "web", "-n", "demo", "--replicas=1"]);
    wait_running(1);
    k.ok(&["delete", "deployment", "web", "-n", "demo"]);
    wait_for("pods and processes gone", || {
        let pods = k.json(&["get", "pods", "-n", "demo"])["items"]
            .as_array()
            .map_or(0, Vec::len);
        (pods == 0 && children_running(agent.pid(), &SLEEP).is_empty()).then_some(())
    });

    // The agent stops its pods' processes when it stops.
    assert!(k
        .apply_stdin(&["apply", "-f", "-"], &manifest)
        .status
        .success());
    wait_running(3);
    let pids = children_running(agent.pid(), &SLEEP);
    assert!(agent.terminate().success());
    assert!(pids
        .iter()
        .all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()));
}
