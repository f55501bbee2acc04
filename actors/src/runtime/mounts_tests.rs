//! Tests of volumes mounted by the process runtime with real processes and mount namespaces. They need root;
//! without it they check that containers with mounts are refused.

use std::path::Path;
use std::time::Duration;

use crate::runtime::{
    log_path, running_as_root, ContainerId, ContainerSpec, Limits, Mount, ProcessRuntime, Runtime,
    RuntimeError,
};

fn spec(container: &str, script: &str, mounts: Vec<Mount>) -> ContainerSpec {
    ContainerSpec {
        id: ContainerId {
            pod_uid: "mount-test".into(),
            container: container.into(),
            attempt: 0,
        },
        pod_namespace: "demo".into(),
        pod_name: "mounts".into(),
        image: "busybox".into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        args: vec![],
        env: vec![],
        working_dir: None,
        limits: Limits::default(),
        mounts,
        pull_policy: Default::default(),
    }
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

/// Whether the host's mount table shows anything mounted at `path`.
fn mounted_on_host(path: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(path))
}

#[tokio::test]
async fn volumes_appear_at_their_paths_inside_the_container_only() {
    let tmp = tempfile::tempdir().unwrap();
    let volume = tmp.path().join("vol");
    std::fs::create_dir(&volume).unwrap();
    std::fs::write(volume.join("greeting"), "hello from the volume").unwrap();
    let target = "/etc/navarch-mount-test-42/deep";
    let existing = tmp.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("host-file"), "host").unwrap();
    let runtime = ProcessRuntime::new(tmp.path().join("data"));
    let mounts = vec![
        Mount {
            source: volume.clone(),
            target: target.into(),
            read_only: true,
        },
        Mount {
            source: volume.clone(),
            target: existing.join("over"),
            read_only: false,
        },
    ];
    let script = format!(
        "cat {target}/greeting; echo; ls /etc/passwd; (echo x > {target}/w) 2>/dev/null || echo read-only; \
         cat {}/over/greeting; echo; cat {}/host-file; echo",
        existing.display(),
        existing.display()
    );
    let s = spec("c", &script, mounts);
    if !running_as_root() {
        assert!(matches!(
            runtime.start(&s).await,
            Err(RuntimeError::Mounts(_))
        ));
        println!("skipping the rest: needs root (mount namespaces)");
        return;
    }
    runtime.start(&s).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(20), runtime.wait(&s.id))
        .await
        .unwrap()
        .unwrap();
    let log = log_of(runtime.data_dir(), &s);
    assert_eq!(exit.exit_code(), 0, "{log}");
    assert_eq!(
        log,
        "hello from the volume\n/etc/passwd\nread-only\nhello from the volume\nhost\n"
    );
    assert!(!Path::new("/etc/navarch-mount-test-42").exists());
    assert!(!mounted_on_host(target));
    assert!(!mounted_on_host("/etc"));
    assert!(!existing.join("over").exists());
}

#[tokio::test]
async fn a_mount_needing_a_new_top_level_directory_is_refused_in_the_log() {
    if !running_as_root() {
        println!("skipping: needs root (mount namespaces)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let runtime = ProcessRuntime::new(tmp.path().join("data"));
    let mounts = vec![Mount {
        source: tmp.path().to_path_buf(),
        target: "/navarch-no-such-top-level-dir".into(),
        read_only: false,
    }];
    let s = spec("c", "echo ran", mounts);
    runtime.start(&s).await.unwrap();
    let exit = runtime.wait(&s.id).await.unwrap();
    assert_eq!(exit.exit_code(), 125);
    assert!(log_of(runtime.data_dir(), &s).contains("does not add top-level directories"));
    assert!(!Path::new("/navarch-no-such-top-level-dir").exists());
}

#[tokio::test]
async fn exec_sees_the_containers_volumes() {
    if !running_as_root() {
        println!("skipping: needs root (mount namespaces)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let volume = tmp.path().join("vol");
    std::fs::create_dir(&volume).unwrap();
    std::fs::write(volume.join("probe"), "ok").unwrap();
    let runtime = ProcessRuntime::new(tmp.path().join("data"));
    let mounts = vec![Mount {
        source: volume,
        target: "/etc/navarch-exec-test-7".into(),
        read_only: true,
    }];
    let s = spec("c", "sleep 30", mounts);
    runtime.start(&s).await.unwrap();
    let command = [
        "cat".to_string(),
        "/etc/navarch-exec-test-7/probe".to_string(),
    ];
    let out = runtime
        .exec(&s.id, &command, Duration::from_secs(10))
        .await
        .unwrap();
    runtime.stop_all(Duration::from_secs(1)).await;
    assert_eq!((out.exit_code, out.output.as_str()), (Some(0), "ok"));
    assert!(!Path::new("/etc/navarch-exec-test-7").exists());
}
