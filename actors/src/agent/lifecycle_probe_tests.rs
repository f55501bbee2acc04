//! Tests of the pod lifecycle with probes and hooks: exact commands for each event.

use super::tests::split;
use super::*;
use k8s_openapi::chrono::Duration as ChronoDuration;
use navarch_bus::api::meta::parse_time;
use serde_json::json;

fn t0() -> DateTime<Utc> {
    parse_time("2026-11-27T12:00:00Z").unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + ChronoDuration::seconds(secs)
}

/// A pod whose container `main` has `extra` (probes, lifecycle) merged in.
fn pod(policy: &str, extra: serde_json::Value) -> Pod {
    let mut main = json!({"name": "main", "image": "busybox", "command": ["sleep", "3600"]});
    for (k, v) in extra.as_object().unwrap() {
        main[k] = v.clone();
    }
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "demo", "uid": "uid-1"},
        "spec": {"nodeName": "n1", "restartPolicy": policy, "containers": [main]}
    }))
    .unwrap()
}

fn started(attempt: u32) -> PodEvent {
    PodEvent::Started {
        container: "main".into(),
        attempt,
        container_id: format!("navarch-process://uid-1_main_{attempt}"),
    }
}

fn result(attempt: u32, kind: ProbeKind, success: bool) -> PodEvent {
    PodEvent::ProbeResult {
        container: "main".into(),
        attempt,
        kind,
        success,
    }
}

fn probe(attempt: u32, kind: ProbeKind, file: &str) -> Command {
    Command::RunProbe {
        container: "main".into(),
        attempt,
        kind,
        action: Action::Exec {
            command: vec!["cat".into(), file.into()],
        },
        timeout: Duration::from_secs(1),
    }
}

fn ready_condition(s: &PodStatus) -> (&str, Option<&str>) {
    let c = s
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    (c.status.as_str(), c.message.as_deref())
}

fn main_status(s: &PodStatus) -> &k8s_openapi::api::core::v1::ContainerStatus {
    &s.container_statuses.as_ref().unwrap()[0]
}

fn assigned(pod: Pod) -> PodMachine {
    let mut m = PodMachine::new("10.0.0.5");
    m.handle(PodEvent::Assigned(Box::new(pod)), t0());
    m
}

#[test]
fn a_failing_liveness_probe_stops_the_container_with_its_pre_stop_hook_and_restarts_it() {
    let mut m = assigned(pod(
        "Always",
        json!({
            "livenessProbe": {"exec": {"command": ["cat", "/ok"]}, "periodSeconds": 1, "failureThreshold": 2},
            "lifecycle": {"preStop": {"httpGet": {"path": "/quit", "port": 8080}}}
        }),
    ));
    let m = &mut m;
    let liveness = probe(0, ProbeKind::Liveness, "/ok");
    let (cmds, _) = split(m.handle(started(0), t0()));
    assert_eq!(cmds, vec![liveness.clone()]);
    assert_eq!(
        m.handle(PodEvent::Tick, t0()),
        vec![],
        "one probe at a time"
    );
    assert_eq!(
        m.handle(result(0, ProbeKind::Liveness, false), t0()),
        vec![]
    );
    assert_eq!(m.handle(PodEvent::Tick, at(1)), vec![liveness]);
    let (cmds, _) = split(m.handle(result(0, ProbeKind::Liveness, false), at(1)));
    assert_eq!(
        cmds,
        vec![Command::KillContainer {
            container: "main".into(),
            attempt: 0,
            signal: StopSignal::Term,
            grace: Duration::from_secs(30),
            pre_stop: Some(Action::HttpGet {
                host: Some("10.0.0.5".into()),
                port: 8080,
                path: "/quit".into(),
                scheme: "HTTP".into(),
                headers: vec![],
            }),
            reason: Some("Container main failed liveness probe, will be restarted".into()),
        }]
    );
    // No probes while it stops; it restarts at once, like a crash.
    assert_eq!(m.handle(PodEvent::Tick, at(5)), vec![]);
    let exited = PodEvent::Exited {
        container: "main".into(),
        attempt: 0,
        exit_code: 143,
        signal: Some(15),
        oom_killed: false,
    };
    let (cmds, status) = split(m.handle(exited, at(6)));
    assert_eq!(
        cmds,
        vec![Command::StartContainer {
            container: "main".into(),
            attempt: 1
        }]
    );
    let s = status.unwrap();
    let main = main_status(&s);
    assert_eq!(main.restart_count, 1);
    let last = main
        .last_state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!(last.exit_code, 143);
    // The old run's late result counts for nothing; the new run is probed afresh.
    assert_eq!(
        m.handle(result(0, ProbeKind::Liveness, false), at(6)),
        vec![]
    );
    let (cmds, _) = split(m.handle(started(1), at(7)));
    assert_eq!(cmds, vec![probe(1, ProbeKind::Liveness, "/ok")]);
}

