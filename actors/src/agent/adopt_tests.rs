//! Tests of adoption: exact commands and statuses of a pod taken over by a restarted agent.

use super::super::{Command, PodEvent, PodMachine};
use super::*;
use crate::agent::lifecycle::tests::split;
use k8s_openapi::api::core::v1::PodStatus;
use navarch_bus::api::meta::parse_time;
use serde_json::json;
use std::time::Duration;

use crate::runtime::StopSignal;

fn t0() -> DateTime<Utc> {
    parse_time("2026-11-27T12:00:00Z").unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + k8s_openapi::chrono::Duration::seconds(secs)
}

const CID: &str = "navarch-process://uid-1_main_2";

/// A pod with containers `main` and `side`, and `status` as it last reported it.
fn pod(policy: &str, status: serde_json::Value) -> Pod {
    let c = |n: &str| json!({"name": n, "image": "busybox", "command": ["sleep", "3600"]});
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "demo", "uid": "uid-1"},
        "spec": {"nodeName": "n1", "restartPolicy": policy, "containers": [c("main"), c("side")]},
        "status": status,
    }))
    .unwrap()
}

fn running_main() -> serde_json::Value {
    json!({"name": "main", "image": "busybox", "restartCount": 2, "containerID": CID,
           "state": {"running": {"startedAt": "2026-11-27T11:00:00Z"}},
           "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                        "finishedAt": "2026-11-27T10:59:59Z"}}})
}

fn adopted_main() -> Adopted {
    Adopted {
        container: "main".into(),
        attempt: 2,
        container_id: CID.into(),
    }
}

fn id(container: &str, attempt: u32) -> ContainerId {
    ContainerId {
        pod_uid: "uid-1".into(),
        container: container.into(),
        attempt,
    }
}

fn start(container: &str, attempt: u32) -> Command {
    Command::StartContainer {
        container: container.into(),
        attempt,
    }
}

fn adopt(pod: Pod, containers: Vec<Adopted>) -> (PodMachine, Vec<Command>, Option<PodStatus>) {
    let mut m = PodMachine::new("10.0.0.1");
    let commands = m.handle(
        PodEvent::Adopted {
            pod: Box::new(pod),
            containers,
        },
        t0(),
    );
    let (rest, status) = split(commands);
    (m, rest, status)
}

#[test]
fn the_latest_run_of_each_container_of_the_spec_is_chosen() {
    let p = pod("Always", json!({}));
    let other_pod = ContainerId {
        pod_uid: "uid-2".into(),
        ..id("main", 0)
    };
    let found = vec![
        id("main", 1),
        id("main", 2),
        id("gone", 0),
        id("side", 0),
        other_pod.clone(),
    ];
    let (keep, drop) = choose(&p, &found);
    assert_eq!(keep, vec![id("main", 2), id("side", 0)]);
    assert_eq!(drop, vec![id("main", 1), id("gone", 0), other_pod]);
}

#[test]
fn a_running_container_is_adopted_and_a_missing_one_continues_its_count() {
    let side = json!({"name": "side", "image": "busybox", "restartCount": 4,
                      "state": {"running": {"startedAt": "2026-11-27T11:30:00Z"}}});
    let p = pod(
        "Always",
        json!({"phase": "Running", "startTime": "2026-11-27T10:00:00Z",
               "containerStatuses": [running_main(), side]}),
    );
    let (m, commands, status) = adopt(p, vec![adopted_main()]);
    // `main` runs on as it was; `side` ran (run 4) but is gone: run 5 starts.
    assert_eq!(commands, vec![start("side", 5)]);
    let status = status.expect("a status is reported");
    assert_eq!(
        status.start_time.map(|t| t.0),
        Some(parse_time("2026-11-27T10:00:00Z").unwrap())
    );
    let main = &status.container_statuses.as_ref().unwrap()[0];
    assert_eq!(main.restart_count, 2);
    assert_eq!(main.container_id.as_deref(), Some(CID));
    assert_eq!(
        main.state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.clone())
            .map(|t| t.0),
        Some(parse_time("2026-11-27T11:00:00Z").unwrap())
    );
    assert_eq!(
        main.last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code),
        Some(1)
    );
    assert!(main.ready);
    assert_eq!(m.containers()[1].attempt, 5);
}

#[test]
fn a_pod_without_a_report_starts_what_was_not_found_from_zero() {
    let (_, commands, status) = adopt(
        pod("Always", json!({})),
        vec![Adopted {
            container_id: "navarch-process://uid-1_main_0".into(),
            attempt: 0,
            ..adopted_main()
        }],
    );
    assert_eq!(commands, vec![start("side", 0)]);
    let status = status.expect("status");
    assert_eq!(status.start_time.map(|t| t.0), Some(t0()));
    let main = &status.container_statuses.as_ref().unwrap()[0];
    assert_eq!(main.restart_count, 0);
    assert_eq!(
        main.state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.clone())
            .map(|t| t.0),
        Some(t0()),
        "no report of this run: it counts from now"
    );
}

#[test]
fn a_container_that_ended_for_good_stays_ended() {
    let side = json!({"name": "side", "image": "busybox", "restartCount": 0,
                      "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                               "finishedAt": "2026-11-27T11:30:00Z"}}});
    let p = pod(
        "Never",
        json!({"phase": "Running", "containerStatuses": [running_main(), side]}),
    );
    let (_, commands, status) = adopt(p, vec![adopted_main()]);
    assert_eq!(commands, vec![]);
    let status = status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let side = &status.container_statuses.as_ref().unwrap()[1];
    assert_eq!(
        side.state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.reason.clone()),
        Some("Completed".into())
    );
}

#[test]
fn a_pod_being_deleted_is_stopped_and_starts_nothing() {
    let mut p = pod("Always", json!({"containerStatuses": [running_main()]}));
    p.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t0()));
    p.metadata.deletion_grace_period_seconds = Some(20);
    let (_, commands, _) = adopt(p, vec![adopted_main()]);
    assert_eq!(
        commands,
        vec![Command::KillContainer {
            container: "main".into(),
            attempt: 2,
            signal: StopSignal::Term,
            grace: Duration::from_secs(20),
            pre_stop: None,
            reason: None,
        }]
    );
}

#[test]
fn a_lost_container_ends_unknown_and_restarts_per_policy() {
    let status = json!({"containerStatuses": [running_main()]});
    let lost = PodEvent::Lost {
        container: "main".into(),
        attempt: 2,
    };

    let (mut m, _, _) = adopt(pod("Always", status.clone()), vec![adopted_main()]);
    let (commands, status_after) = split(m.handle(lost.clone(), at(5)));
    assert_eq!(commands, vec![start("main", 3)]);
    let main = &status_after.expect("status").container_statuses.unwrap()[0];
    let last = main
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("last state");
    assert_eq!(
        (last.exit_code, last.reason.as_deref()),
        (137, Some(LOST_REASON))
    );
    assert_eq!(main.restart_count, 3);

    let (mut m, _, _) = adopt(pod("Never", status), vec![adopted_main()]);
    let (commands, _) = split(m.handle(lost.clone(), at(5)));
    assert_eq!(commands, vec![], "Never: it stays ended");
    // A second report of the same run changes nothing.
    assert_eq!(m.handle(lost, at(6)), vec![]);
}
