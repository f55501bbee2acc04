//! `cargo bench --bench skeleton`: the walking skeleton's figures, measured against a real `navarch up` (release
//! build) with the real kubectl: time from `kubectl apply` of a 3-replica Deployment until all 3 pods are Running,
//! and the resident memory of `navarch up` idle and with 5 pods. Figures are printed, never asserted.

#![allow(clippy::disallowed_methods)]

#[path = "../tests/util/mod.rs"]
mod util;

use std::time::{Duration, Instant};

use util::*;

const ROUNDS: usize = 7;

fn manifest(replicas: u32) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"List","items":[
  {{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"bench"}}}},
  {{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"web","namespace":"bench"}},
    "spec":{{"replicas":{replicas},"selector":{{"matchLabels":{{"app":"web"}}}},
      "template":{{"metadata":{{"labels":{{"app":"web"}}}},
        "spec":{{"containers":[{{"name":"main","image":"busybox","command":["sleep","3619"]}}]}}}}}}}}]}}"#
    )
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn running(api: &str) -> usize {
    let Some((200, body)) = http_get(api, "/api/v1/namespaces/bench/pods") else {
        return 0;
    };
    let list: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    list["items"].as_array().map_or(0, |i| {
        i.iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count()
    })
}

fn pod_objects(api: &str) -> usize {
    let Some((200, body)) = http_get(api, "/api/v1/namespaces/bench/pods") else {
        return usize::MAX;
    };
    let list: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    list["items"].as_array().map_or(usize::MAX, Vec::len)
}

fn main() {
    let mut up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);
    k.ok(&["get", "nodes"]);
    std::thread::sleep(Duration::from_secs(5));
    let idle = rss_kib(up.proc.pid());

    let mut samples = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let out = k.apply_stdin(&["apply", "-f", "-"], &manifest(3));
        assert!(out.status.success(), "apply failed");
        loop {
            if running(&up.api) == 3 {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(120), "pods never ran");
            std::thread::sleep(Duration::from_millis(20));
        }
        samples.push(start.elapsed());
        k.ok(&["delete", "deployment", "web", "-n", "bench"]);
        wait_for("pod objects gone", || {
            (pod_objects(&up.api) == 0).then_some(())
        });
    }
    samples.sort();

    let out = k.apply_stdin(&["apply", "-f", "-"], &manifest(5));
    assert!(out.status.success());
    wait_for("5 pods Running", || (running(&up.api) == 5).then_some(()));
    std::thread::sleep(Duration::from_secs(3));
    let with_five = rss_kib(up.proc.pid());
    up.proc.terminate();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("kubectl apply (3 replicas) -> 3 pods Running, {ROUNDS} rounds (includes kubectl's own start-up):");
    println!(
        "  min {:.0} ms, median {:.0} ms, max {:.0} ms",
        ms(samples[0]),
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1])
    );
    println!(
        "navarch up resident memory: idle {} MiB, with 5 pods {} MiB",
        idle / 1024,
        with_five / 1024
    );
}
