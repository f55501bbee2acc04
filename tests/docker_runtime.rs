//! The Docker runtime end to end: `navarch up --runtime docker` runs a pod from the busybox image that
//! `deploy/build-busybox-image.sh` builds, the real kubectl sees it run, reads its log and its IP, deletes it; a pod
//! whose image is not on the node shows `ErrImageNeverPull`. Without a Docker socket the test says so and passes.

#![allow(clippy::disallowed_methods)]

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use util::*;

const MANIFEST: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: hello
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: navarch/busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "echo hello from docker; sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: missing
spec:
  containers:
  - name: main
    image: navarch/does-not-exist:1
    imagePullPolicy: Never
    command: ["sh"]
"#;

/// Removes every container the test's agent created, even when the test failed.
struct Cleanup {
    filter: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let ids = docker_ps(&self.filter);
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&ids)
                .output();
        }
    }
}

/// The ids of all containers (running or not) matching a `docker ps` filter.
fn docker_ps(filter: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", filter])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// `docker inspect --format <format> <name>`, trimmed.
fn docker_inspect(name: &str, format: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["inspect", "--format", format, name])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn build_image() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/build-busybox-image.sh");
    let status = Command::new(script)
        .status()
        .expect("run build-busybox-image.sh");
    assert!(status.success(), "build-busybox-image.sh failed");
}

#[test]
fn a_pod_runs_in_docker_from_the_busybox_image() {
    if !Path::new("/var/run/docker.sock").exists() {
        eprintln!("skipped: no Docker socket at /var/run/docker.sock");
        return;
    }
    build_image();
    let mut up = start_up(&["--runtime", "docker"]);
    let agent_dir: PathBuf = up.dir.path().join("data").join("agent");
    let mine = format!("label=io.navarch.data-dir={}", agent_dir.display());
    let _cleanup = Cleanup {
        filter: mine.clone(),
    };
    let k = Kubectl::new(&up.kubeconfig);
    let out = k.apply_stdin(&["apply", "-f", "-"], MANIFEST);
    assert!(out.status.success(), "kubectl apply failed");

    let pod = wait_for("pod hello Running", || {
        let pod = k.json(&["get", "pod", "hello"]);
        (pod["status"]["phase"] == "Running").then_some(pod)
    });
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    let container_id = pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(container_id.starts_with("docker://"), "{container_id}");

    // The container runs in Docker, from the image, in the pod's sandbox.
    let name = format!("navarch_{uid}_main_0");
    assert_eq!(
        docker_inspect(&name, "{{.State.Running}}").as_deref(),
        Some("true")
    );
    assert_eq!(
        docker_inspect(&name, "{{.Config.Image}}").as_deref(),
        Some("navarch/busybox:latest")
    );
    let sandbox = format!("navarch-{uid}-sandbox");
    let sandbox_ip = docker_inspect(&sandbox, "{{.NetworkSettings.IPAddress}}")
        .expect("the pod's sandbox exists");
    assert!(!sandbox_ip.is_empty());
    let pod_ip = wait_for("the pod's IP", || {
        let pod = k.json(&["get", "pod", "hello"]);
        pod["status"]["podIP"].as_str().map(String::from)
    });
    assert_eq!(pod_ip, sandbox_ip);

    wait_for("kubectl logs to show the greeting", || {
        let out = k.run(&["logs", "hello"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("hello from docker")
            .then_some(())
    });
    // The Docker runtime writes the same timestamped log as the process runtime.
    let stamped = k.ok(&["logs", "--timestamps", "hello"]);
    let first = stamped.lines().next().unwrap_or_default();
    let (time, text) = first.split_once(' ').unwrap_or_default();
    assert!(
        time.len() == 30 && time.ends_with('Z') && text.contains("hello from docker"),
        "{stamped}"
    );

    wait_for("the missing image to show ErrImageNeverPull", || {
        let out = k.run(&["get", "pod", "missing", "--no-headers"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("ErrImageNeverPull")
            .then_some(())
    });
    // As with the kubelet: the container never ran, so the pod is Pending with no restarts.
    let missing = k.json(&["get", "pod", "missing"]);
    assert_eq!(missing["status"]["phase"], "Pending");
    let status = &missing["status"]["containerStatuses"][0];
    assert_eq!(status["restartCount"], 0);
    let message = status["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        message,
        "Container image \"navarch/does-not-exist:1\" is not present with pull policy of Never"
    );

    k.ok(&["delete", "pod", "hello"]);
    let of_pod = format!("label=io.navarch.pod.uid={uid}");
    wait_for("the pod's containers and sandbox to be removed", || {
        docker_ps(&of_pod).is_empty().then_some(())
    });

    // Shutting the agent down leaves none of its containers behind (the other pod's sandbox included).
    assert!(
        !docker_ps(&mine).is_empty(),
        "the missing pod has a sandbox"
    );
    assert!(up.proc.terminate().success());
    assert_eq!(docker_ps(&mine), Vec::<String>::new());
}
