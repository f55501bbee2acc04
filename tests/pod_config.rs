//! Container configuration end to end with `navarch up` and the real kubectl: env from a ConfigMap, a Secret
//! (encrypted at rest) and the pod's own fields, `envFrom`, `$(VAR)` expansion; a configMap volume whose file
//! follows `kubectl apply` of a changed ConfigMap; an init container filling an emptyDir the app reads; a
//! container waiting as CreateContainerConfigError until its ConfigMap exists. Mounts live in the containers'
//! private mount namespaces: the host never gets the mount paths. Volumes need root; without it the test prints
//! why and passes.

#![allow(clippy::disallowed_methods)]

mod util;

use std::path::Path;

use util::*;

const CONFIG_PATH: &str = "/etc/navarch-test-config";
const SCRATCH_PATH: &str = "/etc/navarch-test-scratch";
const SUB_PATH: &str = "/etc/navarch-test-sub";

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn config_map(greeting: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  greeting: {greeting}
  color: blue
"#
    )
}

const SECRET: &str = r#"apiVersion: v1
kind: Secret
metadata:
  name: app-secret
stringData:
  password: hunter2
"#;

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: config-demo
spec:
  initContainers:
  - name: prepare
    image: busybox
    command: ["sh", "-c", "echo made-by-init > /etc/navarch-test-scratch/init.txt && echo in-sub > /etc/navarch-test-sub/f"]
    volumeMounts:
    - name: scratch
      mountPath: /etc/navarch-test-scratch
    - name: scratch
      mountPath: /etc/navarch-test-sub
      subPath: nested/dir
  containers:
  - name: app
    image: busybox
    envFrom:
    - configMapRef:
        name: app-config
      prefix: CFG_
    env:
    - name: COLOR
      valueFrom:
        configMapKeyRef: {name: app-config, key: color}
    - name: PASS
      valueFrom:
        secretKeyRef: {name: app-secret, key: password}
    - name: MY_NAME
      valueFrom:
        fieldRef: {fieldPath: metadata.name}
    - name: MY_IP
      valueFrom:
        fieldRef: {fieldPath: status.podIP}
    command:
    - sh
    - -c
    - |
      echo "env COLOR=$COLOR PASS=$PASS NAME=$MY_NAME IP=$MY_IP CFG=$CFG_greeting expanded=$(MY_NAME)"
      cat /etc/navarch-test-scratch/init.txt /etc/navarch-test-scratch/nested/dir/f
      while true; do echo "file=$(cat /etc/navarch-test-config/greeting)"; sleep 1; done
    volumeMounts:
    - name: config
      mountPath: /etc/navarch-test-config
      readOnly: true
    - name: scratch
      mountPath: /etc/navarch-test-scratch
  volumes:
  - name: config
    configMap:
      name: app-config
  - name: scratch
    emptyDir: {}
"#;

const LATE: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: late
spec:
  containers:
  - name: app
    image: busybox
    env:
    - name: LATE
      valueFrom:
        configMapKeyRef: {name: late-config, key: value}
    command: ["sh", "-c", "echo late=$LATE; sleep 3600"]
"#;

const SLOW_INIT: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: slow-init
spec:
  initContainers:
  - name: wait
    image: busybox
    command: ["sleep", "3600"]
  - name: never-yet
    image: busybox
    command: ["true"]
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
"#;

const BAD_INIT: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: bad-init
spec:
  restartPolicy: Never
  initContainers:
  - name: fail
    image: busybox
    command: ["sh", "-c", "exit 3"]
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
"#;

/// Whether the host's mount table has anything at `path`.
fn mounted_on_host(path: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(path))
}

fn assert_host_untouched() {
    for path in [CONFIG_PATH, SCRATCH_PATH, SUB_PATH] {
        assert!(!Path::new(path).exists(), "{path} was created on the host");
        assert!(!mounted_on_host(path), "{path} is mounted on the host");
    }
}

