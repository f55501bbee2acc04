//! Tests of the pod lifecycle: exact commands for each event.

use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::chrono::Duration as ChronoDuration;
use navarch_bus::api::meta::parse_time;
use serde_json::json;

fn t0() -> DateTime<Utc> {
    parse_time("2026-11-27T12:00:00Z").unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + ChronoDuration::seconds(secs)
}

fn pod_with(policy: &str, containers: &[&str]) -> Pod {
    let containers: Vec<_> = containers
        .iter()
        .map(|n| json!({"name": n, "image": "busybox", "command": ["sleep", "3600"]}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "demo", "uid": "uid-1"},
        "spec": {"nodeName": "n1", "restartPolicy": policy, "containers": containers}
    }))
    .unwrap()
}

fn start(container: &str, attempt: u32) -> Command {
    Command::StartContainer {
        container: container.into(),
        attempt,
    }
}

fn kill(signal: StopSignal, grace: u64) -> Command {
    Command::KillContainer {
        container: "main".into(),
        attempt: 0,
        signal,
        grace: Duration::from_secs(grace),
        pre_stop: None,
        reason: None,
    }
}

fn started(attempt: u32) -> PodEvent {
    PodEvent::Started {
        container: "main".into(),
        attempt,
        container_id: format!("navarch-process://uid-1_main_{attempt}"),
    }
}

fn exited(attempt: u32, exit_code: i32) -> PodEvent {
    PodEvent::Exited {
        container: "main".into(),
        attempt,
        exit_code,
        signal: (exit_code > 128).then_some(exit_code - 128),
        oom_killed: false,
    }
}

/// Splits commands into the non-status ones and the last reported status (shared by the lifecycle's test modules).
pub(super) fn split(commands: Vec<Command>) -> (Vec<Command>, Option<PodStatus>) {
    let mut status = None;
    let mut rest = Vec::new();
    for c in commands {
        match c {
            Command::ReportStatus(s) => status = Some(*s),
            other => rest.push(other),
        }
    }
    (rest, status)
}

fn phase(s: &PodStatus) -> &str {
    s.phase.as_deref().unwrap_or_default()
}

fn main_status(s: &PodStatus) -> &k8s_openapi::api::core::v1::ContainerStatus {
    &s.container_statuses.as_ref().unwrap()[0]
}

fn cond<'a>(s: &'a PodStatus, type_: &str) -> &'a k8s_openapi::api::core::v1::PodCondition {
    s.conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .unwrap()
}

/// A machine whose single container `main` runs (attempt 0) since t0.
fn running(policy: &str) -> PodMachine {
    let mut m = PodMachine::new("10.0.0.5");
    m.handle(
        PodEvent::Assigned(Box::new(pod_with(policy, &["main"]))),
        t0(),
    );
    m.handle(started(0), t0());
    m
}

#[test]
fn assignment_starts_every_container_and_reports_pending() {
    let mut m = PodMachine::new("10.0.0.5");
    let (cmds, status) = split(m.handle(
        PodEvent::Assigned(Box::new(pod_with("Always", &["a", "b"]))),
        t0(),
    ));
    assert_eq!(cmds, vec![start("a", 0), start("b", 0)]);
    let s = status.unwrap();
    assert_eq!(phase(&s), "Pending");
    assert_eq!(s.host_ip.as_deref(), Some("10.0.0.5"));
    assert_eq!(s.pod_ip.as_deref(), Some("10.0.0.5"));
    assert_eq!(s.start_time, Some(Time(t0())));
    let waiting = main_status(&s)
        .state
        .as_ref()
        .unwrap()
        .waiting
        .as_ref()
        .unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("ContainerCreating"));
    let ready = cond(&s, "Ready");
    assert_eq!(ready.status, "False");
    assert_eq!(
        ready.message.as_deref(),
        Some("containers with unready status: [a b]")
    );
    assert_eq!(cond(&s, "PodScheduled").status, "True");
}

#[test]
fn a_started_container_makes_the_pod_running_and_ready() {
    let mut m = PodMachine::new("10.0.0.5");
    m.handle(
        PodEvent::Assigned(Box::new(pod_with("Always", &["main"]))),
        t0(),
    );
    let (cmds, status) = split(m.handle(started(0), at(1)));
    assert_eq!(cmds, vec![]);
    let s = status.unwrap();
    assert_eq!(phase(&s), "Running");
    let c = main_status(&s);
    assert!(c.ready);
    assert_eq!(
        c.container_id.as_deref(),
        Some("navarch-process://uid-1_main_0")
    );
    assert_eq!(
        c.state
            .as_ref()
            .unwrap()
            .running
            .as_ref()
            .unwrap()
            .started_at,
        Some(Time(at(1)))
    );
    let ready = cond(&s, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.last_transition_time.clone()),
        ("True", Some(Time(at(1))))
    );
    // Nothing changed: nothing to report.
    assert_eq!(m.handle(PodEvent::Tick, at(2)), vec![]);
}

