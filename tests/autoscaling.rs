//! Autoscaling end to end: `navarch up` with the process runtime runs a Deployment of CPU burners (request 100m,
//! limit 200m so the machine is not swamped), `kubectl autoscale` targets 50% CPU, the node agent measures the
//! burners, `kubectl top` shows them, and the HPA scales the Deployment up; once the burn stops (a file the
//! burners look for appears) it scales back down after the short stabilization window the test sets.

#![allow(clippy::disallowed_methods)]

mod util;

use std::path::Path;
use std::time::{Duration, Instant};

use util::*;

/// Polls `check` every second for up to `limit` (generous: a loaded machine measures and scales slowly).
fn wait_long<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn deployment(stop: &Path) -> String {
    let stop = stop.display();
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: burn
spec:
  replicas: 1
  selector:
    matchLabels: {{app: burn}}
  template:
    metadata:
      labels: {{app: burn}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: ["sh", "-c", "while [ ! -e {stop} ]; do :; done; exec sleep 100000"]
        resources:
          requests: {{cpu: 100m, memory: 16Mi}}
          limits: {{cpu: 200m}}
"#
    )
}

fn replicas(k: &Kubectl) -> Option<i64> {
    k.json(&["get", "deployment", "burn"])["spec"]["replicas"].as_i64()
}

#[test]
fn hpa_scales_cpu_burners_up_and_back_down() {
    let up = start_up(&["--horizontal-pod-autoscaler-sync-period", "3s"]);
    let k = Kubectl::new(&up.kubeconfig);
    let stop = up.dir.path().join("stop-burning");
    let out = k.apply_stdin(&["apply", "-f", "-"], &deployment(&stop));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let created = k.ok(&[
        "autoscale",
        "deployment",
        "burn",
        "--cpu-percent=50",
        "--min=1",
        "--max=3",
    ]);
    assert!(
        created.contains("horizontalpodautoscaler.autoscaling/burn autoscaled"),
        "{created}"
    );
    // Scale down quickly once the burn stops (the default window is 5 minutes).
    k.ok(&[
        "patch",
        "hpa",
        "burn",
        "--type=merge",
        "-p",
        r#"{"spec":{"behavior":{"scaleDown":{"stabilizationWindowSeconds":10}}}}"#,
    ]);

    // The agent measures the burner: `kubectl top pod` shows it using CPU (its limit is 200m).
    let top = wait_long(
        "kubectl top pod to show the burner",
        Duration::from_secs(120),
        || {
            let out = k.run(&["top", "pod", "-l", "app=burn", "--no-headers"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let busy = text.lines().any(|l| {
                let cpu = l.split_whitespace().nth(1).unwrap_or_default();
                cpu.trim_end_matches('m')
                    .parse::<u64>()
                    .is_ok_and(|m| m >= 60)
            });
            (out.status.success() && busy).then_some(text)
        },
    );
    assert!(top.contains("burn-"), "{top}");
    let nodes = k.ok(&["top", "node"]);
    assert!(
        nodes.contains("CPU(cores)") && nodes.contains("MEMORY(bytes)"),
        "{nodes}"
    );

    // It scales up, and says so.
    wait_long(
        "the HPA to scale the burners up",
        Duration::from_secs(120),
        || (replicas(&k)? >= 2).then_some(()),
    );
    let hpa = wait_long(
        "the HPA status to show the usage",
        Duration::from_secs(60),
        || {
            let hpa = k.json(&["get", "hpa", "burn"]);
            hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"]
                .as_i64()
                .map(|_| hpa)
        },
    );
    assert!(hpa["status"]["lastScaleTime"].is_string(), "{hpa}");
    let row = k.ok(&["get", "hpa", "burn", "--no-headers"]);
    assert!(row.contains("cpu: ") && row.contains("%/50%"), "{row}");
    assert!(row.contains("Deployment/burn"), "{row}");
    let described = k.ok(&["describe", "hpa", "burn"]);
    for expected in [
        "AbleToScale",
        "ScalingActive",
        "ValidMetricFound",
        "SuccessfulRescale",
        "New size:",
    ] {
        assert!(
            described.contains(expected),
            "{expected} missing from:\n{described}"
        );
    }
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=burn,involvedObject.kind=HorizontalPodAutoscaler",
    ]);
    assert!(events.contains("SuccessfulRescale"), "{events}");

    // The burn stops: after the 10 s window the HPA scales back to its minimum.
    std::fs::write(&stop, "").expect("stop file");
    wait_long(
        "the HPA to scale back down",
        Duration::from_secs(180),
        || (replicas(&k)? == 1).then_some(()),
    );
    let hpa = k.json(&["get", "hpa", "burn"]);
    assert_eq!(hpa["status"]["desiredReplicas"], 1, "{hpa}");
    let reason = k.ok(&["describe", "hpa", "burn"]);
    assert!(reason.contains("All metrics below target"), "{reason}");
}

#[test]
fn pods_without_a_cpu_request_make_the_hpa_report_failed_metrics() {
    let up = start_up(&["--horizontal-pod-autoscaler-sync-period", "2s"]);
    let k = Kubectl::new(&up.kubeconfig);
    k.ok(&[
        "create",
        "deployment",
        "plain",
        "--image=busybox",
        "--",
        "sleep",
        "100000",
    ]);
    k.ok(&[
        "autoscale",
        "deployment",
        "plain",
        "--cpu-percent=50",
        "--max=2",
    ]);
    let condition = wait_long("ScalingActive=False", Duration::from_secs(120), || {
        let hpa = k.json(&["get", "hpa", "plain"]);
        let conditions = hpa["status"]["conditions"].as_array()?.clone();
        conditions
            .into_iter()
            .find(|c| c["type"] == "ScalingActive" && c["status"] == "False")
    });
    assert_eq!(
        condition["reason"], "FailedGetResourceMetric",
        "{condition}"
    );
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("missing request for cpu in container busybox of Pod plain-"),
        "{message}"
    );
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=plain,reason=FailedGetResourceMetric",
    ]);
    assert!(events.contains("FailedGetResourceMetric"), "{events}");
    assert_eq!(
        k.json(&["get", "deployment", "plain"])["spec"]["replicas"],
        1
    );
}
