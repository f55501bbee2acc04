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

/// Whether `line` starts with an RFC 3339 time with nine fractional digits in UTC and a space
/// (`2026-11-27T21:00:00.123456789Z text`).
fn stamped_line(line: &str) -> bool {
    let Some((time, _)) = line.split_once(' ') else {
        return false;
    };
    time.len() == 30 && time.ends_with('Z') && time.as_bytes()[19] == b'.' && chrono_like(time)
}

/// A cheap RFC 3339 check without a date library: digits where digits go.
fn chrono_like(time: &str) -> bool {
    time.char_indices().all(|(i, c)| match i {
        4 | 7 => c == '-',
        10 => c == 'T',
        13 | 16 => c == ':',
        19 => c == '.',
        29 => c == 'Z',
        _ => c.is_ascii_digit(),
    })
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
    // Each line with the time it was written, as the kubelet gives it.
    let stamped = k.ok(&["logs", "p1", "--timestamps", "--tail=2"]);
    assert_eq!(stamped.lines().count(), 2, "{stamped}");
    assert!(stamped.lines().all(stamped_line), "{stamped}");

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

/// A small rotation limit on the agent: the files on disk stay bounded while `--tail` still finds the last lines;
/// `--timestamps`, `--since`, `--since-time` and `--limit-bytes` pick and shape lines by the times recorded.
#[test]
fn logs_rotate_by_size_and_keep_their_times() {
    const MAX: u64 = 16 * 1024;
    let (_nats, url) = start_nats();
    let cluster = "pod-logs-rotation";
    let dir = tempfile::tempdir().expect("temp dir");
    let plane = ControlPlane::start((&url, cluster), dir.path());
    let (_scheduler, _) = spawn_role("scheduler", (&url, cluster), &["scheduler"]);
    let (_controllers, _) = spawn_role("controllers", (&url, cluster), &["controllers"]);
    let agent_dir = dir.path().join("agent");
    let (_agent, _) = spawn_role(
        "agent",
        (&url, cluster),
        &[
            "agent",
            "--data-dir",
            agent_dir.to_str().expect("utf-8"),
            "--node-name",
            "logs-node",
            "--container-log-max-size",
            "16Ki",
            "--container-log-max-files",
            "3",
        ],
    );
    plane.wait_ready();
    let k = plane.kubectl();
    wait_for("node logs-node Ready", || {
        let out = k.run(&["get", "node", "logs-node"]);
        String::from_utf8_lossy(&out.stdout)
            .contains(" Ready")
            .then_some(())
    });
    let pods = r#"apiVersion: v1
kind: Pod
metadata:
  name: chatty
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo \"........................................................................ line $i\"; done; echo end; exec sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: ticker
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done"]
"#;
    let out = k.apply_stdin(&["apply", "-f", "-"], pods);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 2,000 lines of ~100 bytes (~250 KiB with their times) through 16 KiB files, 3 kept.
    wait_for("chatty to finish writing", || {
        let out = k.run(&["logs", "--tail=1", "chatty"]);
        (out.status.success() && out.stdout == b"end\n").then_some(())
    });
    let uid = k.json(&["get", "pod", "chatty"])["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    let pod_dir = agent_dir.join("pods").join(format!("default_chatty_{uid}"));
    let files: Vec<(String, u64)> = std::fs::read_dir(&pod_dir)
        .expect("pod dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("main.log"))
        .map(|e| {
            let len = e.metadata().expect("metadata").len();
            (e.file_name().to_string_lossy().into_owned(), len)
        })
        .collect();
    assert!(files.len() <= 3, "{files:?}");
    assert!(files.iter().all(|(_, len)| *len <= MAX), "{files:?}");
    let on_disk: u64 = files.iter().map(|(_, len)| len).sum();
    assert!(on_disk <= 3 * MAX, "{files:?}");

    let tail = k.ok(&["logs", "--tail=4", "chatty"]);
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 4, "{tail}");
    assert_eq!(numbers(&tail), vec![1998, 1999, 2000], "{tail}");
    assert_eq!(lines[3], "end");
    // The whole log is what is kept: the newest lines, in order, the oldest rotated away.
    let all = k.ok(&["logs", "chatty"]);
    let n = numbers(&all);
    assert!(
        n[0] > 1 && *n.last().expect("lines") == 2000,
        "{}",
        &all[..200.min(all.len())]
    );
    assert!(n.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(all.ends_with("end\n"));

    // Times: every line stamped; --since and --since-time pick by them.
    let stamped = wait_for("ticker to log 8 lines", || {
        let text = k.ok(&["logs", "--timestamps", "ticker"]);
        (text.lines().count() >= 8).then_some(text)
    });
    assert!(stamped.lines().all(stamped_line), "{stamped}");
    let third = stamped.lines().nth(2).expect("a third line");
    let (time, text) = third.split_once(' ').expect("stamped");
    assert_eq!(text, "tick 3");
    let since_time = k.ok(&["logs", "--since-time", time, "ticker"]);
    assert_eq!(numbers(&since_time)[0], 3, "{since_time}");
    let recent = k.ok(&["logs", "--since=3s", "ticker"]);
    let recent = numbers(&recent);
    let total = numbers(&k.ok(&["logs", "ticker"])).len();
    assert!(!recent.is_empty() && recent.len() <= 5, "{recent:?}");
    assert!(
        recent[0] > 3 && recent.len() < total,
        "{recent:?} of {total}"
    );
    assert_eq!(k.ok(&["logs", "--limit-bytes=9", "ticker"]), "tick 1\nti");
    let last = k.ok(&["logs", "--timestamps", "--tail=1", "ticker"]);
    assert_eq!(last.lines().count(), 1);
    assert!(stamped_line(last.trim_end()), "{last}");
}