#[test]
fn crashing_containers_restart_at_once_then_back_off_doubling() {
    let mut m = running("Always");
    let (cmds, status) = split(m.handle(exited(0, 1), at(5)));
    assert_eq!(cmds, vec![start("main", 1)]);
    let s = status.unwrap();
    assert_eq!(main_status(&s).restart_count, 1);
    let last = main_status(&s)
        .last_state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));

    m.handle(started(1), at(6));
    let (cmds, status) = split(m.handle(exited(1, 1), at(7)));
    assert_eq!(cmds, vec![]);
    let s = status.unwrap();
    assert_eq!(phase(&s), "Running");
    let waiting = main_status(&s)
        .state
        .as_ref()
        .unwrap()
        .waiting
        .clone()
        .unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(
        waiting.message.as_deref(),
        Some("back-off 10s restarting failed container=main pod=web_demo(uid-1)")
    );
    assert_eq!(m.handle(PodEvent::Tick, at(16)), vec![]);
    let (cmds, _) = split(m.handle(PodEvent::Tick, at(17)));
    assert_eq!(cmds, vec![start("main", 2)]);

    // Each further quick crash doubles the wait, up to 5 minutes.
    let mut waits = Vec::new();
    let mut now = 17;
    for attempt in 2..10u32 {
        m.handle(started(attempt), at(now));
        let (_, s) = split(m.handle(exited(attempt, 1), at(now + 1)));
        let msg = main_status(&s.unwrap())
            .state
            .clone()
            .unwrap()
            .waiting
            .unwrap()
            .message
            .unwrap();
        waits.push(msg.split_whitespace().nth(1).unwrap().to_string());
        now += 400;
        m.handle(PodEvent::Tick, at(now));
    }
    assert_eq!(
        waits,
        vec!["20s", "40s", "1m20s", "2m40s", "5m0s", "5m0s", "5m0s", "5m0s"]
    );
}

#[test]
fn a_long_run_resets_the_back_off() {
    let mut m = running("Always");
    m.handle(exited(0, 1), at(1));
    m.handle(started(1), at(1));
    // Ran 10 minutes: restarts at once again.
    let (cmds, _) = split(m.handle(exited(1, 1), at(601)));
    assert_eq!(cmds, vec![start("main", 2)]);
}

#[test]
fn restart_policies_decide_the_end() {
    let mut m = running("OnFailure");
    let (cmds, s) = split(m.handle(exited(0, 0), at(3)));
    assert_eq!(cmds, vec![]);
    let s = s.unwrap();
    assert_eq!(phase(&s), "Succeeded");
    let done = main_status(&s).state.clone().unwrap().terminated.unwrap();
    assert_eq!(
        (done.exit_code, done.reason.as_deref()),
        (0, Some("Completed"))
    );
    assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));

    let mut m = running("OnFailure");
    assert_eq!(
        split(m.handle(exited(0, 2), at(3))).0,
        vec![start("main", 1)]
    );

    let mut m = running("Never");
    let (cmds, s) = split(m.handle(exited(0, 2), at(3)));
    assert_eq!(cmds, vec![]);
    assert_eq!(phase(&s.unwrap()), "Failed");
    assert_eq!(m.handle(PodEvent::Tick, at(1000)), vec![]);
}

#[test]
fn a_start_failure_is_a_terminated_container_with_the_reason() {
    let mut m = PodMachine::new("10.0.0.5");
    m.handle(
        PodEvent::Assigned(Box::new(pod_with("Never", &["main"]))),
        t0(),
    );
    let failed = PodEvent::StartFailed {
        container: "main".into(),
        attempt: 0,
        reason: "NoCommand".into(),
        message: "no command: the process runtime does not read images".into(),
    };
    let (cmds, s) = split(m.handle(failed, at(1)));
    assert_eq!(cmds, vec![]);
    let s = s.unwrap();
    assert_eq!(phase(&s), "Failed");
    let t = main_status(&s).state.clone().unwrap().terminated.unwrap();
    assert_eq!(t.exit_code, 128);
    assert_eq!(t.reason.as_deref(), Some("NoCommand"));
    assert_eq!(
        t.message.as_deref(),
        Some("no command: the process runtime does not read images")
    );
}

