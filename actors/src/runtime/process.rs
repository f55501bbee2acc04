//! The process runtime: each container is a child process of the agent on the host filesystem, in its own process
//! group, with its output in a log file per instance; as root, in its pod's network namespace and in a cgroup
//! holding its limits. Each running container is also recorded on disk ([`super::adopt`]), so that the next agent
//! adopts it if this one dies without stopping it.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::watch;

use super::adopt::{self, Record};
use super::cgroup::{Cgroups, ContainerCgroup};
use super::log_pipe;
use super::log_writer::LogLimits;
use super::netns::{self, NetworkError, NodeNetwork, PodCidr};
use super::{
    log_path, ContainerId, ContainerInfo, ContainerSpec, ContainerState, Exit, PodNetwork, Runtime,
    RuntimeError, StopSignal,
};

/// The `PATH` a container gets unless its `env` sets one (the default of container images).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the node reports as `containerRuntimeVersion`.
pub const VERSION: &str = "navarch-process://0.1";

/// How long a SIGKILLed process may take to be reaped before the container counts as stuck.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// The shell that moves a container into its cgroups and its pod's network before it becomes the container's
/// program. Workspace lints forbid `unsafe`, and with it `pre_exec`, so the child cannot join them between fork and
/// exec in Rust; this shell does it instead, as the same process (same pid, same process group): it writes its own
/// pid to each `cgroup.procs` file given before `--` (so nothing of the container runs outside its limits), then
/// `exec`s what follows (`ip netns exec <pod netns> <program> <args>`, or the program alone).
const JOIN_SCRIPT: &str = r#"for f in "$@"; do shift; [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; done; exec "$@""#;

/// The shell running [`JOIN_SCRIPT`].
const SHELL: &str = "/bin/sh";

/// How long `remove` retries removing a cgroup whose killed processes are still on their way out.
const CGROUP_REMOVE_TRIES: u32 = 40;

struct Entry {
    pid: u32,
    exit: watch::Receiver<Option<Exit>>,
    /// What it was started with (`exec` runs commands in the same environment).
    spec: ContainerSpec,
    cgroup: Option<ContainerCgroup>,
}

impl Entry {
    fn exit(&self) -> Option<Exit> {
        *self.exit.borrow()
    }
}

struct Inner {
    data_dir: PathBuf,
    containers: Mutex<BTreeMap<ContainerId, Entry>>,
    /// The pods' own networks; None: containers share the host's network.
    network: Option<NodeNetwork>,
    /// Where limits go; None when not root or the host has no memory cgroup.
    cgroups: Option<Cgroups>,
    /// Whether "limits are not enforced" was logged already.
    warned_limits: AtomicBool,
    /// How large container logs grow.
    log_limits: Mutex<LogLimits>,
}

impl Drop for Inner {
    /// Last line of defence: whatever still runs when the runtime goes away is killed (its reaper task may be gone,
    /// so it is not waited for).
    fn drop(&mut self) {
        let containers = self.containers.get_mut().unwrap_or_else(|e| e.into_inner());
        for (id, entry) in containers.iter() {
            if entry.exit().is_none() {
                tracing::warn!(container = %id, pid = entry.pid, "runtime dropped with the container running; killing it");
                signal_group(entry.pid, Signal::SIGKILL);
            }
        }
    }
}

/// Runs each container as a real child process: `command` + `args` with the container's `env` (and nothing of the
/// agent's own environment but a default `PATH`), in `workingDir` if set, in a new process group so that signals
/// reach everything it starts, with stdout and stderr written to a fresh log file (the previous instance's is kept beside it). Images are not pulled or read.
///
/// Cheap to clone; clones share the containers.
#[derive(Clone)]
pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProcessRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRuntime")
            .field("data_dir", &self.inner.data_dir)
            .finish()
    }
}