fn apply(k: &Kubectl, yaml: &str) {
    let out = k.apply_stdin(&["apply", "-f", "-"], yaml);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn logs_containing(k: &Kubectl, pod: &str, needle: &str) -> String {
    wait_for(&format!("{pod}'s logs to show {needle:?}"), || {
        let out = k.run(&["logs", pod]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.contains(needle).then_some(text)
    })
}

#[test]
fn env_volumes_and_init_containers_configure_pods() {
    if !running_as_root() {
        println!("skipping: volumes need root (a private mount namespace per container)");
        return;
    }
    assert_host_untouched();
    let mut up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);

    apply(&k, &format!("{}---\n{SECRET}", config_map("hello-v1")));
    apply(&k, POD);
    let logs = logs_containing(&k, "config-demo", "file=hello-v1");
    let pod_ip = k.ok(&[
        "get",
        "pod",
        "config-demo",
        "-o",
        "jsonpath={.status.podIP}",
    ]);
    assert!(!pod_ip.trim().is_empty());
    let expected = format!(
        "env COLOR=blue PASS=hunter2 NAME=config-demo IP={} CFG=hello-v1 expanded=config-demo\nmade-by-init\nin-sub\n",
        pod_ip.trim()
    );
    assert!(logs.starts_with(&expected), "{logs}");
    assert_host_untouched();

    let pod = k.json(&["get", "pod", "config-demo"]);
    let init = &pod["status"]["initContainerStatuses"][0];
    assert_eq!(init["name"], "prepare");
    assert_eq!(init["state"]["terminated"]["reason"], "Completed");
    let initialized = pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Initialized")
        .cloned()
        .unwrap();
    assert_eq!(initialized["status"], "True");

    // A changed ConfigMap reaches the mounted file while the container runs.
    apply(&k, &config_map("hello-v2"));
    logs_containing(&k, "config-demo", "file=hello-v2");
    assert_host_untouched();

    // A missing ConfigMap: the container waits, then starts once it exists.
    apply(&k, LATE);
    let message = wait_for("late to wait for its ConfigMap", || {
        let out = k.run(&[
            "get",
            "pod",
            "late",
            "-o",
            "jsonpath={.status.containerStatuses[0].state.waiting.reason}: {.status.containerStatuses[0].state.waiting.message}",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        text.starts_with("CreateContainerConfigError")
            .then_some(text)
    });
    assert_eq!(
        message,
        "CreateContainerConfigError: configmap \"late-config\" not found"
    );
    let table = k.ok(&["get", "pod", "late"]);
    assert!(table.contains("CreateContainerConfigError"), "{table}");
    apply(
        &k,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: late-config\ndata:\n  value: arrived\n",
    );
    logs_containing(&k, "late", "late=arrived");
    let restarts = k.ok(&[
        "get",
        "pod",
        "late",
        "-o",
        "jsonpath={.status.containerStatuses[0].restartCount}",
    ]);
    assert_eq!(restarts.trim(), "0");

    // Init progress in kubectl's STATUS column.
    apply(&k, SLOW_INIT);
    wait_for("slow-init to show Init:0/2", || {
        let out = k.run(&["get", "pod", "slow-init"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("Init:0/2")
            .then_some(())
    });

    // A failed init container under restartPolicy Never fails the pod; the app never starts.
    apply(&k, BAD_INIT);
    wait_for("bad-init to fail", || {
        let out = k.run(&["get", "pod", "bad-init", "-o", "jsonpath={.status.phase}"]);
        (String::from_utf8_lossy(&out.stdout).trim() == "Failed").then_some(())
    });
    let table = k.ok(&["get", "pod", "bad-init"]);
    assert!(table.contains("Init:Error"), "{table}");
    let app_state = k.ok(&[
        "get",
        "pod",
        "bad-init",
        "-o",
        "jsonpath={.status.containerStatuses[0].state.waiting.reason}",
    ]);
    assert_eq!(app_state.trim(), "PodInitializing");

    k.ok(&[
        "delete",
        "pod",
        "config-demo",
        "late",
        "slow-init",
        "bad-init",
        "--wait=true",
    ]);
    let status = up.proc.terminate();
    assert!(status.success(), "navarch up exited with {status}");
    assert_host_untouched();
}