#[test]
fn deletion_stops_gracefully_then_deletes_the_object() {
    let mut m = running("Always");
    let (cmds, _) = split(m.handle(
        PodEvent::DeletionRequested {
            grace: Duration::from_secs(30),
        },
        at(10),
    ));
    assert_eq!(cmds, vec![kill(StopSignal::Term, 30)]);
    // Asking again sends nothing new.
    assert_eq!(
        split(m.handle(
            PodEvent::DeletionRequested {
                grace: Duration::from_secs(30)
            },
            at(11)
        ))
        .0,
        vec![]
    );
    let commands = m.handle(exited(0, 143), at(12));
    assert!(matches!(commands.first(), Some(Command::ReportStatus(_))));
    assert_eq!(
        commands.last(),
        Some(&Command::DeletePodObject {
            uid: "uid-1".into()
        })
    );
    let (rest, s) = split(commands);
    assert_eq!(rest.len(), 1, "no restart while deleting");
    assert_eq!(phase(&s.unwrap()), "Failed");
}

#[test]
fn sigkill_follows_when_the_grace_period_ends() {
    let mut m = running("Always");
    m.handle(
        PodEvent::DeletionRequested {
            grace: Duration::from_secs(30),
        },
        at(0),
    );
    assert_eq!(m.handle(PodEvent::Tick, at(29)), vec![]);
    assert_eq!(
        split(m.handle(PodEvent::Tick, at(30))).0,
        vec![kill(StopSignal::Kill, 0)]
    );
    assert_eq!(
        m.handle(PodEvent::GraceExpired, at(31)),
        vec![],
        "SIGKILL is sent once"
    );

    let mut m = running("Always");
    m.handle(
        PodEvent::DeletionRequested {
            grace: Duration::from_secs(30),
        },
        at(0),
    );
    assert_eq!(
        split(m.handle(PodEvent::GraceExpired, at(5))).0,
        vec![kill(StopSignal::Kill, 0)]
    );

    let mut m = running("Always");
    let (cmds, _) = split(m.handle(
        PodEvent::DeletionRequested {
            grace: Duration::ZERO,
        },
        at(0),
    ));
    assert_eq!(cmds, vec![kill(StopSignal::Kill, 0)]);
}

#[test]
fn a_container_starting_during_deletion_is_stopped_at_once() {
    let mut m = PodMachine::new("10.0.0.5");
    m.handle(
        PodEvent::Assigned(Box::new(pod_with("Always", &["main"]))),
        t0(),
    );
    m.handle(
        PodEvent::DeletionRequested {
            grace: Duration::from_secs(30),
        },
        at(1),
    );
    let (cmds, _) = split(m.handle(started(0), at(2)));
    assert_eq!(cmds, vec![kill(StopSignal::Term, 29)]);
}

#[test]
fn a_pod_already_deleting_when_assigned_starts_nothing() {
    let mut pod = pod_with("Always", &["main"]);
    pod.metadata.deletion_timestamp = Some(Time(t0()));
    let mut m = PodMachine::new("10.0.0.5");
    let (cmds, _) = split(m.handle(PodEvent::Assigned(Box::new(pod)), t0()));
    assert_eq!(
        cmds,
        vec![Command::DeletePodObject {
            uid: "uid-1".into()
        }]
    );
}

#[test]
fn a_vanished_object_kills_and_forgets_without_reporting() {
    let mut m = running("Always");
    assert_eq!(
        m.handle(PodEvent::ObjectGone, at(1)),
        vec![kill(StopSignal::Kill, 0)]
    );
    assert_eq!(m.handle(exited(0, 137), at(2)), vec![Command::Forget]);
    assert!(m.is_done());
    assert_eq!(m.handle(PodEvent::Tick, at(3)), vec![]);
}

#[test]
fn stale_events_are_ignored() {
    let mut m = running("Always");
    assert_eq!(m.handle(exited(7, 1), at(1)), vec![]);
    assert_eq!(m.handle(started(0), at(1)), vec![]);
    let other = PodEvent::Exited {
        container: "sidecar".into(),
        attempt: 0,
        exit_code: 1,
        signal: None,
        oom_killed: false,
    };
    assert_eq!(m.handle(other, at(1)), vec![]);
}

#[test]
fn a_failed_status_write_is_reported_again() {
    let mut m = running("Always");
    assert_eq!(m.handle(PodEvent::Tick, at(1)), vec![]);
    let cmds = m.handle(PodEvent::StatusWriteFailed, at(2));
    assert!(matches!(cmds.as_slice(), [Command::ReportStatus(_)]));
}