#[test]
fn liveness_kills_within_the_pods_grace_period_and_a_zero_grace_kills_at_once() {
    let mut pod = pod(
        "Never",
        json!({"livenessProbe": {"exec": {"command": ["cat", "/ok"]}, "failureThreshold": 1}}),
    );
    pod.spec.as_mut().unwrap().termination_grace_period_seconds = Some(0);
    let mut m = assigned(pod);
    m.handle(started(0), t0());
    let (cmds, _) = split(m.handle(result(0, ProbeKind::Liveness, false), at(1)));
    assert_eq!(
        cmds,
        vec![Command::KillContainer {
            container: "main".into(),
            attempt: 0,
            signal: StopSignal::Kill,
            grace: Duration::ZERO,
            pre_stop: None,
            reason: Some("Container main failed liveness probe, will be restarted".into()),
        }]
    );
    let exited = PodEvent::Exited {
        container: "main".into(),
        attempt: 0,
        exit_code: 137,
        signal: Some(9),
        oom_killed: false,
    };
    let (cmds, status) = split(m.handle(exited, at(1)));
    assert_eq!(cmds, vec![], "restartPolicy Never: no restart");
    assert_eq!(status.unwrap().phase.as_deref(), Some("Failed"));
}

#[test]
fn readiness_decides_the_containers_ready_and_the_pods_conditions() {
    let mut m = assigned(pod(
        "Always",
        json!({"readinessProbe": {"exec": {"command": ["cat", "/ready"]}, "periodSeconds": 1}}),
    ));
    let readiness = probe(0, ProbeKind::Readiness, "/ready");
    let (cmds, status) = split(m.handle(started(0), t0()));
    assert_eq!(cmds, vec![readiness.clone()]);
    let s = status.unwrap();
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert!(!main_status(&s).ready);
    assert_eq!(main_status(&s).started, Some(true));
    assert_eq!(
        ready_condition(&s),
        ("False", Some("containers with unready status: [main]"))
    );
    // A failure changes nothing visible: no status report.
    assert_eq!(
        m.handle(result(0, ProbeKind::Readiness, false), t0()),
        vec![]
    );
    assert_eq!(m.handle(PodEvent::Tick, at(1)), vec![readiness.clone()]);
    let (cmds, status) = split(m.handle(result(0, ProbeKind::Readiness, true), at(1)));
    assert_eq!(cmds, vec![]);
    let s = status.unwrap();
    assert!(main_status(&s).ready);
    assert_eq!(ready_condition(&s), ("True", None));
    // Three failures in a row (the default threshold) make it unready again.
    for t in 2..4 {
        assert_eq!(m.handle(PodEvent::Tick, at(t)), vec![readiness.clone()]);
        assert_eq!(
            m.handle(result(0, ProbeKind::Readiness, false), at(t)),
            vec![]
        );
    }
    assert_eq!(m.handle(PodEvent::Tick, at(4)), vec![readiness]);
    let (_, status) = split(m.handle(result(0, ProbeKind::Readiness, false), at(4)));
    assert!(!main_status(&status.unwrap()).ready);
}

#[test]
fn a_startup_probe_keeps_the_container_unstarted_and_kills_it_when_it_fails() {
    let mut m = assigned(pod(
        "OnFailure",
        json!({
            "startupProbe": {"exec": {"command": ["cat", "/started"]}, "periodSeconds": 1, "failureThreshold": 1},
            "livenessProbe": {"exec": {"command": ["cat", "/ok"]}, "periodSeconds": 1}
        }),
    ));
    let (cmds, status) = split(m.handle(started(0), t0()));
    assert_eq!(cmds, vec![probe(0, ProbeKind::Startup, "/started")]);
    let s = status.unwrap();
    assert_eq!(main_status(&s).started, Some(false));
    assert!(!main_status(&s).ready);
    let (cmds, _) = split(m.handle(result(0, ProbeKind::Startup, false), at(1)));
    assert!(matches!(
        cmds.as_slice(),
        [Command::KillContainer {
            signal: StopSignal::Term,
            ..
        }]
    ));
    // The next run: the startup probe passes, then liveness runs.
    let exited = PodEvent::Exited {
        container: "main".into(),
        attempt: 0,
        exit_code: 143,
        signal: Some(15),
        oom_killed: false,
    };
    m.handle(exited, at(2));
    m.handle(started(1), at(2));
    let (cmds, status) = split(m.handle(result(1, ProbeKind::Startup, true), at(2)));
    assert_eq!(cmds, vec![probe(1, ProbeKind::Liveness, "/ok")]);
    let s = status.unwrap();
    assert_eq!(main_status(&s).started, Some(true));
    assert!(main_status(&s).ready);
}

