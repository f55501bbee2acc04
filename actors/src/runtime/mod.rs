//! How a node agent runs containers: the [`Runtime`] contract and its implementations ([`ProcessRuntime`]: each
//! container is a child process on the host; [`DockerRuntime`]: each a Docker container, per pod a sandbox);
//! [`netns`] builds pod networks and [`cgroup`] container limits for the process runtime, and [`adopt`] keeps the
//! records through which a restarted agent finds its containers again; [`usage`] reads containers' CPU and memory
//! counters for the agent's metrics.
//!
//! # To be correct, a runtime must
//! - run each [`ContainerId`] at most once: a second `start` of a live id is refused ([`RuntimeError::AlreadyExists`]);
//!   a restart is a new id (the attempt number grows);
//! - report a start failure (no command, command not found, bad working directory) as a [`RuntimeError`] from
//!   `start` with a message a user can act on, never by panicking and never as a container that seems to run;
//! - notice every exit by itself: `wait` returns once the container's main process has exited (with its code or
//!   signal), whether or not anyone asked it to stop, and leaves no zombie behind;
//! - stop the whole container, not only its main process: `stop` delivers the signal to every process of the
//!   container, waits up to the grace period for the main process to exit, then kills everything that is left;
//!   when the main process exits by itself, whatever it left running is killed too;
//! - keep a container's stdout and stderr in its log file ([`log_path`]) for `kubectl logs`, in the CRI format
//!   with each line's time ([`cri_log`]), rotated by size within the node's [`LogLimits`] ([`log_writer`]): each
//!   start of a container begins a fresh log and keeps the one before as [`previous_log_path`] (for `kubectl logs
//!   --previous`; Kubernetes, too, keeps the current and the previous instance's logs only);
//! - run `exec` commands in the container's context, bounded by their timeout, leaving nothing of them running
//!   once they return;
//! - leave nothing running after `stop_all` returns (agent shutdown), and nothing it can still kill after it is
//!   dropped;
//! - where it gives pods their own network ([`Runtime::prepare_pod`] returns an IP), start every container of the
//!   pod in that network, and undo it all in `release_pod` / `release_all_pods`;
//! - outlive the agent: a container keeps running when the agent process dies without stopping it (a crash, a
//!   SIGKILL), and [`Runtime::recover`] in the next agent on the node finds it again (running, or exited with
//!   [`Exit::UNKNOWN`] when it ended meanwhile), so that it is neither started twice nor left unwatched;
//! - where it enforces [`Limits`], report a container whose main process the kernel killed for going over its
//!   memory limit with [`Exit::oom_killed`];
//! - show each of [`ContainerSpec::mounts`] at its target inside the container and nowhere else (the host's tree and
//!   mount table stay as they were), or refuse the start with [`RuntimeError::Mounts`].

pub mod adopt;
pub mod cgroup;
pub mod cri_log;
pub mod docker;
mod log_pipe;
pub mod log_writer;
pub mod mounts;
pub mod netns;
mod process;
pub mod usage;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cgroup::Limits;
pub use docker::DockerRuntime;
pub use log_writer::LogLimits;
pub use mounts::Mount;
pub use process::{running_as_root, ProcessRuntime};

/// Names one run of one container: its pod's uid, the container's name and the attempt (the pod's restart count
/// for that container when this run started).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerId {
    /// The pod's `metadata.uid`.
    pub pod_uid: String,
    /// The container's name within the pod.
    pub container: String,
    /// 0 for the first run, then one more per restart.
    pub attempt: u32,
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}_{}", self.pod_uid, self.container, self.attempt)
    }
}

