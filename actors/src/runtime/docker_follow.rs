//! Following a running Docker container: its output into its log file, and how it exited.

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{LogsOptions, WaitContainerOptions};
use bollard::Docker;
use futures::StreamExt;
use navarch_bus::api::meta;

use super::is_not_found;
use crate::runtime::cri_log::Stream;
use crate::runtime::log_writer::{LogLimits, LogWriter};
use crate::runtime::{ContainerId, Exit};

/// Waits until the container has exited and reads how. A broken wait (the engine restarting) is retried
/// while the container still runs.
pub(super) async fn follow_exit(docker: &Docker, docker_id: &str, id: &ContainerId) -> Exit {
    loop {
        let options = WaitContainerOptions {
            condition: "not-running".into(),
        };
        let waited = docker.wait_container(docker_id, Some(options)).next().await;
        let exited = match waited {
            // A non-zero exit comes as an error carrying the code.
            Some(Ok(_)) | Some(Err(DockerError::DockerContainerWaitError { .. })) => true,
            Some(Err(e)) if is_not_found(&e) => true,
            Some(Err(e)) => {
                tracing::warn!(container = %id, error = %e, "waiting for the container failed; retrying");
                false
            }
            None => false,
        };
        match docker.inspect_container(docker_id, None).await {
            Ok(inspected) => {
                let state = inspected.state.unwrap_or_default();
                if state.running != Some(true) {
                    return Exit {
                        code: Some(
                            state
                                .exit_code
                                .and_then(|c| i32::try_from(c).ok())
                                .unwrap_or(128),
                        ),
                        signal: None,
                        oom_killed: state.oom_killed == Some(true),
                    };
                }
            }
            Err(e) if is_not_found(&e) => {
                tracing::warn!(container = %id, "container removed behind the agent's back");
                return Exit {
                    code: None,
                    signal: None,
                    oom_killed: false,
                };
            }
            Err(e) => {
                tracing::warn!(container = %id, error = %e, "cannot inspect the container")
            }
        }
        if !exited {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Copies the container's stdout and stderr into its log (the CRI format, rotated within `limits`) until the
/// container stops.
pub(super) async fn copy_logs(
    docker: Docker,
    docker_id: String,
    log: std::path::PathBuf,
    limits: LogLimits,
) {
    let mut writer = match LogWriter::open(&log, limits) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(path = %log.display(), error = %e, "cannot open the container's log");
            return;
        }
    };
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut stream = docker.logs(&docker_id, Some(options));
    while let Some(chunk) = stream.next().await {
        let (which, bytes) = match chunk {
            Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                (Stream::Stdout, message)
            }
            Ok(LogOutput::StdErr { message }) => (Stream::Stderr, message),
            Ok(LogOutput::StdIn { .. }) => continue,
            Err(e) => {
                tracing::warn!(container = %docker_id, error = %e, "container log stream broke");
                break;
            }
        };
        if let Err(e) = writer.write(which, &bytes, meta::now()) {
            tracing::warn!(container = %docker_id, error = %e, "cannot write the container's log");
            return;
        }
    }
    if let Err(e) = writer.finish(meta::now()) {
        tracing::warn!(container = %docker_id, error = %e, "cannot write the container's log");
    }
}
