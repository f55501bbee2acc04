//! Tests of the Docker runtime against the real engine, with the busybox image `deploy/build-busybox-image.sh`
//! builds. Without a Docker socket they say so and pass.

use std::sync::Once;
use std::time::Duration;

use super::*;
use crate::runtime::{log_path, Limits};

const SOCKET: &str = "/var/run/docker.sock";

/// Removes every container of the test's runtime, even when the test failed.
struct Cleanup {
    data_dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label={DATA_DIR_LABEL}={}", self.data_dir.display());
        let listed = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output();
        if let Ok(out) = listed {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(String::from)
                .collect();
            if !ids.is_empty() {
                let _ = std::process::Command::new("docker")
                    .args(["rm", "-f"])
                    .args(&ids)
                    .output();
            }
        }
    }
}

struct Setup {
    runtime: DockerRuntime,
    _cleanup: Cleanup,
    dir: tempfile::TempDir,
}

/// A runtime on the local engine with the busybox image built; None (with the reason printed) without Docker.
async fn setup() -> Option<Setup> {
    if !Path::new(SOCKET).exists() {
        eprintln!("skipped: no Docker socket at {SOCKET}");
        return None;
    }
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/build-busybox-image.sh");
        let status = std::process::Command::new(script)
            .status()
            .expect("run build-busybox-image.sh");
        assert!(status.success(), "build-busybox-image.sh failed");
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = DockerRuntime::connect(dir.path())
        .await
        .expect("connect to Docker");
    Some(Setup {
        runtime,
        _cleanup: Cleanup {
            data_dir: dir.path().to_path_buf(),
        },
        dir,
    })
}

fn spec(pod_uid: &str, container: &str, command: &[&str]) -> ContainerSpec {
    ContainerSpec {
        id: ContainerId {
            pod_uid: pod_uid.into(),
            container: container.into(),
            attempt: 0,
        },
        pod_namespace: "demo".into(),
        pod_name: "web-1".into(),
        image: DEFAULT_SANDBOX_IMAGE.into(),
        pull_policy: PullPolicy::Never,
        command: command.iter().map(|s| s.to_string()).collect(),
        args: vec![],
        env: vec![("GREETING".into(), "hello".into())],
        working_dir: None,
        limits: Limits::default(),
        mounts: vec![],
    }
}

/// Whether a Docker container of this name exists.
async fn exists(runtime: &DockerRuntime, name: &str) -> bool {
    runtime.docker().inspect_container(name, None).await.is_ok()
}

fn log_of(dir: &Path, s: &ContainerSpec) -> String {
    let path = log_path(
        dir,
        &s.pod_namespace,
        &s.pod_name,
        &s.id.pod_uid,
        &s.id.container,
    );
    crate::runtime::read_log_text(&path).unwrap_or_default()
}

#[test]
fn pulls_follow_the_policy() {
    assert_eq!(image_action(PullPolicy::Never, true), ImageAction::UseLocal);
    assert_eq!(
        image_action(PullPolicy::Never, false),
        ImageAction::NeverPull
    );
    assert_eq!(
        image_action(PullPolicy::IfNotPresent, true),
        ImageAction::UseLocal
    );
    assert_eq!(
        image_action(PullPolicy::IfNotPresent, false),
        ImageAction::Pull { fall_back: false }
    );
    assert_eq!(
        image_action(PullPolicy::Always, true),
        ImageAction::Pull { fall_back: true }
    );
}

#[test]
fn command_and_args_replace_entrypoint_and_cmd() {
    let mut s = spec("u", "main", &["sh", "-c"]);
    s.args = vec!["echo $GREETING".into()];
    s.working_dir = Some("/tmp".into());
    s.limits = Limits {
        memory_bytes: Some(64 << 20),
        cpu_millis: Some(500),
    };
    let c = container_config(&s, "sandbox-id", Path::new("/data"));
    assert_eq!(c.entrypoint, Some(vec!["sh".to_string(), "-c".to_string()]));
    assert_eq!(c.cmd, Some(vec!["echo $GREETING".to_string()]));
    assert_eq!(c.env, Some(vec!["GREETING=hello".to_string()]));
    assert_eq!(c.working_dir.as_deref(), Some("/tmp"));
    let host = c.host_config.unwrap_or_default();
    assert_eq!(host.network_mode.as_deref(), Some("container:sandbox-id"));
    assert_eq!(host.memory, Some(64 << 20));
    assert_eq!(host.memory_swap, Some(64 << 20));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    let labels = c.labels.unwrap_or_default();
    assert_eq!(labels.get(POD_UID_LABEL).map(String::as_str), Some("u"));
    assert_eq!(labels.get(MANAGED_LABEL).map(String::as_str), Some("true"));

    // Neither set: the image's own ENTRYPOINT and CMD run.
    let plain = container_config(&spec("u", "main", &[]), "s", Path::new("/data"));
    assert_eq!((plain.entrypoint, plain.cmd), (None, None));
}

