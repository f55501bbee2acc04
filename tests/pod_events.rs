//! The node agent's Events end to end: `navarch up` runs a pod whose liveness probe always fails and one whose
//! configMap volume is missing; `kubectl get events` (filtered by the involved object) and `kubectl describe pod`
//! show what the kubelet would record, each repeat counted on one Event.

#![allow(clippy::disallowed_methods)]

mod util;

use std::time::{Duration, Instant};

use util::*;

const PODS: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: sick
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sleep", "100000"]
    livenessProbe:
      exec:
        command: ["sh", "-c", "echo not well; exit 1"]
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: unmounted
spec:
  containers:
  - name: main
    image: busybox
    command: ["sleep", "100000"]
    volumeMounts:
    - name: conf
      mountPath: /etc/navarch-test-conf
  volumes:
  - name: conf
    configMap:
      name: absent
"#;

/// The Events about `pod`: (reason, type, count, message, fieldPath).
fn events_of(k: &Kubectl, pod: &str) -> Vec<(String, String, i64, String, String)> {
    let list = k.json(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={pod}"),
    ]);
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|e| {
                    let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                    (
                        s("reason"),
                        s("type"),
                        e["count"].as_i64().unwrap_or(0),
                        s("message"),
                        e["involvedObject"]["fieldPath"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn wait_events<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn the_agent_records_kubelet_events_on_pods() {
    let up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);
    let out = k.apply_stdin(&["apply", "-f", "-"], PODS);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The failing probe: Unhealthy and Killing, after Pulled, Created and Started; repeats are counted.
    let events = wait_events("Unhealthy and Killing events about sick", || {
        let events = events_of(&k, "sick");
        let has = |reason: &str| events.iter().any(|e| e.0 == reason);
        let restarted = events.iter().any(|e| e.0 == "Started" && e.2 >= 2);
        (has("Unhealthy") && has("Killing") && restarted).then_some(events)
    });
    for reason in ["Pulled", "Created", "Started", "Unhealthy", "Killing"] {
        let e = events.iter().find(|e| e.0 == reason).expect("event");
        assert_eq!(e.4, "spec.containers{main}", "{e:?}");
    }
    let unhealthy = events
        .iter()
        .find(|e| e.0 == "Unhealthy")
        .expect("Unhealthy");
    assert_eq!(unhealthy.1, "Warning");
    assert!(
        unhealthy.3.starts_with("Liveness probe failed: "),
        "{unhealthy:?}"
    );
    assert!(unhealthy.3.contains("not well"), "{unhealthy:?}");
    let killing = events.iter().find(|e| e.0 == "Killing").expect("Killing");
    assert_eq!(
        killing.3,
        "Container main failed liveness probe, will be restarted"
    );
    // One Event per distinct message, whatever the number of restarts.
    let starts = events.iter().filter(|e| e.0 == "Started").count();
    assert_eq!(starts, 1, "{events:?}");

    let described = k.ok(&["describe", "pod", "sick"]);
    assert!(described.contains("Liveness probe failed: "), "{described}");
    assert!(described.contains("Started container main"), "{described}");

    // The missing configMap volume: FailedMount on the pod.
    let events = wait_events("FailedMount about unmounted", || {
        let events = events_of(&k, "unmounted");
        events
            .iter()
            .any(|e| e.0 == "FailedMount")
            .then_some(events)
    });
    let failed = events
        .iter()
        .find(|e| e.0 == "FailedMount")
        .expect("FailedMount");
    assert_eq!(failed.1, "Warning");
    assert_eq!(
        failed.3,
        "MountVolume.SetUp failed for volume \"conf\" : configmap \"absent\" not found"
    );
    // Nothing about the other pod is listed under this one.
    assert!(events.iter().all(|e| !e.3.contains("probe")), "{events:?}");
}
