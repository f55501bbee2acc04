//! Probes and the preStop hook end to end: the real kubectl against `navarch up`, with real processes probed by
//! the node agent (exec, httpGet, tcpSocket) and restarted or marked ready as the probes say.

#![allow(clippy::disallowed_methods)]

mod util;

use std::path::Path;

use util::*;

fn manifest(dir: &Path, http_port: u16, tcp_port: u16) -> String {
    let dir = dir.display();
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: live
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "touch {dir}/healthy; sleep 3600"]
    livenessProbe:
      exec:
        command: ["cat", "{dir}/healthy"]
      periodSeconds: 1
      # The first probe of a run may come before the shell has touched the file.
      failureThreshold: 3
    lifecycle:
      preStop:
        exec:
          command: ["sh", "-c", "echo stopping >> {dir}/pre-stop"]
---
apiVersion: v1
kind: Pod
metadata:
  name: ready
spec:
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
    readinessProbe:
      exec:
        command: ["cat", "{dir}/ready"]
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: serve
spec:
  containers:
  - name: http
    image: busybox
    command: ["busybox", "httpd", "-f", "-p", "{http_port}", "-h", "{dir}/www"]
    ports:
    - name: web
      containerPort: {http_port}
    readinessProbe:
      httpGet:
        path: /
        port: web
        httpHeaders:
        - name: X-Probe
          value: navarch
      periodSeconds: 1
  - name: tcp
    image: busybox
    command: ["busybox", "nc", "-ll", "-p", "{tcp_port}", "-e", "true"]
    readinessProbe:
      tcpSocket:
        port: {tcp_port}
      periodSeconds: 1
"#
    )
}

/// The READY column of `kubectl get pod NAME` (e.g. `0/1`) and its STATUS.
fn ready_column(k: &Kubectl, name: &str) -> (String, String) {
    let out = k.ok(&["get", "pod", name, "--no-headers"]);
    let mut cols = out.split_whitespace().skip(1);
    let ready = cols.next().unwrap_or_default().to_string();
    let status = cols.next().unwrap_or_default().to_string();
    (ready, status)
}

fn wait_ready_column(k: &Kubectl, name: &str, want: &str) {
    wait_for(&format!("pod {name} to be {want} ready"), || {
        let (ready, status) = ready_column(k, name);
        (ready == want && status == "Running").then_some(())
    });
}

#[test]
fn probes_restart_unhealthy_containers_and_gate_readiness() {
    let up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);
    let dir = up.dir.path().join("probes");
    std::fs::create_dir_all(dir.join("www")).expect("www dir");
    std::fs::write(dir.join("www/index.html"), "ok\n").expect("index.html");
    let (http_port, tcp_port) = (free_port(), free_port());
    let out = k.apply_stdin(&["apply", "-f", "-"], &manifest(&dir, http_port, tcp_port));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The API filled in Kubernetes' probe defaults.
    let serve = k.json(&["get", "pod", "serve"]);
    let probe = &serve["spec"]["containers"][0]["readinessProbe"];
    assert_eq!(probe["timeoutSeconds"], 1, "{probe}");
    assert_eq!(probe["failureThreshold"], 3, "{probe}");
    assert_eq!(probe["httpGet"]["scheme"], "HTTP", "{probe}");

    // (c) A real HTTP server (named port, custom header) and a real TCP listener make their containers ready.
    wait_ready_column(&k, "serve", "2/2");

    // (b) Running but not ready until the readiness file exists.
    wait_ready_column(&k, "ready", "0/1");
    let pod = k.json(&["get", "pod", "ready"]);
    let ready = pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .expect("Ready condition");
    assert_eq!(ready["status"], "False", "{ready}");
    assert_eq!(ready["reason"], "ContainersNotReady", "{ready}");
    assert_eq!(
        ready["message"], "containers with unready status: [main]",
        "{ready}"
    );
    assert_eq!(pod["status"]["containerStatuses"][0]["ready"], false);
    assert_eq!(pod["status"]["containerStatuses"][0]["started"], true);
    std::fs::write(dir.join("ready"), "yes\n").expect("ready file");
    wait_ready_column(&k, "ready", "1/1");
    assert_eq!(
        k.json(&["get", "pod", "ready"])["status"]["containerStatuses"][0]["ready"],
        true
    );

    // (a) The liveness probe starts failing: the preStop hook runs, the container is stopped and restarted.
    wait_ready_column(&k, "live", "1/1");
    std::fs::remove_file(dir.join("healthy")).expect("remove the health file");
    let status = wait_for("live to restart", || {
        let pod = k.json(&["get", "pod", "live"]);
        let status = pod["status"]["containerStatuses"][0].clone();
        (status["restartCount"].as_i64()? >= 1).then_some(status)
    });
    let exit = status["lastState"]["terminated"]["exitCode"].as_i64();
    assert!(matches!(exit, Some(137 | 143)), "{status}");
    let pre_stop = std::fs::read_to_string(dir.join("pre-stop")).expect("the preStop hook ran");
    assert_eq!(pre_stop, "stopping\n");
    // The new run touched the file again: it stays up and becomes ready.
    wait_ready_column(&k, "live", "1/1");
    let restarts =
        k.json(&["get", "pod", "live"])["status"]["containerStatuses"][0]["restartCount"].as_i64();
    assert_eq!(restarts, Some(1));

    // A liveness probe must not ask for more than one success, as kube-apiserver says.
    let bad = manifest(&dir, http_port, tcp_port)
        .split("---")
        .next()
        .unwrap_or_default()
        .replace("name: live", "name: bad")
        .replace(
            "periodSeconds: 1\n",
            "periodSeconds: 1\n      successThreshold: 2\n",
        );
    let out = k.apply_stdin(&["apply", "-f", "-"], &bad);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"
        ),
        "{stderr}"
    );

    // Deletion runs the preStop hook too.
    k.ok(&["delete", "pod", "live", "--wait=true"]);
    let pre_stop = std::fs::read_to_string(dir.join("pre-stop")).expect("pre-stop file");
    assert_eq!(pre_stop, "stopping\nstopping\n");
}