#[tokio::test]
async fn runs_a_container_with_its_log_and_exit_code() {
    let Some(t) = setup().await else { return };
    let uid = "dt-run";
    let network = t.runtime.prepare_pod(uid).await.expect("sandbox");
    assert!(network.ip.is_some(), "the sandbox has an IP on the bridge");
    assert_eq!(t.runtime.prepare_pod(uid).await.expect("again"), network);
    let s = spec(
        uid,
        "main",
        &["sh", "-c", "echo $GREETING; echo oops >&2; exit 3"],
    );
    t.runtime.start(&s).await.expect("start");
    assert!(matches!(
        t.runtime.start(&s).await,
        Err(RuntimeError::AlreadyExists(_))
    ));
    let exit = t.runtime.wait(&s.id).await.expect("wait");
    assert_eq!(exit.exit_code(), 3);
    assert!(!exit.oom_killed);
    let log = log_of(t.dir.path(), &s);
    assert!(
        log.contains("hello") && log.contains("oops"),
        "log: {log:?}"
    );
    assert_eq!(
        t.runtime.status(&s.id).await.map(|i| i.state),
        Some(ContainerState::Exited(exit))
    );
    t.runtime.remove(&s.id).await.expect("remove");
    assert!(!exists(&t.runtime, &container_name(&s.id)).await);
    t.runtime.release_pod(uid).await;
    assert!(!exists(&t.runtime, &sandbox_name(uid)).await);
}

#[tokio::test]
async fn a_missing_command_in_the_image_fails_the_start() {
    let Some(t) = setup().await else { return };
    let uid = "dt-nocmd";
    t.runtime.prepare_pod(uid).await.expect("sandbox");
    let s = spec(uid, "main", &["/no/such/program"]);
    let e = t.runtime.start(&s).await.expect_err("no such program");
    assert_eq!(e.reason(), "RunContainerError", "{e}");
    assert!(t.runtime.status(&s.id).await.is_none());
    assert!(!exists(&t.runtime, &container_name(&s.id)).await);
    t.runtime.release_all_pods().await;
}

#[tokio::test]
async fn stop_gives_the_grace_period_then_kills() {
    let Some(t) = setup().await else { return };
    let uid = "dt-stop";
    t.runtime.prepare_pod(uid).await.expect("sandbox");
    let polite = spec(
        uid,
        "polite",
        &[
            "sh",
            "-c",
            "trap 'echo bye; exit 0' TERM; while true; do sleep 1; done",
        ],
    );
    // PID 1 of a container ignores SIGTERM unless it handles it: only SIGKILL stops `sleep`.
    let stubborn = spec(uid, "stubborn", &["sleep", "1000"]);
    t.runtime.start(&polite).await.expect("start polite");
    t.runtime.start(&stubborn).await.expect("start stubborn");
    let grace = Duration::from_secs(30);
    let exit = t
        .runtime
        .stop(&polite.id, StopSignal::Term, grace)
        .await
        .expect("stop polite");
    assert_eq!(exit.exit_code(), 0);
    assert!(log_of(t.dir.path(), &polite).contains("bye"));
    let exit = t
        .runtime
        .stop(&stubborn.id, StopSignal::Term, Duration::from_secs(1))
        .await
        .expect("stop stubborn");
    assert_eq!(exit.exit_code(), 137);
    // Stopping again returns the same exit.
    let again = t
        .runtime
        .stop(&stubborn.id, StopSignal::Kill, grace)
        .await
        .expect("again");
    assert_eq!(again, exit);
    t.runtime.release_all_pods().await;
    assert!(!exists(&t.runtime, &container_name(&polite.id)).await);
}

