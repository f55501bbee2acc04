//! Tests of init containers and of containers whose configuration cannot be resolved yet: exact commands.

use super::tests::split;
use super::*;
use k8s_openapi::api::core::v1::ContainerStatus;
use k8s_openapi::chrono::Duration as ChronoDuration;
use navarch_bus::api::meta::parse_time;
use serde_json::json;

fn at(secs: i64) -> DateTime<Utc> {
    parse_time("2026-11-27T12:00:00Z").unwrap() + ChronoDuration::seconds(secs)
}

fn pod(policy: &str, inits: &[&str], apps: &[&str]) -> Pod {
    let list = |names: &[&str]| -> Vec<serde_json::Value> {
        names
            .iter()
            .map(|n| json!({"name": n, "image": "busybox", "command": ["true"]}))
            .collect()
    };
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "demo", "uid": "uid-1"},
        "spec": {"nodeName": "n1", "restartPolicy": policy,
                 "initContainers": list(inits), "containers": list(apps)}
    }))
    .unwrap()
}

fn start(container: &str, attempt: u32) -> Command {
    Command::StartContainer {
        container: container.into(),
        attempt,
    }
}

fn started(container: &str, attempt: u32) -> PodEvent {
    PodEvent::Started {
        container: container.into(),
        attempt,
        container_id: format!("navarch-process://uid-1_{container}_{attempt}"),
    }
}

fn exited(container: &str, attempt: u32, exit_code: i32) -> PodEvent {
    PodEvent::Exited {
        container: container.into(),
        attempt,
        exit_code,
        signal: None,
        oom_killed: false,
    }
}

fn waiting_reason(c: &ContainerStatus) -> Option<&str> {
    c.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
}

