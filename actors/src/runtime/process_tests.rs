//! Tests of the process runtime with real processes.

use std::time::Duration;

use super::*;
use crate::runtime::previous_log_path;

fn spec(dir: &Path, container: &str, command: &[&str]) -> ContainerSpec {
    ContainerSpec {
        id: ContainerId {
            pod_uid: "uid-1".into(),
            container: container.into(),
            attempt: 0,
        },
        pod_namespace: "demo".into(),
        pod_name: "web-1".into(),
        image: "busybox".into(),
        pull_policy: crate::runtime::PullPolicy::Never,
        command: command.iter().map(|s| s.to_string()).collect(),
        args: vec![],
        env: vec![],
        working_dir: Some(dir.to_path_buf()),
        limits: crate::runtime::Limits::default(),
        mounts: vec![],
    }
}

/// Whether `pid` is a live process (a zombie waiting to be reaped by someone else counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            state != Some('Z') && state != Some('X')
        }
    }
}

/// Waits (generously) for a file a shell script writes, and returns its trimmed content.
async fn read_when_written(path: &Path) -> String {
    for _ in 0..500 {
        if let Ok(s) = std::fs::read_to_string(path) {
            if s.ends_with('\n') {
                return s.trim().to_string();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} was never written", path.display());
}

async fn wait_gone(pid: u32) -> bool {
    for _ in 0..500 {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn sleep_runs_as_a_real_process_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(dir.path());
    let s = spec(dir.path(), "main", &["sleep", "30"]);
    let pid = rt.start(&s).await.unwrap();
    assert!(alive(pid), "pid {pid} is not running");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, b"sleep\x0030\x00");
    assert_eq!(
        rt.status(&s.id).await.map(|i| i.state),
        Some(ContainerState::Running)
    );
    assert!(matches!(
        rt.remove(&s.id).await,
        Err(RuntimeError::StillRunning(_))
    ));

    let exit = rt
        .stop(&s.id, StopSignal::Term, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(exit.signal, Some(15));
    assert_eq!(exit.exit_code(), 143);
    assert!(!alive(pid));
    assert_eq!(
        rt.status(&s.id).await.map(|i| i.state),
        Some(ContainerState::Exited(exit))
    );
    // Stopping again answers with the same exit.
    assert_eq!(
        rt.stop(&s.id, StopSignal::Kill, Duration::ZERO)
            .await
            .unwrap(),
        exit
    );
    rt.remove(&s.id).await.unwrap();
    assert!(rt.list().await.is_empty());
}

#[tokio::test]
async fn exit_codes_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(dir.path());
    let s = spec(dir.path(), "main", &["sh", "-c", "exit 3"]);
    rt.start(&s).await.unwrap();
    let exit = rt.wait(&s.id).await.unwrap();
    assert_eq!(
        exit,
        Exit {
            code: Some(3),
            signal: None,
            oom_killed: false,
        }
    );
    let ok = spec(dir.path(), "ok", &["true"]);
    rt.start(&ok).await.unwrap();
    assert_eq!(rt.wait(&ok.id).await.unwrap().exit_code(), 0);
}

#[tokio::test]
async fn missing_commands_fail_with_a_clear_reason() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(dir.path());
    let e = rt.start(&spec(dir.path(), "a", &[])).await.unwrap_err();
    assert!(matches!(e, RuntimeError::NoCommand));
    assert!(e.to_string().contains("does not read images"), "{e}");

    let e = rt
        .start(&spec(dir.path(), "b", &["no-such-program-navarch"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, RuntimeError::CommandNotFound { command, .. } if command == "no-such-program-navarch"),
        "{e:?}"
    );
    assert_eq!(e.reason(), "CommandNotFound");

    let e = rt
        .start(&spec(dir.path(), "c", &["./missing.sh"]))
        .await
        .unwrap_err();
    assert!(matches!(e, RuntimeError::CommandNotFound { .. }), "{e:?}");

    let mut s = spec(dir.path(), "d", &["true"]);
    s.working_dir = Some(dir.path().join("nope"));
    let e = rt.start(&s).await.unwrap_err();
    assert!(matches!(e, RuntimeError::WorkingDir(_)), "{e:?}");
    assert!(rt.list().await.is_empty());
}

#[tokio::test]
async fn a_started_id_cannot_start_twice() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(dir.path());
    let s = spec(dir.path(), "main", &["sleep", "30"]);
    rt.start(&s).await.unwrap();
    assert!(matches!(
        rt.start(&s).await,
        Err(RuntimeError::AlreadyExists(_))
    ));
    rt.stop_all(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn stopping_reaches_the_children_of_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(dir.path());
    let s = spec(
        dir.path(),
        "main",
        &["sh", "-c", "sleep 30 & echo $! > child.pid; wait"],
    );
    let pid = rt.start(&s).await.unwrap();
    let child: u32 = read_when_written(&dir.path().join("child.pid"))
        .await
        .parse()
        .unwrap();
    assert!(alive(child));
    rt.stop(&s.id, StopSignal::Term, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(!alive(pid));
    assert!(
        wait_gone(child).await,
        "child {child} survived its container"
    );
}

#[tokio::test]
async fn what_the_main_process_leaves_behind_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(dir.path());
    let s = spec(
        dir.path(),
        "main",
        &["sh", "-c", "sleep 30 & echo $! > child.pid"],
    );
    rt.start(&s).await.unwrap();
    let exit = rt.wait(&s.id).await.unwrap();
    assert_eq!(exit.code, Some(0));
    let child: u32 = read_when_written(&dir.path().join("child.pid"))
        .await
        .parse()
        .unwrap();
    assert!(
        wait_gone(child).await,
        "child {child} outlived its container"
    );
}

#[tokio::test]
async fn sigterm_ignored_means_sigkill_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(dir.path());
    let s = spec(
        dir.path(),
        "main",
        &["sh", "-c", "trap '' TERM; echo ready > ready; sleep 30"],
    );
    let pid = rt.start(&s).await.unwrap();
    read_when_written(&dir.path().join("ready")).await;
    let exit = rt
        .stop(&s.id, StopSignal::Term, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(exit.signal, Some(9));
    assert!(!alive(pid));
}

#[tokio::test]
async fn env_args_and_working_dir_reach_the_process_and_output_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(dir.path());
    let mut s = spec(
        dir.path(),
        "main",
        &[
            "sh",
            "-c",
            "echo \"$GREETING $HOSTNAME $1\"; pwd; echo oops >&2",
        ],
    );
    s.args = vec!["sh".into(), "arg-one".into()];
    s.env = vec![("GREETING".into(), "hello".into())];
    rt.start(&s).await.unwrap();
    assert_eq!(rt.wait(&s.id).await.unwrap().code, Some(0));
    let log = log_path(dir.path(), "demo", "web-1", "uid-1", "main");
    let text = crate::runtime::read_log_text(&log).unwrap();
    let cwd = dir.path().canonicalize().unwrap();
    // stdout and stderr travel apart (as in Kubernetes): each keeps its order, not their interleaving.
    let stdout: Vec<&str> = text.lines().filter(|l| *l != "oops").collect();
    assert_eq!(
        stdout,
        vec!["hello web-1 arg-one".to_string(), cwd.display().to_string()]
    );
    assert_eq!(text.lines().filter(|l| *l == "oops").count(), 1, "{text}");
    // On disk each line carries its time and stream (the CRI format).
    let raw = std::fs::read_to_string(&log).unwrap();
    assert!(raw.lines().any(|l| l.ends_with(" stderr F oops")), "{raw}");

    // A restart starts a fresh file and keeps the previous instance's; only that one.
    let previous = previous_log_path(dir.path(), "demo", "web-1", "uid-1", "main");
    for attempt in 1..=2 {
        let mut again = s.clone();
        again.id.attempt = attempt;
        again.env.push(("GREETING".into(), format!("run{attempt}")));
        rt.start(&again).await.unwrap();
        rt.wait(&again.id).await.unwrap();
    }
    let first_out = |text: String| text.lines().find(|l| *l != "oops").map(str::to_string);
    let text = crate::runtime::read_log_text(&log).unwrap();
    assert_eq!(first_out(text).as_deref(), Some("run2 web-1 arg-one"));
    let text = crate::runtime::read_log_text(&previous).unwrap();
    assert_eq!(first_out(text).as_deref(), Some("run1 web-1 arg-one"));
    let files = std::fs::read_dir(log.parent().unwrap()).unwrap().count();
    assert_eq!(files, 2);
}

#[tokio::test]
async fn the_agent_environment_does_not_leak_into_containers() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(dir.path());
    let s = spec(dir.path(), "main", &["env"]);
    rt.start(&s).await.unwrap();
    rt.wait(&s.id).await.unwrap();
    let text =
        crate::runtime::read_log_text(&log_path(dir.path(), "demo", "web-1", "uid-1", "main"))
            .unwrap();
    let mut names: Vec<&str> = text.lines().filter_map(|l| l.split('=').next()).collect();
    names.sort();
    // `sh`-less `env` prints exactly what the container got (some libcs add nothing).
    assert_eq!(names, vec!["HOSTNAME", "PATH"]);
}

#[tokio::test]
async fn stop_all_leaves_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(dir.path());
    let mut pids = Vec::new();
    for name in ["a", "b", "c"] {
        pids.push(
            rt.start(&spec(dir.path(), name, &["sleep", "30"]))
                .await
                .unwrap(),
        );
    }
    assert!(pids.iter().all(|p| alive(*p)));
    rt.stop_all(Duration::from_secs(10)).await;
    assert!(pids.iter().all(|p| !alive(*p)));
    assert!(rt
        .list()
        .await
        .iter()
        .all(|c| matches!(c.state, ContainerState::Exited(_))));
}

#[tokio::test]
async fn dropping_the_runtime_kills_what_runs() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(dir.path());
    let pid = rt
        .start(&spec(dir.path(), "main", &["sleep", "30"]))
        .await
        .unwrap();
    drop(rt);
    assert!(wait_gone(pid).await);
}