/// Everything a runtime needs to start one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Which run this is.
    pub id: ContainerId,
    /// The pod's namespace (names the log directory).
    pub pod_namespace: String,
    /// The pod's name (names the log directory; the process runtime also sets it as `HOSTNAME`).
    pub pod_name: String,
    /// The image, as the pod names it. The process runtime shows it but does not pull or read it.
    pub image: String,
    /// When to pull the image (`imagePullPolicy`, defaulted as the API server does).
    pub pull_policy: PullPolicy,
    /// The program and its leading arguments (`command`).
    pub command: Vec<String>,
    /// More arguments (`args`).
    pub args: Vec<String>,
    /// Environment variables, in order (later ones win).
    pub env: Vec<(String, String)>,
    /// Working directory, if the container sets one.
    pub working_dir: Option<PathBuf>,
    /// CPU and memory limits (`resources.limits`).
    pub limits: Limits,
    /// The pod's volumes at their `mountPath`s, in order (a later mount may sit inside an earlier one).
    pub mounts: Vec<Mount>,
}

/// When a runtime that reads images pulls one (`imagePullPolicy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull on every start.
    Always,
    /// Pull only when the image is not on the node.
    #[default]
    IfNotPresent,
    /// Never pull: a missing image is an error (`ErrImageNeverPull`).
    Never,
}

impl PullPolicy {
    /// The container's policy: `policy` when it names one, else the API server's default for `image` (`Always`
    /// for a `:latest` or untagged image, `IfNotPresent` otherwise).
    pub fn for_image(policy: Option<&str>, image: &str) -> Self {
        match policy {
            Some("Always") => PullPolicy::Always,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            Some("Never") => PullPolicy::Never,
            _ => {
                if image.contains('@') {
                    return PullPolicy::IfNotPresent;
                }
                // The tag follows a `:` in the last path part (a registry's port is not a tag).
                let last = image.rsplit('/').next().unwrap_or_default();
                match last.split_once(':') {
                    None | Some((_, "latest")) => PullPolicy::Always,
                    Some(_) => PullPolicy::IfNotPresent,
                }
            }
        }
    }
}

/// What a pod's containers share, as [`Runtime::prepare_pod`] set it up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodNetwork {
    /// The pod's own IP; None when the pod shares the node's network.
    pub ip: Option<IpAddr>,
}

/// Which signal asks a container to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM: please stop; SIGKILL follows after the grace period.
    Term,
    /// SIGKILL: stop now.
    Kill,
}

/// How a container's main process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, when it exited by itself.
    pub code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
    /// The kernel killed it for going over its memory limit (Kubernetes' `OOMKilled`).
    pub oom_killed: bool,
}

impl Exit {
    /// The exit of a container whose exit status is lost (it ended while no agent watched it, or it was adopted
    /// and so is not our child): neither code nor signal.
    pub const UNKNOWN: Exit = Exit {
        code: None,
        signal: None,
        oom_killed: false,
    };

    /// The exit code as Kubernetes reports it: the code, or 128 + the signal number; 137 when it is unknown, as the
    /// kubelet reports a container whose status was lost (`ContainerStatusUnknown`).
    pub fn exit_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(code), _) => code,
            (None, Some(signal)) => 128 + signal,
            (None, None) => 137,
        }
    }

    /// Whether how it ended is unknown (see [`Exit::UNKNOWN`]).
    pub fn is_unknown(&self) -> bool {
        self.code.is_none() && self.signal.is_none()
    }
}

/// A container's state as the runtime sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Its main process runs.
    Running,
    /// Its main process has exited.
    Exited(Exit),
}

/// One container the runtime knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Which run.
    pub id: ContainerId,
    /// The main process's pid (for the process runtime, also its process group).
    pub pid: Option<u32>,
    /// Running or exited.
    pub state: ContainerState,
}

/// The most output of an `exec` that is kept (stdout, then stderr), as the kubelet keeps of a probe's.
pub const EXEC_OUTPUT_LIMIT: usize = 10 * 1024;

/// What a command run in a container did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its exit code (128 + signal when killed); None when it did not finish in time.
    pub exit_code: Option<i32>,
    /// Its stdout then stderr, at most [`EXEC_OUTPUT_LIMIT`] bytes (invalid UTF-8 replaced).
    pub output: String,
}