#[tokio::test]
async fn exec_runs_in_the_container_and_is_bounded() {
    let Some(t) = setup().await else { return };
    let uid = "dt-exec";
    t.runtime.prepare_pod(uid).await.expect("sandbox");
    let s = spec(uid, "main", &["sleep", "1000"]);
    t.runtime.start(&s).await.expect("start");
    let command: Vec<String> = ["sh", "-c", "echo $GREETING; echo err >&2; exit 4"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = t
        .runtime
        .exec(&s.id, &command, Duration::from_secs(60))
        .await
        .expect("exec");
    assert_eq!(out.exit_code, Some(4));
    assert!(out.output.contains("err"), "{out:?}");
    let slow = vec!["sleep".to_string(), "30".to_string()];
    let out = t
        .runtime
        .exec(&s.id, &slow, Duration::from_secs(1))
        .await
        .expect("exec");
    assert_eq!(out.exit_code, None);
    t.runtime.stop_all(Duration::from_secs(1)).await;
    assert!(matches!(
        t.runtime.status(&s.id).await.map(|i| i.state),
        Some(ContainerState::Exited(_))
    ));
    assert!(matches!(
        t.runtime
            .exec(&s.id, &command, Duration::from_secs(5))
            .await,
        Err(RuntimeError::NotRunning(_))
    ));
    t.runtime.release_all_pods().await;
}

#[tokio::test]
async fn containers_of_a_pod_share_its_network() {
    let Some(t) = setup().await else { return };
    let uid = "dt-net";
    t.runtime.prepare_pod(uid).await.expect("sandbox");
    let server = spec(uid, "server", &["httpd", "-f", "-p", "8080", "-h", "/etc"]);
    let client = spec(uid, "client", &["sleep", "1000"]);
    t.runtime.start(&server).await.expect("start server");
    t.runtime.start(&client).await.expect("start client");
    let fetch: Vec<String> = ["wget", "-q", "-O", "-", "http://127.0.0.1:8080/passwd"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut last = None;
    for _ in 0..100 {
        let out = t
            .runtime
            .exec(&client.id, &fetch, Duration::from_secs(10))
            .await
            .expect("exec");
        if out.exit_code == Some(0) {
            last = Some(out);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = last.expect("the client reached the server on 127.0.0.1");
    assert!(out.output.contains("root:x:0:0"), "{out:?}");
    t.runtime.stop_all(Duration::from_secs(1)).await;
    t.runtime.release_all_pods().await;
}

#[tokio::test]
async fn a_missing_image_with_pull_policy_never_fails_at_once() {
    let Some(t) = setup().await else { return };
    let uid = "dt-noimage";
    t.runtime.prepare_pod(uid).await.expect("sandbox");
    let mut s = spec(uid, "main", &["sh"]);
    s.image = "navarch/does-not-exist:1".into();
    let e = t.runtime.start(&s).await.expect_err("no image");
    assert_eq!(e.reason(), "ErrImageNeverPull");
    assert_eq!(
        e.to_string(),
        "Container image \"navarch/does-not-exist:1\" is not present with pull policy of Never"
    );
    // The id is free again for a later attempt.
    assert!(t.runtime.status(&s.id).await.is_none());
    t.runtime.release_all_pods().await;
}

#[tokio::test]
async fn going_over_the_memory_limit_is_reported_as_oom_killed() {
    let Some(t) = setup().await else { return };
    let uid = "dt-oom";
    t.runtime.prepare_pod(uid).await.expect("sandbox");
    let mut s = spec(
        uid,
        "hog",
        &[
            "sh",
            "-c",
            "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
        ],
    );
    s.limits.memory_bytes = Some(16 << 20);
    t.runtime.start(&s).await.expect("start");
    let exit = t.runtime.wait(&s.id).await.expect("wait");
    assert!(exit.oom_killed, "{exit:?}");
    assert_eq!(exit.exit_code(), 137);
    t.runtime.release_all_pods().await;
}

/// Whether `docker inspect` finds a container of this name (through the CLI: the runtime may be gone).
fn cli_exists(name: &str) -> bool {
    std::process::Command::new("docker")
        .args(["inspect", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn nothing_is_left_after_a_restart_or_a_drop() {
    let Some(t) = setup().await else { return };
    let uid = "dt-drop";
    t.runtime.prepare_pod(uid).await.expect("sandbox");
    let s = spec(uid, "main", &["sleep", "1000"]);
    t.runtime.start(&s).await.expect("start");
    assert!(cli_exists(&container_name(&s.id)));

    // A new run of the agent on the same data directory removes what the earlier one left.
    let restarted = DockerRuntime::connect(t.dir.path()).await.expect("connect");
    assert!(!cli_exists(&container_name(&s.id)));
    assert!(!cli_exists(&sandbox_name(uid)));
    let exit = t
        .runtime
        .wait(&s.id)
        .await
        .expect("the first run sees the exit");
    assert_ne!(exit.exit_code(), 0);

    restarted.prepare_pod(uid).await.expect("sandbox");
    restarted.start(&s).await.expect("start again");
    assert!(cli_exists(&container_name(&s.id)));
    drop(restarted);
    assert!(!cli_exists(&container_name(&s.id)));
    assert!(!cli_exists(&sandbox_name(uid)));
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_with_err_image_pull() {
    let Some(t) = setup().await else { return };
    let uid = "dt-nopull";
    t.runtime.prepare_pod(uid).await.expect("sandbox");
    let mut s = spec(uid, "main", &["sh"]);
    // A registry that refuses connections: the pull fails without any network.
    s.image = "127.0.0.1:1/navarch/nothing:1".into();
    s.pull_policy = PullPolicy::IfNotPresent;
    let e = t.runtime.start(&s).await.expect_err("no registry");
    assert_eq!(e.reason(), "ErrImagePull", "{e}");
    assert!(
        e.to_string().contains("127.0.0.1:1/navarch/nothing:1"),
        "{e}"
    );
    t.runtime.release_all_pods().await;
}