#[test]
fn go_durations() {
    assert_eq!(go_duration(Duration::from_secs(10)), "10s");
    assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
    assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
}

#[test]
fn an_absurd_grace_period_does_not_panic() {
    let mut m = running("Always");
    let (cmds, _) = split(m.handle(
        PodEvent::DeletionRequested {
            grace: Duration::from_secs(u64::MAX),
        },
        at(0),
    ));
    assert!(matches!(
        cmds.as_slice(),
        [Command::KillContainer {
            signal: StopSignal::Term,
            ..
        }]
    ));
    assert_eq!(m.handle(PodEvent::Tick, at(100)), vec![]);
}

#[test]
fn an_oom_kill_is_reported_as_oomkilled_and_the_pod_ip_as_given() {
    let mut m = running("Never");
    m.set_pod_ip("10.88.0.2");
    let oom = PodEvent::Exited {
        container: "main".into(),
        attempt: 0,
        exit_code: 137,
        signal: Some(9),
        oom_killed: true,
    };
    let (_, status) = split(m.handle(oom, at(5)));
    let status = status.unwrap();
    let terminated = main_status(&status)
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .unwrap();
    assert_eq!(terminated.reason.as_deref(), Some("OOMKilled"));
    assert_eq!(terminated.exit_code, 137);
    assert_eq!(status.pod_ip.as_deref(), Some("10.88.0.2"));
    assert_eq!(status.pod_ips.as_ref().unwrap()[0].ip, "10.88.0.2");
    assert_ne!(status.host_ip.as_deref(), Some("10.88.0.2"));
}

#[test]
fn a_missing_image_waits_pending_and_retries_the_same_run() {
    for policy in ["Always", "Never"] {
        let mut m = PodMachine::new("10.0.0.5");
        m.handle(
            PodEvent::Assigned(Box::new(pod_with(policy, &["main"]))),
            t0(),
        );
        let failed = |reason: &str| PodEvent::StartFailed {
            container: "main".into(),
            attempt: 0,
            reason: reason.into(),
            message: "Container image \"x\" is not present with pull policy of Never".into(),
        };
        let (cmds, s) = split(m.handle(failed("ErrImageNeverPull"), at(1)));
        assert_eq!(cmds, vec![]);
        let s = s.unwrap();
        assert_eq!(phase(&s), "Pending");
        let status = main_status(&s);
        assert_eq!(status.restart_count, 0);
        assert!(status
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .is_none());
        let waiting = status.state.clone().unwrap().waiting.unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("ErrImageNeverPull"));
        assert_eq!(
            waiting.message.as_deref(),
            Some("Container image \"x\" is not present with pull policy of Never")
        );
        // After the first back-off (10 s) the same run is tried again.
        assert_eq!(split(m.handle(PodEvent::Tick, at(5))).0, vec![]);
        assert_eq!(
            split(m.handle(PodEvent::Tick, at(12))).0,
            vec![start("main", 0)]
        );
        // A failed pull backs off as ImagePullBackOff, the next wait twice as long.
        let (_, s) = split(m.handle(failed("ErrImagePull"), at(13)));
        let waiting = main_status(&s.unwrap())
            .state
            .clone()
            .unwrap()
            .waiting
            .unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("ImagePullBackOff"));
        assert_eq!(split(m.handle(PodEvent::Tick, at(25))).0, vec![]);
        assert_eq!(
            split(m.handle(PodEvent::Tick, at(34))).0,
            vec![start("main", 0)]
        );
    }
}

#[test]
fn a_pod_waiting_for_its_image_is_deleted_at_once() {
    let mut m = PodMachine::new("10.0.0.5");
    m.handle(
        PodEvent::Assigned(Box::new(pod_with("Always", &["main"]))),
        t0(),
    );
    let failed = PodEvent::StartFailed {
        container: "main".into(),
        attempt: 0,
        reason: "ErrImageNeverPull".into(),
        message: "not present".into(),
    };
    m.handle(failed, at(1));
    let deletion = PodEvent::DeletionRequested {
        grace: Duration::from_secs(30),
    };
    let (cmds, _) = split(m.handle(deletion, at(2)));
    assert_eq!(
        cmds,
        vec![Command::DeletePodObject {
            uid: "uid-1".into()
        }]
    );
    // Its retry is off.
    assert_eq!(split(m.handle(PodEvent::Tick, at(60))).0, vec![]);
}