/// Why a runtime call failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The container has no `command`. Not retryable: the process runtime runs commands on the host and cannot
    /// find an entrypoint in an image.
    #[error(
        "no command: the process runtime does not read images, so the container must set `command`"
    )]
    NoCommand,
    /// The program could not be found. Not retryable until the program is installed.
    #[error("executable file not found: {command:?} is not on PATH ({path}) and is not a file")]
    CommandNotFound {
        /// The program as the container names it.
        command: String,
        /// The PATH it was looked up in.
        path: String,
    },
    /// The program exists but may not be executed. Not retryable.
    #[error("permission denied: cannot execute {command:?}")]
    PermissionDenied {
        /// The program.
        command: String,
    },
    /// The working directory does not exist or is not a directory. Not retryable.
    #[error("working directory {} does not exist or is not a directory", .0.display())]
    WorkingDir(PathBuf),
    /// The log file could not be opened. Retryable once the disk is fixed.
    #[error("cannot open log file {}: {source}", path.display())]
    Log {
        /// The log file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Starting the process failed for another reason. May be retryable (e.g. too many processes).
    #[error("cannot start {command:?}: {source}")]
    Spawn {
        /// The program.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The runtime does not know this container. Not retryable.
    #[error("no container {0}")]
    NotFound(ContainerId),
    /// The container already runs. Not retryable: a restart needs a new attempt.
    #[error("container {0} already exists")]
    AlreadyExists(ContainerId),
    /// The container is still running (e.g. `remove` of a live container). Retryable after stopping it.
    #[error("container {0} is still running")]
    StillRunning(ContainerId),
    /// The container is not running (e.g. `exec` in an exited container). Not retryable for this run.
    #[error("container {0} is not running")]
    NotRunning(ContainerId),
    /// The container did not exit even after SIGKILL (a process stuck in the kernel). Retryable.
    #[error("container {0} did not exit after SIGKILL")]
    Stuck(ContainerId),
    /// The pod's network could not be set up, or a container of a pod without one was started on a runtime that
    /// gives pods their own network. Retryable once the host is fixed.
    #[error("pod network: {0}")]
    Network(String),
    /// The container has volumes but the runtime cannot mount them (the process runtime needs root for a private
    /// mount namespace). Not retryable on this node.
    #[error("cannot mount volumes: {0}")]
    Mounts(String),
    /// The container's cgroup could not be set up. Retryable once the host is fixed.
    #[error("cannot set up the cgroup of {id}: {source}")]
    Cgroup {
        /// The container.
        id: ContainerId,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The image is not on the node and the pull policy is `Never`. Retryable once the image is loaded.
    #[error("Container image {image:?} is not present with pull policy of Never")]
    ImageNeverPull {
        /// The image.
        image: String,
    },
    /// The image could not be pulled. Retryable (the kubelet backs off: `ImagePullBackOff`).
    #[error("failed to pull image {image:?}: {message}")]
    ImagePull {
        /// The image.
        image: String,
        /// Why, as the engine said.
        message: String,
    },
    /// The engine refused to create the container (e.g. the image has no command and the pod sets none). Not
    /// retryable for this spec.
    #[error("cannot create container {id}: {message}")]
    CreateContainer {
        /// The container.
        id: ContainerId,
        /// Why, as the engine said.
        message: String,
    },
    /// The engine could not run the created container (e.g. its program is not in the image). Not retryable for
    /// this spec.
    #[error("cannot run container {id}: {message}")]
    RunContainer {
        /// The container.
        id: ContainerId,
        /// Why, as the engine said.
        message: String,
    },
    /// Another call to the container engine failed (e.g. the engine is down). Retryable.
    #[error("container engine: {0}")]
    Engine(String),
}

impl RuntimeError {
    /// The reason a container status shows for this failure to start (containerd says `StartError`; image and
    /// engine failures use the kubelet's reasons).
    pub fn reason(&self) -> &'static str {
        match self {
            RuntimeError::NoCommand => "NoCommand",
            RuntimeError::CommandNotFound { .. } => "CommandNotFound",
            RuntimeError::ImageNeverPull { .. } => "ErrImageNeverPull",
            RuntimeError::ImagePull { .. } => "ErrImagePull",
            RuntimeError::CreateContainer { .. } => "CreateContainerError",
            RuntimeError::RunContainer { .. } => "RunContainerError",
            _ => "StartError",
        }
    }
}

/// Runs containers. See the module docs for what an implementation must guarantee.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// `<name>://<version>`, shown as the node's `containerRuntimeVersion`; its scheme prefixes container ids in pod
    /// statuses.
    fn version(&self) -> String;

    /// Starts a container; returns its main process's pid.
    async fn start(&self, spec: &ContainerSpec) -> Result<u32, RuntimeError>;

    /// Sends `signal` to every process of the container, waits up to `grace` for it to exit, then kills what is
    /// left; returns how it exited. Stopping an exited container returns its exit at once.
    async fn stop(
        &self,
        id: &ContainerId,
        signal: StopSignal,
        grace: Duration,
    ) -> Result<Exit, RuntimeError>;

    /// Runs `command` in the running container `id` (its environment and working directory, and whatever else
    /// makes up the container's context) and waits for it at most `timeout`; past that the command and everything
    /// it started are killed and the exit code is None. Its stdout and stderr are captured up to
    /// [`EXEC_OUTPUT_LIMIT`].
    async fn exec(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError>;

    /// Waits until the container's main process exits.
    async fn wait(&self, id: &ContainerId) -> Result<Exit, RuntimeError>;

    /// One container's state.
    async fn status(&self, id: &ContainerId) -> Option<ContainerInfo>;

    /// Every container the runtime knows, running or exited, in id order.
    async fn list(&self) -> Vec<ContainerInfo>;

    /// Forgets an exited container (its log file stays).
    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError>;

    /// Stops every running container (SIGTERM, `grace`, SIGKILL) and returns once all have exited.
    async fn stop_all(&self, grace: Duration);

    /// Finds the containers an earlier agent on this node left behind and takes them over, as if this runtime had
    /// started them: returns them, running or exited (with [`Exit::UNKNOWN`] when they ended unwatched). Call it
    /// once, before starting anything. By default a runtime keeps nothing across agents and finds nothing.
    async fn recover(&self) -> Vec<ContainerInfo> {
        Vec::new()
    }

    /// Sets up what the pod's containers share (its network namespace and IP) before the first of them starts.
    /// Calling it again for the same pod returns the same network. By default pods share the node's network.
    async fn prepare_pod(&self, pod_uid: &str) -> Result<PodNetwork, RuntimeError> {
        let _ = pod_uid;
        Ok(PodNetwork::default())
    }

    /// Undoes `prepare_pod` once none of the pod's containers is left; a pod never prepared is fine.
    async fn release_pod(&self, pod_uid: &str) {
        let _ = pod_uid;
    }

    /// Releases every pod and whatever the node shares among them (agent shutdown, after `stop_all`).
    async fn release_all_pods(&self) {}

    /// The node's pod CIDR, when pods get their own IPs from it (the Node's `spec.podCIDR`).
    fn pod_cidr(&self) -> Option<String> {
        None
    }

    /// Sets how large container logs grow (containers started from now on). By default the runtime keeps
    /// [`LogLimits::default`].
    fn set_log_limits(&self, limits: LogLimits) {
        let _ = limits;
    }
}

/// Where a container's stdout and stderr go: `<data_dir>/pods/<namespace>_<name>_<uid>/<container>.log`.
pub fn log_path(
    data_dir: &Path,
    namespace: &str,
    pod_name: &str,
    pod_uid: &str,
    container: &str,
) -> PathBuf {
    pod_dir(data_dir, namespace, pod_name, pod_uid).join(format!("{container}.log"))
}

/// Where the log of a container's previous instance is kept: [`log_path`] with `.1` added.
pub fn previous_log_path(
    data_dir: &Path,
    namespace: &str,
    pod_name: &str,
    pod_uid: &str,
    container: &str,
) -> PathBuf {
    pod_dir(data_dir, namespace, pod_name, pod_uid).join(format!("{container}.log.1"))
}

/// Makes way for the log of a new run of `spec`'s container and returns its path: the last run's log (every
/// piece of it) becomes the previous one (`kubectl logs --previous`; older ones go). A reader following the old
/// file keeps its handle to it and sees that the path names another file that is no rotated piece of it.
pub(crate) fn fresh_log(data_dir: &Path, spec: &ContainerSpec) -> Result<PathBuf, RuntimeError> {
    let (ns, pod, uid, c) = (
        &spec.pod_namespace,
        &spec.pod_name,
        &spec.id.pod_uid,
        &spec.id.container,
    );
    let log = log_path(data_dir, ns, pod, uid, c);
    let previous = previous_log_path(data_dir, ns, pod, uid, c);
    let ignore_missing = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    let prepare = || -> std::io::Result<()> {
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent)?;
        }
        for (_, old) in log_writer::rotated_pieces(&previous) {
            ignore_missing(std::fs::remove_file(old))?;
        }
        for (seq, piece) in log_writer::rotated_pieces(&log) {
            std::fs::rename(piece, log_writer::rotated_path(&previous, seq))?;
        }
        ignore_missing(std::fs::rename(&log, &previous))?;
        // The new run's file exists from its start, so a reader never mistakes "no output yet" for "not started".
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map(drop)
    };
    prepare().map_err(|source| RuntimeError::Log {
        path: log.clone(),
        source,
    })?;
    Ok(log)
}

