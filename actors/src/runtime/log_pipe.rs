//! Carries a process container's stdout and stderr into its log file through two named pipes (FIFOs) in its pod's
//! directory, so that every line is stamped with the time it was read ([`super::log_writer`]).
//!
//! Why named pipes: the container must outlive its agent (see [`super::adopt`]). The child gets each FIFO opened
//! for reading *and* writing, so it never gets SIGPIPE while no agent reads; a restarted agent opens the same FIFOs
//! again and goes on. While no agent reads, a container blocks once it has written a pipe's buffer (64 KiB), and
//! resumes when the next agent drains it (containerd's shim does the same job as a separate process).

use std::fs::File;
use std::path::{Path, PathBuf};

use navarch_bus::api::meta;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use super::cri_log::Stream;
use super::log_writer::{LogLimits, LogWriter};
use super::{ContainerSpec, RuntimeError};

/// Where a container instance's two pipes are: `<pod dir>/<container>.<attempt>.stdout` and `.stderr`.
pub fn fifo_paths(data_dir: &Path, spec: &ContainerSpec) -> [PathBuf; 2] {
    let dir = super::pod_dir(
        data_dir,
        &spec.pod_namespace,
        &spec.pod_name,
        &spec.id.pod_uid,
    );
    let name = format!("{}.{}", spec.id.container, spec.id.attempt);
    [
        dir.join(format!("{name}.stdout")),
        dir.join(format!("{name}.stderr")),
    ]
}

/// How long a container's exit waits for its last output to reach the log file.
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// The two ends of a new container's output: the files to give the child as stdout and stderr, and the agent's
/// readers.
pub struct Pipes {
    /// The child's stdout (the FIFO opened read-write).
    pub stdout: File,
    /// The child's stderr.
    pub stderr: File,
    /// The agent's side: copy with [`copy`] once the child has its ends.
    pub readers: Readers,
}

/// The agent's reading ends of a container's pipes.
pub struct Readers {
    pipes: [pipe::Receiver; 2],
    paths: [PathBuf; 2],
}

fn fifo_error(path: &Path, source: std::io::Error) -> RuntimeError {
    RuntimeError::Log {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes the FIFOs of a new container instance (replacing any left over) and opens both ends. Must run inside a
/// tokio runtime (the readers register with it).
pub fn create(data_dir: &Path, spec: &ContainerSpec) -> Result<Pipes, RuntimeError> {
    let paths = fifo_paths(data_dir, spec);
    for path in &paths {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fifo_error(path, e)),
        }
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| fifo_error(path, e.into()))?;
    }
    // The readers first (a non-blocking open for reading never waits), then the child's ends.
    let reader = |p: &PathBuf| {
        pipe::OpenOptions::new()
            .open_receiver(p)
            .map_err(|e| fifo_error(p, e))
    };
    let pipes = [reader(&paths[0])?, reader(&paths[1])?];
    let writer = |p: &PathBuf| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(p)
            .map_err(|e| fifo_error(p, e))
    };
    Ok(Pipes {
        stdout: writer(&paths[0])?,
        stderr: writer(&paths[1])?,
        readers: Readers { pipes, paths },
    })
}

/// Opens the readers of an adopted container's FIFOs again. None when they are gone (a container started before
/// logs went through pipes, whose output goes straight to its file).
pub fn reopen(data_dir: &Path, spec: &ContainerSpec) -> Option<Readers> {
    let paths = fifo_paths(data_dir, spec);
    let open = |p: &PathBuf| pipe::OpenOptions::new().open_receiver(p).ok();
    let pipes = [open(&paths[0])?, open(&paths[1])?];
    Some(Readers { pipes, paths })
}

/// Copies both pipes into the log at `log` until every writer is gone (the container and whatever it started
/// have exited), then removes the FIFOs.
pub async fn copy(readers: Readers, log: PathBuf, limits: LogLimits) {
    let Readers { pipes, paths } = readers;
    let mut writer = match LogWriter::open(&log, limits) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(path = %log.display(), error = %e, "cannot open the container's log; its output is dropped");
            None
        }
    };
    let [mut out, mut err] = pipes;
    let (mut out_buf, mut err_buf) = (vec![0u8; 32 * 1024], vec![0u8; 32 * 1024]);
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        let (stream, read) = tokio::select! {
            r = out.read(&mut out_buf), if out_open => (Stream::Stdout, r),
            r = err.read(&mut err_buf), if err_open => (Stream::Stderr, r),
        };
        let n = match read {
            Ok(0) | Err(_) => {
                match stream {
                    Stream::Stdout => out_open = false,
                    Stream::Stderr => err_open = false,
                }
                continue;
            }
            Ok(n) => n,
        };
        let data = match stream {
            Stream::Stdout => &out_buf[..n],
            Stream::Stderr => &err_buf[..n],
        };
        if let Some(w) = writer.as_mut() {
            if let Err(e) = w.write(stream, data, meta::now()) {
                tracing::warn!(path = %log.display(), error = %e, "cannot write the container's log");
                writer = None;
            }
        }
    }
    if let Some(w) = writer.as_mut() {
        if let Err(e) = w.finish(meta::now()) {
            tracing::warn!(path = %log.display(), error = %e, "cannot write the container's log");
        }
    }
    for path in &paths {
        let _ = std::fs::remove_file(path);
    }
}
