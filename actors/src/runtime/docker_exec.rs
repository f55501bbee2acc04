//! `exec` in a Docker container: the engine runs the command beside the container's own, the agent collects its
//! output and, past the timeout, kills it (the engine has no call for that; the process is on this host).

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures::StreamExt;

use super::{engine, DockerRuntime};
use crate::runtime::{ContainerId, ExecOutput, RuntimeError, EXEC_OUTPUT_LIMIT};

impl DockerRuntime {
    /// Runs `command` in the running container `id` for at most `timeout` (see [`crate::runtime::Runtime::exec`]).
    pub(super) async fn exec_in(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let (docker_id, rx) = self.lookup(id)?;
        if rx.borrow().is_some() {
            return Err(RuntimeError::NotRunning(id.clone()));
        }
        let options = CreateExecOptions::<String> {
            cmd: Some(command.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let created = self
            .docker()
            .create_exec(&docker_id, options)
            .await
            .map_err(|e| match e {
                DockerError::DockerResponseServerError {
                    status_code: 409, ..
                } => RuntimeError::NotRunning(id.clone()),
                e => engine(e),
            })?;
        let exec_id = created.id;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let run = async {
            let started = self
                .docker()
                .start_exec(&exec_id, None)
                .await
                .map_err(engine)?;
            if let StartExecResults::Attached { mut output, .. } = started {
                while let Some(chunk) = output.next().await {
                    match chunk.map_err(engine)? {
                        LogOutput::StdErr { message } => keep(&mut stderr, &message),
                        LogOutput::StdOut { message } | LogOutput::Console { message } => {
                            keep(&mut stdout, &message)
                        }
                        LogOutput::StdIn { .. } => {}
                    }
                }
            }
            Ok::<(), RuntimeError>(())
        };
        let finished = tokio::time::timeout(timeout, run).await;
        let inspected = self.docker().inspect_exec(&exec_id).await.map_err(engine)?;
        let exit_code = match finished {
            Ok(result) => {
                result?;
                inspected.exit_code.and_then(|c| i32::try_from(c).ok())
            }
            Err(_) => {
                // The engine cannot kill an exec; its process is on this host, so the agent does.
                if let Some(pid) = inspected.pid.and_then(|p| i32::try_from(p).ok()) {
                    if pid > 0 {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
                None
            }
        };
        stdout.extend_from_slice(&stderr);
        stdout.truncate(EXEC_OUTPUT_LIMIT);
        Ok(ExecOutput {
            exit_code,
            output: String::from_utf8_lossy(&stdout).into_owned(),
        })
    }
}

/// Appends `bytes` to `buf` up to [`EXEC_OUTPUT_LIMIT`].
fn keep(buf: &mut Vec<u8>, bytes: &[u8]) {
    let room = EXEC_OUTPUT_LIMIT.saturating_sub(buf.len());
    buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
}
