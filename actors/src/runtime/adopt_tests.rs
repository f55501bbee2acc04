//! Tests of the process runtime taking over the containers an earlier runtime (an earlier agent) left running.

use std::time::Duration;

use super::*;

fn spec(dir: &Path, container: &str, attempt: u32, command: &[&str]) -> ContainerSpec {
    ContainerSpec {
        id: ContainerId {
            pod_uid: "uid-1".into(),
            container: container.into(),
            attempt,
        },
        pod_namespace: "demo".into(),
        pod_name: "web-1".into(),
        image: "busybox".into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        args: vec![],
        env: vec![("GREETING".into(), "hello".into())],
        working_dir: Some(dir.to_path_buf()),
        limits: crate::runtime::Limits::default(),
        mounts: vec![],
        pull_policy: Default::default(),
    }
}

/// The runtime of an agent that died without stopping anything: never dropped, so nothing of it kills its
/// containers (its reaper still reaps them, as init would once the agent is gone).
fn crash(runtime: ProcessRuntime) {
    std::mem::forget(runtime);
}

#[tokio::test]
async fn a_restarted_runtime_adopts_what_runs_and_reports_what_ended_unknown() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = ProcessRuntime::new(dir.path());
    let long = spec(dir.path(), "long", 3, &["sleep", "60"]);
    let short = spec(dir.path(), "short", 0, &["sleep", "0.2"]);
    let pid = first.start(&long).await.expect("start long");
    first.start(&short).await.expect("start short");
    // `short` exits under the first runtime: its record goes with it.
    first.wait(&short.id).await.expect("short exits");
    // A record of a container whose process has died while no agent watched, with a reused pid (our own).
    let reused = spec(dir.path(), "reused", 1, &["sleep", "60"]);
    adopt::save(
        dir.path(),
        &adopt::Record::of(&reused, std::process::id(), 1),
    )
    .expect("save");
    crash(first);

    let second = ProcessRuntime::new(dir.path());
    let found = second.recover().await;
    let ids: Vec<(ContainerId, ContainerState)> =
        found.into_iter().map(|c| (c.id, c.state)).collect();
    assert_eq!(
        ids,
        vec![
            (long.id.clone(), ContainerState::Running),
            (reused.id.clone(), ContainerState::Exited(Exit::UNKNOWN)),
        ]
    );
    assert_eq!(second.status(&long.id).await.and_then(|c| c.pid), Some(pid));
    // Recovering twice adopts nothing twice.
    assert_eq!(second.recover().await, vec![]);
    // It is not started again, and commands run in its context.
    assert!(matches!(
        second.start(&long).await,
        Err(RuntimeError::AlreadyExists(_))
    ));
    let out = second
        .exec(
            &long.id,
            &["sh".into(), "-c".into(), "echo $GREETING".into()],
            Duration::from_secs(10),
        )
        .await
        .expect("exec");
    assert_eq!((out.exit_code, out.output.trim()), (Some(0), "hello"));

    // Stopping it works as for a child of ours; how it ended is unknown to a runtime that did not start it.
    let exit = second
        .stop(&long.id, StopSignal::Term, Duration::from_secs(10))
        .await
        .expect("stop");
    assert!(exit.is_unknown());
    assert_eq!(second.wait(&long.id).await.expect("wait"), exit);
    second.remove(&long.id).await.expect("remove");
    second.remove(&reused.id).await.expect("remove");
    assert_eq!(adopt::load_all(dir.path()), vec![], "no record is left");

    // A third runtime finds nothing.
    assert_eq!(ProcessRuntime::new(dir.path()).recover().await, vec![]);
}

#[tokio::test]
async fn an_adopted_container_that_exits_by_itself_is_noticed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = ProcessRuntime::new(dir.path());
    let c = spec(dir.path(), "main", 0, &["sleep", "1"]);
    first.start(&c).await.expect("start");
    crash(first);
    let second = ProcessRuntime::new(dir.path());
    let found = second.recover().await;
    assert_eq!(found.len(), 1);
    let exit = tokio::time::timeout(Duration::from_secs(60), second.wait(&c.id))
        .await
        .expect("the exit is noticed")
        .expect("wait");
    assert_eq!(exit, Exit::UNKNOWN);
    assert_eq!(adopt::load_all(dir.path()), vec![]);
}