#[test]
fn deletion_runs_the_pre_stop_hook_and_stops_probing() {
    let mut m = assigned(pod(
        "Always",
        json!({
            "readinessProbe": {"exec": {"command": ["cat", "/ready"]}, "periodSeconds": 1},
            "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "sleep 1"]}}}
        }),
    ));
    m.handle(started(0), t0());
    let (cmds, _) = split(m.handle(
        PodEvent::DeletionRequested {
            grace: Duration::from_secs(5),
        },
        at(1),
    ));
    assert_eq!(
        cmds,
        vec![Command::KillContainer {
            container: "main".into(),
            attempt: 0,
            signal: StopSignal::Term,
            grace: Duration::from_secs(5),
            pre_stop: Some(Action::Exec {
                command: vec!["sh".into(), "-c".into(), "sleep 1".into()]
            }),
            reason: None,
        }]
    );
    // A result still in flight is ignored; nothing more is probed; SIGKILL comes without the hook.
    assert_eq!(
        m.handle(result(0, ProbeKind::Readiness, true), at(2)),
        vec![]
    );
    let (cmds, _) = split(m.handle(PodEvent::Tick, at(6)));
    assert_eq!(
        cmds,
        vec![Command::KillContainer {
            container: "main".into(),
            attempt: 0,
            signal: StopSignal::Kill,
            grace: Duration::ZERO,
            pre_stop: None,
            reason: None,
        }]
    );
}

#[test]
fn a_container_killed_by_its_liveness_probe_again_backs_off_like_a_crash() {
    let mut m = assigned(pod(
        "Always",
        json!({"livenessProbe": {"exec": {"command": ["cat", "/ok"]}, "failureThreshold": 1}}),
    ));
    let killed_and_exited = |m: &mut PodMachine, attempt: u32, t: i64| {
        m.handle(started(attempt), at(t));
        let (cmds, _) = split(m.handle(result(attempt, ProbeKind::Liveness, false), at(t)));
        assert!(
            matches!(cmds.as_slice(), [Command::KillContainer { .. }]),
            "{cmds:?}"
        );
        let exited = PodEvent::Exited {
            container: "main".into(),
            attempt,
            exit_code: 143,
            signal: Some(15),
            oom_killed: false,
        };
        split(m.handle(exited, at(t + 1)))
    };
    let (cmds, _) = killed_and_exited(&mut m, 0, 0);
    assert_eq!(
        cmds,
        vec![Command::StartContainer {
            container: "main".into(),
            attempt: 1
        }]
    );
    let (cmds, status) = killed_and_exited(&mut m, 1, 2);
    assert_eq!(cmds, vec![]);
    let s = status.unwrap();
    let waiting = main_status(&s)
        .state
        .as_ref()
        .unwrap()
        .waiting
        .as_ref()
        .unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    assert!(!main_status(&s).ready);
    assert_eq!(
        ready_condition(&s),
        ("False", Some("containers with unready status: [main]"))
    );
    assert_eq!(m.handle(PodEvent::Tick, at(12)), vec![]);
    let (cmds, _) = split(m.handle(PodEvent::Tick, at(13)));
    assert_eq!(
        cmds,
        vec![Command::StartContainer {
            container: "main".into(),
            attempt: 2
        }]
    );
}

#[test]
fn the_pod_is_ready_only_when_every_container_is() {
    let mut pod = pod(
        "Always",
        json!({"readinessProbe": {"exec": {"command": ["cat", "/ready"]}}}),
    );
    let side: k8s_openapi::api::core::v1::Container = serde_json::from_value(
        json!({"name": "side", "image": "busybox", "command": ["sleep", "1"]}),
    )
    .unwrap();
    pod.spec.as_mut().unwrap().containers.push(side);
    let mut m = assigned(pod);
    m.handle(started(0), t0());
    let side_started = PodEvent::Started {
        container: "side".into(),
        attempt: 0,
        container_id: "navarch-process://uid-1_side_0".into(),
    };
    let (_, status) = split(m.handle(side_started, t0()));
    let s = status.unwrap();
    assert_eq!(
        ready_condition(&s),
        ("False", Some("containers with unready status: [main]"))
    );
    let ready: Vec<bool> = s
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.ready)
        .collect();
    assert_eq!(ready, vec![false, true]);
    let (_, status) = split(m.handle(result(0, ProbeKind::Readiness, true), at(1)));
    assert_eq!(ready_condition(&status.unwrap()), ("True", None));
}