impl ProcessRuntime {
    /// A runtime keeping its log files under `data_dir` (see [`super::log_path`]), its containers on the host's
    /// network; as root, with their limits in cgroups.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self::build(data_dir.into(), None)
    }

    /// As [`ProcessRuntime::new`], each pod in its own network namespace with an IP from `cidr` on a node bridge
    /// (set up here; needs root, `ip` and, for egress, `nft`). The addresses are kept in `data_dir`.
    pub async fn with_pod_network(
        data_dir: impl Into<PathBuf>,
        cidr: PodCidr,
    ) -> Result<Self, NetworkError> {
        let data_dir = data_dir.into();
        let network = NodeNetwork::setup(&data_dir, cidr).await?;
        Ok(Self::build(data_dir, Some(network)))
    }

    fn build(data_dir: PathBuf, network: Option<NodeNetwork>) -> Self {
        Self {
            inner: Arc::new(Inner {
                data_dir,
                containers: Mutex::new(BTreeMap::new()),
                network,
                cgroups: if running_as_root() {
                    Cgroups::detect()
                } else {
                    None
                },
                warned_limits: AtomicBool::new(false),
                log_limits: Mutex::new(LogLimits::default()),
            }),
        }
    }

    /// The directory holding the log files.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    fn log_limits(&self) -> LogLimits {
        *self
            .inner
            .log_limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn containers(&self) -> MutexGuard<'_, BTreeMap<ContainerId, Entry>> {
        self.inner
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn lookup(
        &self,
        id: &ContainerId,
    ) -> Result<(u32, watch::Receiver<Option<Exit>>), RuntimeError> {
        self.containers()
            .get(id)
            .map(|e| (e.pid, e.exit.clone()))
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))
    }

    /// Everything of `start` that happens before the process exists, and the spawn itself. Synchronous on purpose:
    /// it runs under the containers lock so that one id never starts twice, and none of it waits for long (a few
    /// `stat`s, one `open`, one `fork`/`exec`).
    fn spawn(&self, spec: &ContainerSpec) -> Result<u32, RuntimeError> {
        let mut containers = self.containers();
        if containers.contains_key(&spec.id) {
            return Err(RuntimeError::AlreadyExists(spec.id.clone()));
        }
        let program = match spec.command.first() {
            Some(p) if !p.is_empty() => p.clone(),
            _ => return Err(RuntimeError::NoCommand),
        };
        if let Some(dir) = &spec.working_dir {
            if !dir.is_dir() {
                return Err(RuntimeError::WorkingDir(dir.clone()));
            }
        }
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
        if let Some(network) = &self.inner.network {
            if network.ip_of(&spec.id.pod_uid).is_none() {
                return Err(RuntimeError::Network(format!(
                    "pod {} has no network yet (prepare_pod was not called)",
                    spec.id.pod_uid
                )));
            }
        }
        let log = super::fresh_log(&self.inner.data_dir, spec)?;
        let pipes = log_pipe::create(&self.inner.data_dir, spec)?;
        let (stdout, stderr, readers) = (pipes.stdout, pipes.stderr, pipes.readers);
        if !spec.mounts.is_empty() && !running_as_root() {
            return Err(RuntimeError::Mounts(
                "the process runtime mounts volumes in a private mount namespace, which needs root; run the agent as root or use a pod without volumes".into(),
            ));
        }
        let cgroup = self.cgroup_for(spec)?;
        let mut command = self.joined_command(&program, spec, cgroup.as_ref());
        command
            .args(&spec.command[1..])
            .args(&spec.args)
            .env_clear()
            .env("PATH", DEFAULT_PATH)
            .env("HOSTNAME", &spec.pod_name)
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            // Its own process group: a signal to the group reaches every process the container starts.
            .process_group(0)
            .kill_on_drop(false);
        if let Some(dir) = &spec.working_dir {
            command.current_dir(dir);
        }
        let spawned = command.spawn();
        if spawned.is_err() {
            if let Some(cgroup) = &cgroup {
                cgroup.remove();
            }
        }
        let mut child = spawned.map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => RuntimeError::CommandNotFound {
                command: program.clone(),
                path: path_var.to_string(),
            },
            std::io::ErrorKind::PermissionDenied => RuntimeError::PermissionDenied {
                command: program.clone(),
            },
            _ => RuntimeError::Spawn {
                command: program.clone(),
                source,
            },
        })?;
        let Some(pid) = child.id() else {
            return Err(RuntimeError::Spawn {
                command: program,
                source: std::io::Error::other("the process exited before it got a pid"),
            });
        };
        // Kept on disk while it runs, so that an agent restarted after a crash adopts it (see `recover`).
        // (No start time: it is already gone, and the reaper reports it.)
        if let Some(started) = adopt::start_time(pid) {
            if let Err(e) = adopt::save(&self.inner.data_dir, &Record::of(spec, pid, started)) {
                tracing::warn!(container = %spec.id, error = %e, "cannot record the container; a restarted agent will not adopt it");
            }
        }
        let (tx, rx) = watch::channel(None);
        let id = spec.id.clone();
        let reaped_cgroup = cgroup.clone();
        let data_dir = self.inner.data_dir.clone();
        let copier = tokio::spawn(log_pipe::copy(readers, log, self.log_limits()));
        tokio::spawn(async move {
            let exit = match child.wait().await {
                Ok(status) => Exit {
                    code: status.code(),
                    signal: status.signal(),
                    // Killed by the kernel, not by us: a SIGKILL while the cgroup counts an OOM kill.
                    oom_killed: status.signal() == Some(Signal::SIGKILL as i32)
                        && reaped_cgroup.as_ref().is_some_and(|c| c.oom_kills() > 0),
                },
                Err(e) => {
                    tracing::warn!(container = %id, error = %e, "cannot wait for the container's process");
                    Exit {
                        code: None,
                        signal: None,
                        oom_killed: false,
                    }
                }
            };
            // As when a container's init process exits: whatever it left running in its group goes too, and
            // (with a cgroup) whatever left the group.
            signal_group(pid, Signal::SIGKILL);
            for pid in reaped_cgroup.iter().flat_map(ContainerCgroup::pids) {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            // Its last output reaches the file before anyone hears it exited (`kubectl logs` right after).
            let _ = tokio::time::timeout(log_pipe::DRAIN, copier).await;
            adopt::forget(&data_dir, &id);
            let _ = tx.send(Some(exit));
        });
        containers.insert(
            spec.id.clone(),
            Entry {
                pid,
                exit: rx,
                spec: spec.clone(),
                cgroup,
            },
        );
        Ok(pid)
    }

    /// Takes over the containers recorded by an earlier run of the agent (see [`Runtime::recover`]): a recorded
    /// process that still runs (same pid, same start time) is watched by polling, as it is no longer our child; one
    /// that is gone is reported exited with its exit unknown. Records of containers this runtime knows already are
    /// left alone.
    fn adopt_recorded(&self) -> Vec<ContainerInfo> {
        let mut found = Vec::new();
        for record in adopt::load_all(&self.inner.data_dir) {
            let id = record.id();
            if self.containers().contains_key(&id) {
                continue;
            }
            let spec = record.spec();
            let alive = adopt::is_alive(&record);
            // The same directories as at its start (creating them again only rewrites the same limits).
            let cgroup = self.cgroup_for(&spec).unwrap_or_else(|e| {
                tracing::warn!(container = %id, error = %e, "cannot find the adopted container's cgroup");
                None
            });
            let pid = record.pid;
            let (tx, rx) = watch::channel(None);
            if alive {
                tracing::info!(container = %id, pid = record.pid, "adopted a running container");
                let (data_dir, cgroup, id) =
                    (self.inner.data_dir.clone(), cgroup.clone(), id.clone());
                // Its output goes on into the same log, through the same pipes.
                let copier = log_pipe::reopen(&data_dir, &spec).map(|readers| {
                    let log = log_path(
                        &data_dir,
                        &spec.pod_namespace,
                        &spec.pod_name,
                        &spec.id.pod_uid,
                        &spec.id.container,
                    );
                    tokio::spawn(log_pipe::copy(readers, log, self.log_limits()))
                });
                tokio::spawn(async move {
                    while adopt::is_alive(&record) {
                        tokio::time::sleep(adopt::ADOPTED_POLL).await;
                    }
                    if let Some(copier) = copier {
                        let _ = tokio::time::timeout(log_pipe::DRAIN, copier).await;
                    }
                    let exit = Exit {
                        oom_killed: cgroup.as_ref().is_some_and(|c| c.oom_kills() > 0),
                        ..Exit::UNKNOWN
                    };
                    signal_group(record.pid, Signal::SIGKILL);
                    for pid in cgroup.iter().flat_map(ContainerCgroup::pids) {
                        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                    adopt::forget(&data_dir, &id);
                    let _ = tx.send(Some(exit));
                });
            } else {
                tracing::info!(container = %id, pid, "a recorded container exited while the agent was away");
                adopt::forget(&self.inner.data_dir, &id);
                let _ = tx.send(Some(Exit::UNKNOWN));
            }
            let entry = Entry {
                pid,
                exit: rx,
                spec,
                cgroup,
            };
            found.push(info(&id, &entry));
            self.containers().insert(id, entry);
        }
        found
    }

    /// Whether a container of the pod runs.
    fn pod_runs(&self, pod_uid: &str) -> bool {
        self.containers()
            .iter()
            .any(|(id, e)| id.pod_uid == pod_uid && e.exit().is_none())
    }

    /// A command running `program` in the pod's network namespace (when it has one), in `cgroup` (when given) and
    /// in a private mount namespace holding `spec`'s mounts (when it has some): through [`JOIN_SCRIPT`] and
    /// [`super::mounts::wrapper`], or the program itself when there is nothing to join.
    fn joined_command(
        &self,
        program: &str,
        spec: &ContainerSpec,
        cgroup: Option<&ContainerCgroup>,
    ) -> tokio::process::Command {
        let pod_uid = &spec.id.pod_uid;
        let netns = self
            .inner
            .network
            .as_ref()
            .filter(|network| network.ip_of(pod_uid).is_some())
            .map(|network| (network.ip_tool().to_path_buf(), netns::netns_name(pod_uid)));
        let stage = super::pod_dir(
            &self.inner.data_dir,
            &spec.pod_namespace,
            &spec.pod_name,
            pod_uid,
        )
        .join("mount-stage");
        // Mounts first: `ip netns exec` makes its own mount namespace from the current one, keeping them.
        let mut chain = super::mounts::wrapper(&spec.mounts, &stage, SHELL);
        if let Some((ip, name)) = &netns {
            chain.push(ip.display().to_string());
            chain.extend(["netns".into(), "exec".into(), name.clone()]);
        }
        chain.push(program.to_string());
        if cgroup.is_none() {
            let mut command = tokio::process::Command::new(&chain[0]);
            command.args(&chain[1..]);
            return command;
        }
        let mut command = tokio::process::Command::new(SHELL);
        command.args(["-c", JOIN_SCRIPT, "navarch-join"]);
        command.args(cgroup.iter().flat_map(|c| c.procs_files()));
        command.arg("--");
        command.args(&chain);
        command
    }

    /// The container's cgroup with its limits written, when it has limits and the host lets us enforce them.
    fn cgroup_for(&self, spec: &ContainerSpec) -> Result<Option<ContainerCgroup>, RuntimeError> {
        if !spec.limits.any() {
            return Ok(None);
        }
        let Some(cgroups) = &self.inner.cgroups else {
            if !self.inner.warned_limits.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "not root or no memory cgroup on this host: container limits are not enforced"
                );
            }
            return Ok(None);
        };
        let name = format!("{}-{}", spec.id.container, spec.id.attempt);
        cgroups
            .create(&spec.id.pod_uid, &name, &spec.limits)
            .map(Some)
            .map_err(|source| RuntimeError::Cgroup {
                id: spec.id.clone(),
                source,
            })
    }
}

