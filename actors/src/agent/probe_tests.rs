//! Tests of the probe state machine: exact due probes and verdicts for each result.

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

fn container(probes: serde_json::Value) -> Container {
    let mut c = json!({
        "name": "main",
        "image": "busybox",
        "command": ["sleep", "3600"],
        "ports": [{"name": "http", "containerPort": 8080}]
    });
    for (k, v) in probes.as_object().unwrap() {
        c[k] = v.clone();
    }
    serde_json::from_value(c).unwrap()
}

fn exec(file: &str) -> Action {
    Action::Exec {
        command: vec!["cat".into(), file.into()],
    }
}

fn kinds(due: &[DueProbe]) -> Vec<ProbeKind> {
    due.iter().map(|d| d.kind).collect()
}

#[test]
fn defaults_follow_kubernetes() {
    let c = container(json!({"livenessProbe": {"exec": {"command": ["cat", "/ok"]}}}));
    let spec = ProbeSpec::new(ProbeKind::Liveness, c.liveness_probe.as_ref().unwrap(), &c);
    assert_eq!(
        spec,
        ProbeSpec {
            action: exec("/ok"),
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
            termination_grace: None,
        }
    );
    // successThreshold is forced to 1 for liveness; a period of 0 becomes 1.
    let probe: Probe = serde_json::from_value(json!({
        "tcpSocket": {"port": "http"}, "successThreshold": 3, "periodSeconds": 0, "failureThreshold": 0
    }))
    .unwrap();
    let live = ProbeSpec::new(ProbeKind::Liveness, &probe, &c);
    assert_eq!(live.success_threshold, 1);
    assert_eq!(live.period, Duration::from_secs(1));
    assert_eq!(live.failure_threshold, 1);
    assert_eq!(
        live.action,
        Action::TcpSocket {
            host: None,
            port: 8080
        }
    );
    assert_eq!(
        ProbeSpec::new(ProbeKind::Readiness, &probe, &c).success_threshold,
        3
    );
}

#[test]
fn http_actions_resolve_named_ports_and_take_the_pod_ip() {
    let c = container(json!({}));
    let probe: Probe = serde_json::from_value(json!({
        "httpGet": {"path": "/healthz", "port": "http", "httpHeaders": [{"name": "X-A", "value": "b"}]}
    }))
    .unwrap();
    assert_eq!(
        Action::of_probe(&probe, &c).with_default_host("10.0.0.5"),
        Action::HttpGet {
            host: Some("10.0.0.5".into()),
            port: 8080,
            path: "/healthz".into(),
            scheme: "HTTP".into(),
            headers: vec![("X-A".into(), "b".into())],
        }
    );
    let unknown: Probe = serde_json::from_value(json!({"httpGet": {"port": "metrics"}})).unwrap();
    assert_eq!(
        Action::of_probe(&unknown, &c),
        Action::Invalid("port \"metrics\" is not a named port of the container".into())
    );
    let zero: Probe = serde_json::from_value(json!({"tcpSocket": {"port": 0}})).unwrap();
    assert_eq!(
        Action::of_probe(&zero, &c),
        Action::Invalid("invalid port 0".into())
    );
    let own_host: Probe =
        serde_json::from_value(json!({"tcpSocket": {"port": 80, "host": "db"}})).unwrap();
    assert_eq!(
        Action::of_probe(&own_host, &c).with_default_host("10.0.0.5"),
        Action::TcpSocket {
            host: Some("db".into()),
            port: 80
        }
    );
}

#[test]
fn a_container_without_probes_is_started_and_ready_while_it_runs() {
    let mut p = Probes::of(&container(json!({})));
    assert!(!p.ready());
    p.run_started(t0());
    assert!(p.started() && p.ready());
    assert_eq!(p.due(at(100)), vec![]);
    assert_eq!(p.next_due(), None);
    p.run_ended();
    assert!(!p.ready() && !p.started());
}

#[test]
fn probes_are_due_after_the_initial_delay_then_every_period_and_one_at_a_time() {
    let mut p = Probes::of(&container(json!({
        "livenessProbe": {"exec": {"command": ["cat", "/ok"]}, "initialDelaySeconds": 5, "periodSeconds": 2}
    })));
    p.run_started(t0());
    assert_eq!(p.next_due(), Some(at(5)));
    assert_eq!(p.due(at(4)), vec![]);
    assert_eq!(
        p.due(at(5)),
        vec![DueProbe {
            kind: ProbeKind::Liveness,
            action: exec("/ok"),
            timeout: Duration::from_secs(1),
        }]
    );
    // Not again while its result is awaited, even once the period has passed.
    assert_eq!(p.due(at(8)), vec![]);
    assert_eq!(p.next_due(), None);
    assert_eq!(p.record(ProbeKind::Liveness, true), Verdict::Keep);
    assert_eq!(kinds(&p.due(at(8))), vec![ProbeKind::Liveness]);
    assert_eq!(p.next_due(), None);
    p.record(ProbeKind::Liveness, true);
    assert_eq!(p.next_due(), Some(at(10)));
    // A result nobody asked for (a stale one) counts for nothing.
    assert_eq!(p.record(ProbeKind::Liveness, false), Verdict::Keep);
    assert_eq!(p.record(ProbeKind::Readiness, false), Verdict::Keep);
}