/// What `kubectl logs` would show of the log at `path` (its rotated pieces first): the containers' output as
/// written, without times. For tests and tools; the agent serves logs through `agent::logs`.
pub fn read_log_text(path: &Path) -> std::io::Result<String> {
    let mut files: Vec<PathBuf> = log_writer::rotated_pieces(path)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    files.push(path.to_path_buf());
    let mut out = Vec::new();
    for file in files {
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && file != path => continue,
            Err(e) => return Err(e),
        };
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            if let Some(entry) = cri_log::parse(line) {
                cri_log::render(&mut out, &entry, false);
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Waits until a container's exit is known (None: whoever would tell is gone).
pub(crate) async fn exit_of(rx: &mut tokio::sync::watch::Receiver<Option<Exit>>) -> Option<Exit> {
    rx.wait_for(Option::is_some).await.ok().and_then(|e| *e)
}

/// A pod's directory under the agent's data dir: `<data_dir>/pods/<namespace>_<name>_<uid>`.
pub fn pod_dir(data_dir: &Path, namespace: &str, pod_name: &str, pod_uid: &str) -> PathBuf {
    data_dir
        .join("pods")
        .join(format!("{namespace}_{pod_name}_{pod_uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_kubernetes() {
        let by_code = Exit {
            code: Some(3),
            signal: None,
            oom_killed: false,
        };
        let by_signal = Exit {
            code: None,
            signal: Some(15),
            oom_killed: false,
        };
        assert_eq!(by_code.exit_code(), 3);
        assert_eq!(by_signal.exit_code(), 143);
        assert_eq!(Exit::UNKNOWN.exit_code(), 137);
        assert!(Exit::UNKNOWN.is_unknown() && !by_code.is_unknown());
    }

    #[test]
    fn pull_policies_default_as_the_api_server_does() {
        assert_eq!(
            PullPolicy::for_image(Some("Never"), "x:1"),
            PullPolicy::Never
        );
        assert_eq!(PullPolicy::for_image(None, "busybox"), PullPolicy::Always);
        assert_eq!(
            PullPolicy::for_image(None, "busybox:latest"),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::for_image(Some(""), "busybox:1.36"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::for_image(None, "reg:5000/busybox"),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::for_image(None, "busybox@sha256:ab"),
            PullPolicy::IfNotPresent
        );
    }

    #[test]
    fn log_paths_name_the_pod() {
        let p = log_path(Path::new("/data"), "demo", "web-1", "u-1", "main");
        assert_eq!(p, PathBuf::from("/data/pods/demo_web-1_u-1/main.log"));
    }
}