/// Whether the agent runs as root (owns `/proc/self`, as the kernel gives a process's entries its effective uid).
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Removes a cgroup, retrying while its killed processes are still on their way out.
async fn remove_cgroup(cgroup: &ContainerCgroup) {
    for _ in 0..CGROUP_REMOVE_TRIES {
        if cgroup.pids().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cgroup.remove();
}

/// Sends `signal` to the process group `pgid`; a group that is already gone is fine.
fn signal_group(pgid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pgid) else { return };
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pgid, %signal, error = %e, "cannot signal process group"),
    }
}

/// Whether `program` names an existing file: as a path when it holds a `/` (relative to `working_dir`), else by
/// a search of `path_var`.
fn program_exists(program: &str, path_var: &str, working_dir: Option<&Path>) -> bool {
    if program.contains('/') {
        let path = Path::new(program);
        let path = match working_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        };
        return path.is_file();
    }
    path_var
        .split(':')
        .filter(|dir| !dir.is_empty())
        .any(|dir| Path::new(dir).join(program).is_file())
}

#[async_trait::async_trait]
impl Runtime for ProcessRuntime {
    fn version(&self) -> String {
        VERSION.to_string()
    }

    async fn start(&self, spec: &ContainerSpec) -> Result<u32, RuntimeError> {
        self.spawn(spec)
    }

