//! Running a command in a container of the process runtime (exec probes, `preStop` hooks): the container's
//! environment, working directory, network namespace and cgroups, its own process group (killed whole on timeout and once the command exits),
//! its output captured up to [`EXEC_OUTPUT_LIMIT`].

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{program_exists, signal_group, ProcessRuntime, DEFAULT_PATH};
use crate::runtime::{ContainerId, ExecOutput, RuntimeError, EXEC_OUTPUT_LIMIT};

/// How long output still in the pipes is read once the command is over.
const PIPE_DRAIN: Duration = Duration::from_secs(1);

impl ProcessRuntime {
    /// Runs `command` in container `id` (which must run) for at most `timeout`. See [`crate::runtime::Runtime::exec`].
    pub(super) async fn exec_in(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let (spec, cgroup) = {
            let containers = self.containers();
            let entry = containers
                .get(id)
                .ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
            if entry.exit().is_some() {
                return Err(RuntimeError::NotRunning(id.clone()));
            }
            (entry.spec.clone(), entry.cgroup.clone())
        };
        let program = match command.first() {
            Some(p) if !p.is_empty() => p.clone(),
            _ => return Err(RuntimeError::NoCommand),
        };
        let path_var = spec
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
        if !program_exists(&program, path_var, spec.working_dir.as_deref()) {
            return Err(RuntimeError::CommandNotFound {
                command: program,
                path: path_var.to_string(),
            });
        }
        // In the container's network namespace, cgroups and mounts (a mount namespace of its own holding the same
        // volumes), as the container itself.
        let mut cmd = self.joined_command(&program, &spec, cgroup.as_ref());
        cmd.args(&command[1..])
            .env_clear()
            .env("PATH", DEFAULT_PATH)
            .env("HOSTNAME", &spec.pod_name)
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so that a timeout ends everything it started, and nothing of the container's.
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &spec.working_dir {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().map_err(|source| match source.kind() {
            std::io::ErrorKind::PermissionDenied => RuntimeError::PermissionDenied {
                command: program.clone(),
            },
            _ => RuntimeError::Spawn {
                command: program.clone(),
                source,
            },
        })?;
        let pid = child.id();
        let stdout = tokio::spawn(read_capped(child.stdout.take()));
        let stderr = tokio::spawn(read_capped(child.stderr.take()));
        let finished = tokio::time::timeout(timeout, child.wait()).await;
        // Whatever it left running goes too (on timeout: all of it), which also closes the pipes it held.
        if let Some(pid) = pid {
            signal_group(pid, Signal::SIGKILL);
        }
        let status = match finished {
            Ok(status) => Some(status.map_err(|source| RuntimeError::Spawn {
                command: program.clone(),
                source,
            })?),
            Err(_) => {
                let _ = child.wait().await; // killed above; reap it
                None
            }
        };
        let mut output = Vec::new();
        for reader in [stdout, stderr] {
            // A process that left the group could hold a pipe open: do not wait for it.
            if let Ok(Ok(bytes)) = tokio::time::timeout(PIPE_DRAIN, reader).await {
                output.extend(bytes);
            }
        }
        output.truncate(EXEC_OUTPUT_LIMIT);
        Ok(ExecOutput {
            exit_code: status.map(|status| {
                super::Exit {
                    code: status.code(),
                    signal: std::os::unix::process::ExitStatusExt::signal(&status),
                    oom_killed: false,
                }
                .exit_code()
            }),
            output: String::from_utf8_lossy(&output).into_owned(),
        })
    }
}

/// Everything `pipe` yields until it closes, of which the first [`EXEC_OUTPUT_LIMIT`] bytes are kept (the rest is
/// read and dropped so the writer never blocks on a full pipe).
async fn read_capped(pipe: Option<impl AsyncRead + Unpin + Send>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else {
        return kept;
    };
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = EXEC_OUTPUT_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

#[cfg(test)]
#[path = "exec_tests.rs"]
mod tests;
