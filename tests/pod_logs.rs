//! `kubectl logs` end to end: the real kubectl against `navarch up`, reading what real processes wrote, through the
//! gateway's `pods/log` and the node agent's log stream over the bus.

#![allow(clippy::disallowed_methods)]

mod util;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use util::*;

fn manifest(counter: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: p1
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.3; done"]
---
apiVersion: v1
kind: Pod
metadata:
  name: crash
spec:
  restartPolicy: Always
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; echo instance $n; exit 1"]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
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
        command: ["sh", "-c", "echo hello from web; exec sleep 3613"]
"#
    )
}

/// The number in the one `line N` / `instance N` line of `text`.
fn numbers(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.split_whitespace().last()?.parse().ok())
        .collect()
}

#[test]
fn kubectl_logs_reads_tails_follows_and_shows_the_previous_instance() {
    let up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);
    let counter = up.dir.path().join("crash-count");
    let out = k.apply_stdin(&["apply", "-f", "-"], &manifest(counter.to_str().unwrap()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Whole log, then the last 2 lines exactly.
    let all = wait_for("p1 to log 3 lines", || {
        let out = k.run(&["logs", "p1"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && text.lines().count() >= 3).then_some(text)
    });
    assert!(all.starts_with("line 1\nline 2\nline 3\n"), "{all}");
    let tail = k.ok(&["logs", "--tail=2", "p1"]);
    let n = numbers(&tail);
    assert_eq!(n.len(), 2, "{tail}");
    assert_eq!(n[1], n[0] + 1, "{tail}");
    assert!(n[0] >= 2);
    assert_eq!(k.ok(&["logs", "--limit-bytes=4", "p1"]), "line");

    // Follow: new lines arrive as they are written.
    let mut follow = k
        .command(&["logs", "-f", "--tail=1", "p1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl logs -f");
    let (tx, rx) = mpsc::channel();
    let stdout = follow.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("kubectl logs -f streamed {seen:?}, then: {e}"));
        seen.extend(numbers(&line));
    }
    assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
    follow.kill().expect("kill kubectl logs -f");
    let _ = follow.wait();
    // The agent let go of the stream it was following: it serves the next reader as before.
    assert_eq!(numbers(&k.ok(&["logs", "--tail=1", "p1"])).len(), 1);

    // Errors, with kube-apiserver's words.
    let out = k.run(&["logs", "p1", "-c", "nope"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("container nope is not valid for pod p1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = k.run(&["logs", "--previous", "p1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("previous terminated container \"main\" in pod \"p1\" not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = k.run(&["logs", "nosuchpod"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    let out = k.run(&["logs", "p1", "--timestamps"]);
    assert!(!out.status.success());

    // A deployment: kubectl picks its pod by the selector.
    let web = wait_for("the web pod to log", || {
        let out = k.run(&["logs", "deploy/web"]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            .filter(|t| !t.is_empty())
    });
    assert_eq!(web, "hello from web\n");

    // A container that restarted: --previous shows the instance before the current one.
    wait_for("crash to restart", || {
        let pod = k.json(&["get", "pod", "crash"]);
        let restarts = pod["status"]["containerStatuses"][0]["restartCount"].as_i64()?;
        (restarts >= 1).then_some(())
    });
    wait_for(
        "the previous and current instances to differ by one",
        || {
            let current = numbers(&k.ok(&["logs", "crash"]));
            let previous = numbers(&k.ok(&["logs", "--previous", "crash"]));
            println!("current {current:?}, previous {previous:?}");
            (current.len() == 1 && previous.len() == 1 && current[0] == previous[0] + 1)
                .then_some(())
        },
    );
}