    async fn stop(
        &self,
        id: &ContainerId,
        signal: StopSignal,
        grace: Duration,
    ) -> Result<Exit, RuntimeError> {
        let (pid, mut rx) = self.lookup(id)?;
        if let Some(exit) = *rx.borrow() {
            return Ok(exit);
        }
        let first = match signal {
            StopSignal::Term => Signal::SIGTERM,
            StopSignal::Kill => Signal::SIGKILL,
        };
        signal_group(pid, first);
        if first != Signal::SIGKILL {
            if let Ok(Some(exit)) = tokio::time::timeout(grace, super::exit_of(&mut rx)).await {
                return Ok(exit);
            }
            tracing::info!(container = %id, ?grace, "container did not stop in its grace period; killing it");
            signal_group(pid, Signal::SIGKILL);
        }
        match tokio::time::timeout(KILL_WAIT, super::exit_of(&mut rx)).await {
            Ok(Some(exit)) => Ok(exit),
            _ => Err(RuntimeError::Stuck(id.clone())),
        }
    }

    async fn exec(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout: Duration,
    ) -> Result<super::ExecOutput, RuntimeError> {
        self.exec_in(id, command, timeout).await
    }

    async fn wait(&self, id: &ContainerId) -> Result<Exit, RuntimeError> {
        let (_, mut rx) = self.lookup(id)?;
        super::exit_of(&mut rx)
            .await
            .ok_or_else(|| RuntimeError::Stuck(id.clone()))
    }

