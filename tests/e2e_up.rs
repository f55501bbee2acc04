//! The walking skeleton end to end: the real kubectl against `navarch up` (all roles in one process on the
//! embedded bus) drives a Deployment down to real OS processes and back.

#![allow(clippy::disallowed_methods)]

mod util;

use std::io::Read;
use std::process::Stdio;

use util::*;

/// A command no other test uses, so the processes we count are this test's.
const SLEEP: [&str; 2] = ["sleep", "3607"];

fn manifest(replicas: u32, sleep: [&str; 2]) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: main
        image: busybox
        command: ["{}", "{}"]
"#,
        sleep[0], sleep[1]
    )
}

fn running_pods(k: &Kubectl) -> usize {
    let pods = k.json(&["get", "pods", "-n", "demo"]);
    pods["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|p| {
                    p["status"]["phase"] == "Running"
                        && p["metadata"]["deletionTimestamp"].is_null()
                })
                .count()
        })
        .unwrap_or(0)
}

fn wait_for_scale(k: &Kubectl, up: &Up, sleep: [&str; 2], n: usize) {
    wait_for(&format!("{n} pods Running with {n} live processes"), || {
        let pods = running_pods(k);
        let procs = children_running(up.proc.pid(), &sleep).len();
        println!("running pods: {pods}, processes: {procs}");
        (pods == n && procs == n).then_some(())
    });
}

#[test]
fn kubectl_drives_a_deployment_to_real_processes_and_back() {
    flow(start_up(&[]), SLEEP);
}

#[test]
fn up_on_a_nats_server_runs_the_same_flow() {
    let (_nats, url) = start_nats();
    flow(
        start_up(&["--nats", &url, "--cluster", "up-on-nats"]),
        ["sleep", "3608"],
    );
}

/// Apply, watch, scale up and down, roll out, delete, and stop navarch: checked against the real processes.
fn flow(mut up: Up, sleep: [&str; 2]) {
    let k = Kubectl::new(&up.kubeconfig);

    let version = k.ok(&["version"]);
    assert!(version.contains("Server Version: v1.32"), "{version}");

    wait_for("the node to be Ready", || {
        let nodes = k.ok(&["get", "nodes"]);
        nodes
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some("Ready"))
            .then_some(())
    });

    let out = k.apply_stdin(&["apply", "-f", "-"], &manifest(3, sleep));
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("namespace/demo created"), "{stdout}");
    assert!(stdout.contains("deployment.apps/web created"), "{stdout}");

    // Stream the pod changes while the deployment scales.
    let mut watch = k
        .command(&["get", "pods", "-n", "demo", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("kubectl get -w");

    wait_for_scale(&k, &up, sleep, 3);
    let table = k.ok(&["get", "pods", "-n", "demo"]);
    assert_eq!(
        table.lines().filter(|l| l.contains("Running")).count(),
        3,
        "{table}"
    );
    assert!(table.starts_with("NAME"), "{table}");

    k.ok(&["scale", "deployment", "web", "-n", "demo", "--replicas=5"]);
    wait_for_scale(&k, &up, sleep, 5);
    k.ok(&["scale", "deployment", "web", "-n", "demo", "--replicas=1"]);
    wait_for_scale(&k, &up, sleep, 1);

    let status = k.ok(&[
        "rollout",
        "status",
        "deployment/web",
        "-n",
        "demo",
        "--timeout=60s",
    ]);
    assert!(status.contains("successfully rolled out"), "{status}");

    k.ok(&["delete", "deployment", "web", "-n", "demo"]);
    wait_for("every pod and process gone", || {
        let pods = k.json(&["get", "pods", "-n", "demo"])["items"]
            .as_array()
            .map_or(0, Vec::len);
        let procs = children_running(up.proc.pid(), &sleep).len();
        (pods == 0 && procs == 0).then_some(())
    });

    let _ = watch.kill();
    let mut streamed = String::new();
    watch
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut streamed)
        .expect("watch output");
    let _ = watch.wait();
    println!("kubectl get pods -w streamed:\n{streamed}");
    let rows: Vec<&str> = streamed.lines().filter(|l| l.starts_with("web-")).collect();
    let names: std::collections::HashSet<&str> = rows
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.len() >= 5,
        "the watch saw {} pods: {streamed}",
        names.len()
    );
    assert!(rows.iter().any(|l| l.contains("Running")), "{streamed}");
    assert!(rows.iter().any(|l| l.contains("Terminating")), "{streamed}");

    // Stopping navarch stops every pod process it started.
    let out = k.apply_stdin(&["apply", "-f", "-"], &manifest(2, sleep));
    assert!(out.status.success());
    wait_for_scale(&k, &up, sleep, 2);
    let pids = children_running(up.proc.pid(), &sleep);
    let status = up.proc.terminate();
    assert!(status.success(), "navarch up exited with {status}");
    let left: Vec<u32> = pids
        .into_iter()
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        .collect();
    assert!(
        left.is_empty(),
        "pod processes left running after navarch stopped: {left:?}"
    );
}

#[test]
fn the_store_keeps_objects_across_a_restart_of_navarch_up() {
    let mut up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);
    k.ok(&["get", "namespaces"]);
    let out = k.apply_stdin(&["apply", "-f", "-"], &manifest(0, SLEEP));
    assert!(out.status.success());
    let before = k.json(&["get", "deployment", "web", "-n", "demo"]);
    let data_dir = up.dir.path().join("data");
    assert!(up.proc.terminate().success());

    let (proc, rx) = spawn(
        "up-again",
        &[
            "up",
            "--api-listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().expect("utf-8"),
        ],
    );
    let _proc = proc;
    let api = read_line_starting(&rx, "API:");
    let kubeconfig = std::path::PathBuf::from(read_line_starting(&rx, "kubeconfig:"));
    trust(&api, &kubeconfig);
    wait_for("the API to be ready", || {
        http_get(&api, "/readyz").filter(|(c, _)| *c == 200)
    });
    let k = Kubectl::new(&kubeconfig);
    let after = k.json(&["get", "deployment", "web", "-n", "demo"]);
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(
        after["metadata"]["creationTimestamp"],
        before["metadata"]["creationTimestamp"]
    );
    assert_eq!(after["spec"], before["spec"]);
}

#[test]
fn deleting_a_namespace_deletes_everything_in_it() {
    let sleep = ["sleep", "3609"];
    let up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);
    k.ok(&["get", "ns"]);
    assert!(k
        .apply_stdin(&["apply", "-f", "-"], &manifest(2, sleep))
        .status
        .success());
    wait_for_scale(&k, &up, sleep, 2);

    // kubectl waits until the namespace is gone: Terminating, emptied, then removed.
    let out = k.ok(&["delete", "namespace", "demo", "--timeout=90s"]);
    assert!(out.contains("namespace \"demo\" deleted"), "{out}");
    assert!(!k.run(&["get", "namespace", "demo"]).status.success());
    assert!(
        children_running(up.proc.pid(), &sleep).is_empty(),
        "pod processes outlived their namespace"
    );
    let (code, _) =
        http_get(&up.api, "/apis/apps/v1/namespaces/demo/deployments/web").expect("get");
    assert_eq!(code, 404);

    // The name can be used again, from scratch.
    assert!(k
        .apply_stdin(&["apply", "-f", "-"], &manifest(1, sleep))
        .status
        .success());
    wait_for_scale(&k, &up, sleep, 1);
}