fn condition(s: &PodStatus, type_: &str) -> (String, Option<String>, Option<String>) {
    let c = s
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .unwrap();
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[test]
fn init_containers_run_one_by_one_before_the_app_containers() {
    let mut m = PodMachine::new("10.0.0.5");
    let (cmds, status) = split(m.handle(
        PodEvent::Assigned(Box::new(pod("Always", &["i1", "i2"], &["a", "b"]))),
        at(0),
    ));
    assert_eq!(cmds, vec![start("i1", 0)]);
    let s = status.unwrap();
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    let inits = s.init_container_statuses.clone().unwrap();
    assert_eq!(
        inits.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["i1", "i2"]
    );
    assert_eq!(
        inits.iter().map(waiting_reason).collect::<Vec<_>>(),
        [Some("PodInitializing"), Some("PodInitializing")]
    );
    let apps = s.container_statuses.clone().unwrap();
    assert_eq!(
        apps.iter().map(waiting_reason).collect::<Vec<_>>(),
        [Some("PodInitializing"), Some("PodInitializing")]
    );
    assert_eq!(
        condition(&s, "Initialized"),
        (
            "False".into(),
            Some("ContainersNotInitialized".into()),
            Some("containers with incomplete status: [i1 i2]".into())
        )
    );

    m.handle(started("i1", 0), at(1));
    let (cmds, status) = split(m.handle(exited("i1", 0, 0), at(2)));
    assert_eq!(cmds, vec![start("i2", 0)]);
    let s = status.unwrap();
    assert!(s.init_container_statuses.as_ref().unwrap()[0].ready);
    assert_eq!(
        condition(&s, "Initialized").2.as_deref(),
        Some("containers with incomplete status: [i2]")
    );

    m.handle(started("i2", 0), at(3));
    let (cmds, status) = split(m.handle(exited("i2", 0, 0), at(4)));
    assert_eq!(cmds, vec![start("a", 0), start("b", 0)]);
    let s = status.unwrap();
    assert_eq!(condition(&s, "Initialized"), ("True".into(), None, None));
    assert_eq!(s.phase.as_deref(), Some("Pending"));

    m.handle(started("a", 0), at(5));
    let (_, status) = split(m.handle(started("b", 0), at(5)));
    let s = status.unwrap();
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(condition(&s, "Ready").0, "True");
}

#[test]
fn a_failing_init_container_backs_off_and_blocks_the_app_containers() {
    let mut m = PodMachine::new("10.0.0.5");
    m.handle(
        PodEvent::Assigned(Box::new(pod("Always", &["i1"], &["a"]))),
        at(0),
    );
    m.handle(started("i1", 0), at(1));
    // Init containers restart on failure even under Always, and never after success.
    let (cmds, _) = split(m.handle(exited("i1", 0, 1), at(2)));
    assert_eq!(cmds, vec![start("i1", 1)]);
    m.handle(started("i1", 1), at(3));
    let (cmds, status) = split(m.handle(exited("i1", 1, 1), at(4)));
    assert_eq!(cmds, vec![]);
    let s = status.unwrap();
    let init = &s.init_container_statuses.as_ref().unwrap()[0];
    assert_eq!(waiting_reason(init), Some("CrashLoopBackOff"));
    assert_eq!(init.restart_count, 1);
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    assert_eq!(split(m.handle(PodEvent::Tick, at(13))).0, vec![]);
    assert_eq!(
        split(m.handle(PodEvent::Tick, at(14))).0,
        vec![start("i1", 2)]
    );
}

#[test]
fn a_failed_init_container_fails_the_pod_under_never() {
    let mut m = PodMachine::new("10.0.0.5");
    m.handle(
        PodEvent::Assigned(Box::new(pod("Never", &["i1", "i2"], &["a"]))),
        at(0),
    );
    m.handle(started("i1", 0), at(1));
    let (cmds, status) = split(m.handle(exited("i1", 0, 3), at(2)));
    assert_eq!(cmds, vec![]);
    let s = status.unwrap();
    assert_eq!(s.phase.as_deref(), Some("Failed"));
    let init = &s.init_container_statuses.as_ref().unwrap()[0];
    let end = init.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((end.exit_code, end.reason.as_deref()), (3, Some("Error")));
    // Nothing more runs: not the next init container, not the app.
    assert_eq!(split(m.handle(PodEvent::Tick, at(30))).0, vec![]);
}

#[test]
fn a_config_error_waits_and_retries_the_same_attempt() {
    let mut m = PodMachine::new("10.0.0.5");
    m.handle(
        PodEvent::Assigned(Box::new(pod("Always", &[], &["a"]))),
        at(0),
    );
    let failed = PodEvent::ConfigFailed {
        container: "a".into(),
        attempt: 0,
        reason: "CreateContainerConfigError".into(),
        message: "configmap \"x\" not found".into(),
    };
    let (cmds, status) = split(m.handle(failed, at(1)));
    assert_eq!(cmds, vec![]);
    let s = status.unwrap();
    let c = &s.container_statuses.as_ref().unwrap()[0];
    let waiting = c.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(
        (waiting.reason.as_deref(), waiting.message.as_deref()),
        (
            Some("CreateContainerConfigError"),
            Some("configmap \"x\" not found")
        )
    );
    assert_eq!(c.restart_count, 0);
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    assert_eq!(split(m.handle(PodEvent::Tick, at(2))).0, vec![]);
    // CONFIG_RETRY later, the same attempt again: it never ran, so it is no restart.
    assert_eq!(
        split(m.handle(PodEvent::Tick, at(3))).0,
        vec![start("a", 0)]
    );
    let (_, status) = split(m.handle(started("a", 0), at(4)));
    assert_eq!(status.unwrap().phase.as_deref(), Some("Running"));
}

#[test]
fn deleting_a_pod_during_init_stops_the_init_container_and_starts_nothing_else() {
    let mut m = PodMachine::new("10.0.0.5");
    m.handle(
        PodEvent::Assigned(Box::new(pod("Always", &["i1"], &["a"]))),
        at(0),
    );
    m.handle(started("i1", 0), at(1));
    let (cmds, _) = split(m.handle(
        PodEvent::DeletionRequested {
            grace: Duration::from_secs(5),
        },
        at(2),
    ));
    assert_eq!(
        cmds,
        vec![Command::KillContainer {
            container: "i1".into(),
            attempt: 0,
            signal: StopSignal::Term,
            grace: Duration::from_secs(5),
            pre_stop: None,
            reason: None,
        }]
    );
    let (cmds, _) = split(m.handle(exited("i1", 0, 0), at(3)));
    assert_eq!(
        cmds,
        vec![Command::DeletePodObject {
            uid: "uid-1".into()
        }]
    );
}