    async fn status(&self, id: &ContainerId) -> Option<ContainerInfo> {
        self.containers().get(id).map(|e| info(id, e))
    }

    async fn list(&self) -> Vec<ContainerInfo> {
        self.containers()
            .iter()
            .map(|(id, e)| info(id, e))
            .collect()
    }

    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let removed = {
            let mut containers = self.containers();
            match containers.get(id) {
                None => return Err(RuntimeError::NotFound(id.clone())),
                Some(e) if e.exit().is_none() => {
                    return Err(RuntimeError::StillRunning(id.clone()))
                }
                Some(_) => containers.remove(id),
            }
        };
        if let Some(cgroup) = removed.and_then(|e| e.cgroup) {
            remove_cgroup(&cgroup).await;
        }
        Ok(())
    }

    async fn stop_all(&self, grace: Duration) {
        let running: Vec<ContainerId> = self
            .containers()
            .iter()
            .filter(|(_, e)| e.exit().is_none())
            .map(|(id, _)| id.clone())
            .collect();
        let stops = running.iter().map(|id| async move {
            if let Err(e) = self.stop(id, StopSignal::Term, grace).await {
                tracing::error!(container = %id, error = %e, "cannot stop container");
            }
        });
        futures::future::join_all(stops).await;
    }

    async fn recover(&self) -> Vec<ContainerInfo> {
        self.adopt_recorded()
    }

    async fn prepare_pod(&self, pod_uid: &str) -> Result<PodNetwork, RuntimeError> {
        let Some(network) = &self.inner.network else {
            return Ok(PodNetwork::default());
        };
        // An adopted pod keeps the namespace its containers run in (rebuilding it would cut them off).
        let kept = network.ip_of(pod_uid).filter(|_| {
            self.pod_runs(pod_uid)
                && Path::new(netns::NETNS_DIR)
                    .join(netns::netns_name(pod_uid))
                    .exists()
        });
        if let Some(ip) = kept {
            return Ok(PodNetwork {
                ip: Some(ip.into()),
            });
        }
        let ip = network
            .prepare(pod_uid)
            .await
            .map_err(|e| RuntimeError::Network(e.to_string()))?;
        Ok(PodNetwork {
            ip: Some(ip.into()),
        })
    }

    async fn release_pod(&self, pod_uid: &str) {
        if let Some(network) = &self.inner.network {
            network.release(pod_uid).await;
        }
        if let Some(cgroups) = &self.inner.cgroups {
            cgroups.remove_pod(pod_uid);
        }
    }

    async fn release_all_pods(&self) {
        let exited: Vec<(String, ContainerCgroup)> = self
            .containers()
            .iter()
            .filter(|(_, e)| e.exit().is_some())
            .filter_map(|(id, e)| Some((id.pod_uid.clone(), e.cgroup.clone()?)))
            .collect();
        for (pod_uid, cgroup) in exited {
            remove_cgroup(&cgroup).await;
            if let Some(cgroups) = &self.inner.cgroups {
                cgroups.remove_pod(&pod_uid);
            }
        }
        if let Some(network) = &self.inner.network {
            network.teardown().await;
        }
    }

    fn pod_cidr(&self) -> Option<String> {
        self.inner.network.as_ref().map(|n| n.cidr().to_string())
    }

    fn set_log_limits(&self, limits: LogLimits) {
        *self
            .inner
            .log_limits
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = limits;
    }
}

fn info(id: &ContainerId, entry: &Entry) -> ContainerInfo {
    ContainerInfo {
        id: id.clone(),
        pid: Some(entry.pid),
        state: match entry.exit() {
            Some(exit) => ContainerState::Exited(exit),
            None => ContainerState::Running,
        },
    }
}

#[path = "exec.rs"]
mod exec;

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "isolation_tests.rs"]
mod isolation_tests;

#[cfg(test)]
#[path = "adopt_tests.rs"]
mod adopt_tests;
