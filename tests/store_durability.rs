//! Durability: writes the API acknowledged survive `kill -9` of the process in the middle of a write load, and the
//! revision never goes backwards.

#![allow(clippy::disallowed_methods)]

mod util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use util::*;

#[test]
fn acknowledged_writes_survive_kill_9() {
    let mut up = start_up(&[]);
    let data_dir = up.dir.path().join("data");
    let api = up.api.clone();

    let acknowledged = Arc::new(Mutex::new(Vec::<(String, i64)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (api, acknowledged, stop) = (api.clone(), acknowledged.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let name = format!("load-{w}-{i}");
                    let body = format!(
                        r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{name}"}}}}"#
                    );
                    match http(
                        &api,
                        "POST",
                        "/api/v1/namespaces",
                        "application/json",
                        body.as_bytes(),
                    ) {
                        Some((201, created)) => {
                            let created: serde_json::Value =
                                serde_json::from_str(&created).expect("created object");
                            let rv = created["metadata"]["resourceVersion"]
                                .as_str()
                                .and_then(|v| v.parse().ok())
                                .expect("resourceVersion");
                            acknowledged.lock().expect("lock").push((name, rv));
                        }
                        _ => break, // the process is gone
                    }
                }
            })
        })
        .collect();

    wait_for("200 acknowledged writes", || {
        (acknowledged.lock().expect("lock").len() >= 200).then_some(())
    });
    // SIGKILL while the writers are still writing: no chance to flush anything.
    up.proc.child.kill().expect("kill -9");
    up.proc.child.wait().expect("reap");
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    let highest = acknowledged.iter().map(|(_, rv)| *rv).max().unwrap_or(0);
    println!(
        "{} writes acknowledged before kill -9, highest revision {highest}",
        acknowledged.len()
    );

    let (_again, rx) = spawn(
        "up-after-kill",
        &[
            "up",
            "--api-listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().expect("utf-8"),
        ],
    );
    let api = read_line_starting(&rx, "API:");
    let kubeconfig = std::path::PathBuf::from(read_line_starting(&rx, "kubeconfig:"));
    trust(&api, &kubeconfig);
    wait_for("the API to be ready again", || {
        http_get(&api, "/readyz").filter(|(c, _)| *c == 200)
    });
    let (code, body) = http_get(&api, "/api/v1/namespaces").expect("list");
    assert_eq!(code, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).expect("list json");
    let present: std::collections::HashSet<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str())
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !present.contains(n.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {lost:?}",
        lost.len()
    );
    let revision: i64 = list["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("list rv");
    assert!(
        revision >= highest,
        "revision went back from {highest} to {revision}"
    );
}