#[test]
fn liveness_kills_after_failure_threshold_failures_in_a_row() {
    let mut p = Probes::of(&container(json!({
        "livenessProbe": {"exec": {"command": ["cat", "/ok"]}, "periodSeconds": 1, "failureThreshold": 2,
                          "terminationGracePeriodSeconds": 7}
    })));
    p.run_started(t0());
    let send = |p: &mut Probes, t, ok| {
        assert_eq!(kinds(&p.due(at(t))), vec![ProbeKind::Liveness]);
        p.record(ProbeKind::Liveness, ok)
    };
    assert_eq!(send(&mut p, 0, false), Verdict::Keep);
    assert_eq!(send(&mut p, 1, true), Verdict::Keep); // resets the count
    assert_eq!(send(&mut p, 2, false), Verdict::Keep);
    assert_eq!(
        send(&mut p, 3, false),
        Verdict::Kill {
            reason: "failed liveness probe".into(),
            grace: Some(Duration::from_secs(7)),
        }
    );
    assert!(p.ready(), "liveness says nothing of readiness");
    // A new run starts over.
    p.run_ended();
    assert_eq!(p.due(at(4)), vec![]);
    p.run_started(at(10));
    assert_eq!(send(&mut p, 10, false), Verdict::Keep);
}

#[test]
fn readiness_needs_success_threshold_successes_and_failure_threshold_failures() {
    let mut p = Probes::of(&container(json!({
        "readinessProbe": {"exec": {"command": ["cat", "/ok"]}, "periodSeconds": 1,
                           "successThreshold": 2, "failureThreshold": 2}
    })));
    p.run_started(t0());
    assert!(p.started() && !p.ready(), "unready until the probe passes");
    let send = |p: &mut Probes, t, ok| {
        assert_eq!(kinds(&p.due(at(t))), vec![ProbeKind::Readiness]);
        assert_eq!(p.record(ProbeKind::Readiness, ok), Verdict::Keep);
        p.ready()
    };
    assert!(!send(&mut p, 0, true));
    assert!(send(&mut p, 1, true));
    assert!(send(&mut p, 2, true));
    assert!(send(&mut p, 3, false), "one failure is not enough");
    assert!(!send(&mut p, 4, false));
    assert!(!send(&mut p, 5, true));
    assert!(send(&mut p, 6, true));
}

#[test]
fn a_startup_probe_holds_back_liveness_and_readiness_until_it_succeeds() {
    let mut p = Probes::of(&container(json!({
        "startupProbe": {"exec": {"command": ["cat", "/started"]}, "periodSeconds": 1, "failureThreshold": 3},
        "livenessProbe": {"exec": {"command": ["cat", "/ok"]}, "periodSeconds": 1},
        "readinessProbe": {"exec": {"command": ["cat", "/ready"]}, "periodSeconds": 1}
    })));
    p.run_started(t0());
    assert!(!p.started() && !p.ready());
    assert_eq!(kinds(&p.due(at(0))), vec![ProbeKind::Startup]);
    assert_eq!(p.record(ProbeKind::Startup, false), Verdict::Keep);
    assert_eq!(kinds(&p.due(at(1))), vec![ProbeKind::Startup]);
    assert_eq!(p.record(ProbeKind::Startup, true), Verdict::Keep);
    assert!(p.started() && !p.ready());
    // Started: the other two run (their initial delay is long over), the startup probe no more.
    assert_eq!(
        kinds(&p.due(at(2))),
        vec![ProbeKind::Liveness, ProbeKind::Readiness]
    );
    p.record(ProbeKind::Readiness, true);
    assert!(p.ready());
}

#[test]
fn a_startup_probe_failing_failure_threshold_times_kills() {
    let mut p = Probes::of(&container(json!({
        "startupProbe": {"exec": {"command": ["cat", "/started"]}, "periodSeconds": 1, "failureThreshold": 2}
    })));
    p.run_started(t0());
    p.due(at(0));
    assert_eq!(p.record(ProbeKind::Startup, false), Verdict::Keep);
    p.due(at(1));
    assert_eq!(
        p.record(ProbeKind::Startup, false),
        Verdict::Kill {
            reason: "failed startup probe".into(),
            grace: None
        }
    );
}

#[test]
fn pre_stop_hooks_become_actions() {
    let c = container(
        json!({"lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "echo bye"]}}}}),
    );
    let hook = c.lifecycle.as_ref().unwrap().pre_stop.as_ref().unwrap();
    assert_eq!(
        Action::of_hook(hook, &c),
        Some(Action::Exec {
            command: vec!["sh".into(), "-c".into(), "echo bye".into()]
        })
    );
    let sleep: LifecycleHandler = serde_json::from_value(json!({"sleep": {"seconds": 3}})).unwrap();
    assert_eq!(
        Action::of_hook(&sleep, &c),
        Some(Action::Sleep(Duration::from_secs(3)))
    );
    assert_eq!(Action::of_hook(&LifecycleHandler::default(), &c), None);
}
