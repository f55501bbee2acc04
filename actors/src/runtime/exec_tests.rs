//! Tests of `exec` in the process runtime with real processes.

use std::path::Path;
use std::time::Duration;

use crate::runtime::{
    ContainerId, ContainerSpec, ProcessRuntime, Runtime, RuntimeError, StopSignal,
    EXEC_OUTPUT_LIMIT,
};

fn spec(dir: &Path, container: &str) -> ContainerSpec {
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
        command: vec!["sleep".into(), "30".into()],
        args: vec![],
        env: vec![("GREETING".into(), "hello".into())],
        working_dir: Some(dir.to_path_buf()),
        limits: crate::runtime::Limits::default(),
        mounts: vec![],
    }
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        state != Some('Z') && state != Some('X')
    })
}

#[tokio::test]
async fn exec_runs_in_the_containers_environment_and_directory() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(dir.path());
    let s = spec(dir.path(), "main");
    rt.start(&s).await.unwrap();
    let second = Duration::from_secs(5);
    let out = rt
        .exec(
            &s.id,
            &argv(&["sh", "-c", "echo $GREETING $HOSTNAME; pwd"]),
            second,
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(
        out.output,
        format!("hello web-1\n{}\n", dir.path().display())
    );
    let out = rt
        .exec(
            &s.id,
            &argv(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
            second,
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.output, "out\nerr\n");
    let big = rt
        .exec(
            &s.id,
            &argv(&["sh", "-c", "head -c 50000 /dev/zero | tr '\\0' a"]),
            second,
        )
        .await
        .unwrap();
    assert_eq!(big.exit_code, Some(0));
    assert_eq!(big.output.len(), EXEC_OUTPUT_LIMIT);
    assert!(matches!(
        rt.exec(&s.id, &argv(&["no-such-program-x"]), second).await,
        Err(RuntimeError::CommandNotFound { .. })
    ));
    assert!(matches!(
        rt.exec(&s.id, &[], second).await,
        Err(RuntimeError::NoCommand)
    ));
    rt.stop(&s.id, StopSignal::Kill, Duration::ZERO)
        .await
        .unwrap();
    assert!(matches!(
        rt.exec(&s.id, &argv(&["true"]), second).await,
        Err(RuntimeError::NotRunning(_))
    ));
    let mut unknown = s.id.clone();
    unknown.container = "other".into();
    assert!(matches!(
        rt.exec(&unknown, &argv(&["true"]), second).await,
        Err(RuntimeError::NotFound(_))
    ));
}

#[tokio::test]
async fn exec_past_its_timeout_is_killed_with_everything_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(dir.path());
    let s = spec(dir.path(), "main");
    let container_pid = rt.start(&s).await.unwrap();
    let pids = dir.path().join("pids");
    let script = format!(
        "sleep 30 & echo $! > {0}; echo $$ >> {0}; wait",
        pids.display()
    );
    let out = rt
        .exec(
            &s.id,
            &argv(&["sh", "-c", &script]),
            Duration::from_millis(500),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, None);
    let pids: Vec<u32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    for pid in pids {
        // SIGKILLed before exec returned; give the kernel a moment to reap.
        let mut gone = false;
        for _ in 0..250 {
            if !alive(pid) {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "exec process {pid} still runs");
    }
    assert!(alive(container_pid), "the container itself keeps running");
    rt.stop_all(Duration::from_secs(5)).await;
}
