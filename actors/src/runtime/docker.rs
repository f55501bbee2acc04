//! The Docker runtime: each pod is a sandbox container holding its network (and IPC) namespace, each of its
//! containers a Docker container joined to it, run through the Docker Engine API from images on the node.
//!
//! What to create for a container ([`container_config`]) and whether to pull ([`image_action`]) are pure; the
//! [`DockerRuntime`] carries them out and follows each container (its output into the log file, its exit).
//! Every container it creates is labelled [`MANAGED_LABEL`] and with the agent's data directory
//! ([`DATA_DIR_LABEL`]), so that agents sharing an engine only ever remove their own.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bollard::errors::Error as DockerError;
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, KillContainerOptions, ListContainersOptions,
    RemoveContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use tokio::sync::watch;

#[path = "docker_config.rs"]
mod config;
#[path = "docker_exec.rs"]
mod exec;
#[path = "docker_follow.rs"]
mod follow;

pub use config::*;

use super::{
    ContainerId, ContainerInfo, ContainerSpec, ContainerState, ExecOutput, Exit, PodNetwork,
    PullPolicy, Runtime, RuntimeError, StopSignal,
};

/// How long a pull may take before it counts as failed (there may be no registry at all).
const PULL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a killed container may take to be reported exited before it counts as stuck.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// How long the log of an exited container may take to reach its file.
const LOG_DRAIN: Duration = Duration::from_secs(5);

/// The engine's message of an error (its own text for server errors).
fn message(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn is_not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn engine(e: DockerError) -> RuntimeError {
    RuntimeError::Engine(message(&e))
}

struct Entry {
    docker_id: String,
    pid: u32,
    exit: watch::Receiver<Option<Exit>>,
}

impl Entry {
    fn exit(&self) -> Option<Exit> {
        *self.exit.borrow()
    }
}

/// A pod's sandbox.
#[derive(Clone)]
struct Sandbox {
    docker_id: String,
    ip: Option<IpAddr>,
}

struct Inner {
    docker: Docker,
    /// The engine's version (`docker version`).
    version: String,
    data_dir: PathBuf,
    sandbox_image: String,
    /// Known runs; an id maps to None while it is being started (so that it starts once).
    containers: Mutex<BTreeMap<ContainerId, Option<Entry>>>,
    sandboxes: tokio::sync::Mutex<HashMap<String, Sandbox>>,
    /// How large container logs grow.
    log_limits: Mutex<super::LogLimits>,
}

impl Drop for Inner {
    /// Last line of defence: containers and sandboxes still there when the runtime goes away are removed, from a
    /// thread of its own with a fresh engine connection (the tokio runtime may be shutting down).
    fn drop(&mut self) {
        let containers = self.containers.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut left: Vec<String> = containers
            .values()
            .flatten()
            .filter(|e| e.exit().is_none())
            .map(|e| e.docker_id.clone())
            .collect();
        left.extend(
            self.sandboxes
                .get_mut()
                .values()
                .map(|s| s.docker_id.clone()),
        );
        if left.is_empty() {
            return;
        }
        tracing::warn!(
            count = left.len(),
            "Docker runtime dropped with containers left; removing them"
        );
        let removal = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let Ok(docker) = Docker::connect_with_local_defaults() else {
                    return;
                };
                let Ok(docker) = docker.negotiate_version().await else {
                    return;
                };
                for docker_id in left {
                    let options = RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    };
                    let _ = docker.remove_container(&docker_id, Some(options)).await;
                }
            });
        });
        let _ = removal.join();
    }
}

/// Runs containers through the Docker Engine, one sandbox container per pod holding its network, with each
/// container's output copied into its log file.
///
/// Cheap to clone; clones share the containers.
#[derive(Clone)]
pub struct DockerRuntime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime")
            .field("data_dir", &self.inner.data_dir)
            .finish()
    }
}

impl DockerRuntime {
    /// Connects to the local engine (`DOCKER_HOST` or `/var/run/docker.sock`) and checks that it answers; log
    /// files go under `data_dir`, sandboxes run [`DEFAULT_SANDBOX_IMAGE`].
    pub async fn connect(data_dir: impl Into<PathBuf>) -> Result<Self, RuntimeError> {
        let docker = Docker::connect_with_local_defaults().map_err(engine)?;
        // The engine may be older than the client: speak its version.
        let docker = docker.negotiate_version().await.map_err(engine)?;
        let version = docker.version().await.map_err(engine)?;
        let runtime = Self {
            inner: Arc::new(Inner {
                docker,
                version: version.version.unwrap_or_else(|| "unknown".into()),
                data_dir: data_dir.into(),
                sandbox_image: DEFAULT_SANDBOX_IMAGE.to_string(),
                containers: Mutex::new(BTreeMap::new()),
                sandboxes: tokio::sync::Mutex::new(HashMap::new()),
                log_limits: Mutex::new(super::LogLimits::default()),
            }),
        };
        // An agent does not adopt containers: whatever an earlier run with this data directory left behind (it
        // crashed or was killed) is removed before new pods start.
        for docker_id in runtime.own_containers(MANAGED_LABEL).await? {
            tracing::info!(container = %docker_id, "removing a container left by an earlier run of this agent");
            runtime.remove_container(&docker_id).await?;
        }
        Ok(runtime)
    }

    /// The directory holding the log files.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    fn docker(&self) -> &Docker {
        &self.inner.docker
    }

    fn containers(&self) -> MutexGuard<'_, BTreeMap<ContainerId, Option<Entry>>> {
        self.inner
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn lookup(
        &self,
        id: &ContainerId,
    ) -> Result<(String, watch::Receiver<Option<Exit>>), RuntimeError> {
        match self.containers().get(id) {
            Some(Some(e)) => Ok((e.docker_id.clone(), e.exit.clone())),
            _ => Err(RuntimeError::NotFound(id.clone())),
        }
    }

    /// Makes sure the image is on the node, as its pull policy says.
    async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<(), RuntimeError> {
        let present = match self.docker().inspect_image(image).await {
            Ok(_) => true,
            Err(e) if is_not_found(&e) => false,
            Err(e) => return Err(engine(e)),
        };
        match image_action(policy, present) {
            ImageAction::UseLocal => Ok(()),
            ImageAction::NeverPull => Err(RuntimeError::ImageNeverPull {
                image: image.to_string(),
            }),
            ImageAction::Pull { fall_back } => match self.pull(image).await {
                Ok(()) => Ok(()),
                Err(message) if fall_back => {
                    tracing::warn!(image, error = %message, "cannot pull image; using the node's copy");
                    Ok(())
                }
                Err(message) => Err(RuntimeError::ImagePull {
                    image: image.to_string(),
                    message,
                }),
            },
        }
    }

    /// Pulls `image`, for at most [`PULL_TIMEOUT`].
    async fn pull(&self, image: &str) -> Result<(), String> {
        let options = CreateImageOptions {
            from_image: Some(image.to_string()),
            ..Default::default()
        };
        let mut progress = self.docker().create_image(Some(options), None, None);
        let pulled = async {
            while let Some(step) = progress.next().await {
                step.map_err(|e| message(&e))?;
            }
            Ok(())
        };
        tokio::time::timeout(PULL_TIMEOUT, pulled)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {PULL_TIMEOUT:?}")))
    }

    /// Removes a container whatever its state; one already gone is fine.
    async fn remove_container(&self, docker_id: &str) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        match self
            .docker()
            .remove_container(docker_id, Some(options))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    /// The ids of this agent's containers carrying `label` (`key=value`, or a key alone).
    async fn own_containers(&self, label: &str) -> Result<Vec<String>, RuntimeError> {
        let data_dir = format!("{DATA_DIR_LABEL}={}", self.inner.data_dir.to_string_lossy());
        let filters = HashMap::from([("label".to_string(), vec![data_dir, label.to_string()])]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let listed = self
            .docker()
            .list_containers(Some(options))
            .await
            .map_err(engine)?;
        Ok(listed.into_iter().filter_map(|c| c.id).collect())
    }

    /// Everything of `start` once the id is reserved.
    async fn create_and_start(
        &self,
        spec: &ContainerSpec,
    ) -> Result<(String, u32, watch::Receiver<Option<Exit>>), RuntimeError> {
        let sandbox = self
            .inner
            .sandboxes
            .lock()
            .await
            .get(&spec.id.pod_uid)
            .cloned()
            .ok_or_else(|| {
                RuntimeError::Network(format!(
                    "pod {} has no sandbox (prepare_pod did not succeed)",
                    spec.id.pod_uid
                ))
            })?;
        self.ensure_image(&spec.image, spec.pull_policy).await?;
        let log = self.open_log(spec).await?;
        let name = container_name(&spec.id);
        // A container of that name is left from an agent that stopped without cleaning up: it is not ours.
        self.remove_container(&name).await?;
        let options = CreateContainerOptions {
            name: Some(name),
            ..Default::default()
        };
        let config = container_config(spec, &sandbox.docker_id, &self.inner.data_dir);
        let created = self
            .docker()
            .create_container(Some(options), config)
            .await
            .map_err(|e| RuntimeError::CreateContainer {
                id: spec.id.clone(),
                message: message(&e),
            })?;
        let docker_id = created.id;
        if let Err(e) = self.docker().start_container(&docker_id, None).await {
            let _ = self.remove_container(&docker_id).await;
            return Err(RuntimeError::RunContainer {
                id: spec.id.clone(),
                message: message(&e),
            });
        }
        let inspected = match self.docker().inspect_container(&docker_id, None).await {
            Ok(inspected) => inspected,
            Err(e) => {
                // Untracked, it would run on unseen: take it down again.
                let _ = self.remove_container(&docker_id).await;
                return Err(engine(e));
            }
        };
        let pid = inspected
            .state
            .and_then(|s| s.pid)
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0);
        let limits = self.log_limits();
        let (tx, rx) = watch::channel(None);
        // The task holds the engine client, not the runtime: dropping the runtime must not wait for containers.
        let docker = self.docker().clone();
        let followed = docker_id.clone();
        let id = spec.id.clone();
        tokio::spawn(async move {
            let logs = tokio::spawn(follow::copy_logs(
                docker.clone(),
                followed.clone(),
                log,
                limits,
            ));
            let exit = follow::follow_exit(&docker, &followed, &id).await;
            // The log stream ends with the container; give it a moment to reach the file.
            let _ = tokio::time::timeout(LOG_DRAIN, logs).await;
            let _ = tx.send(Some(exit));
        });
        Ok((docker_id, pid, rx))
    }

    /// The path of a fresh log for this run, the last run's kept as the previous one.
    async fn open_log(&self, spec: &ContainerSpec) -> Result<std::path::PathBuf, RuntimeError> {
        let (dir, spec) = (self.inner.data_dir.clone(), spec.clone());
        tokio::task::spawn_blocking(move || super::fresh_log(&dir, &spec))
            .await
            .map_err(|e| RuntimeError::Engine(format!("opening the log file failed: {e}")))?
    }

    fn log_limits(&self) -> super::LogLimits {
        *self
            .inner
            .log_limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    async fn kill(&self, docker_id: &str) -> Result<(), RuntimeError> {
        let options = KillContainerOptions {
            signal: "SIGKILL".into(),
        };
        match self.docker().kill_container(docker_id, Some(options)).await {
            Ok(()) => Ok(()),
            // 409: it is not running any more.
            Err(DockerError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    /// Creates and starts the pod's sandbox; returns its id and IP on the engine's default bridge.
    async fn create_sandbox(&self, pod_uid: &str) -> Result<Sandbox, RuntimeError> {
        let name = sandbox_name(pod_uid);
        let image = &self.inner.sandbox_image;
        self.ensure_image(image, PullPolicy::IfNotPresent)
            .await
            .map_err(|e| {
                RuntimeError::Network(format!(
                    "sandbox image: {e} (deploy/build-busybox-image.sh builds it)"
                ))
            })?;
        self.remove_container(&name).await?;
        let config = sandbox_config(image, &self.inner.data_dir, pod_uid);
        let options = CreateContainerOptions {
            name: Some(name),
            ..Default::default()
        };
        let network = |e: DockerError| RuntimeError::Network(format!("sandbox: {}", message(&e)));
        let docker_id = self
            .docker()
            .create_container(Some(options), config)
            .await
            .map_err(network)?
            .id;
        if let Err(e) = self.docker().start_container(&docker_id, None).await {
            let _ = self.remove_container(&docker_id).await;
            return Err(network(e));
        }
        let inspected = match self.docker().inspect_container(&docker_id, None).await {
            Ok(inspected) => inspected,
            Err(e) => {
                let _ = self.remove_container(&docker_id).await;
                return Err(network(e));
            }
        };
        let ip = inspected
            .network_settings
            .and_then(|n| n.networks)
            .into_iter()
            .flat_map(|networks| networks.into_values())
            .filter_map(|endpoint| endpoint.ip_address)
            .find_map(|ip| ip.parse::<IpAddr>().ok());
        Ok(Sandbox { docker_id, ip })
    }
}

#[async_trait::async_trait]
impl Runtime for DockerRuntime {
    fn set_log_limits(&self, limits: super::LogLimits) {
        *self
            .inner
            .log_limits
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = limits;
    }

    fn version(&self) -> String {
        format!("docker://{}", self.inner.version)
    }

    async fn start(&self, spec: &ContainerSpec) -> Result<u32, RuntimeError> {
        {
            let mut containers = self.containers();
            if containers.contains_key(&spec.id) {
                return Err(RuntimeError::AlreadyExists(spec.id.clone()));
            }
            containers.insert(spec.id.clone(), None);
        }
        match self.create_and_start(spec).await {
            Ok((docker_id, pid, exit)) => {
                let entry = Entry {
                    docker_id,
                    pid,
                    exit,
                };
                self.containers().insert(spec.id.clone(), Some(entry));
                Ok(pid)
            }
            Err(e) => {
                self.containers().remove(&spec.id);
                Err(e)
            }
        }
    }

    async fn stop(
        &self,
        id: &ContainerId,
        signal: StopSignal,
        grace: Duration,
    ) -> Result<Exit, RuntimeError> {
        let (docker_id, mut rx) = self.lookup(id)?;
        if let Some(exit) = *rx.borrow() {
            return Ok(exit);
        }
        match signal {
            StopSignal::Kill => self.kill(&docker_id).await?,
            StopSignal::Term => {
                // The engine sends SIGTERM, waits `t` seconds, then SIGKILL.
                let t = i32::try_from(grace.as_secs() + u64::from(grace.subsec_nanos() > 0))
                    .unwrap_or(i32::MAX);
                let options = StopContainerOptions {
                    t: Some(t),
                    signal: None,
                };
                let stopped = self.docker().stop_container(&docker_id, Some(options));
                match tokio::time::timeout(grace + KILL_WAIT, stopped).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) if is_not_found(&e) => {}
                    Ok(Err(DockerError::DockerResponseServerError {
                        status_code: 304, ..
                    })) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(container = %id, error = %e, "stop failed; killing the container");
                        self.kill(&docker_id).await?;
                    }
                    Err(_) => self.kill(&docker_id).await?,
                }
            }
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
    ) -> Result<ExecOutput, RuntimeError> {
        self.exec_in(id, command, timeout).await
    }

    async fn wait(&self, id: &ContainerId) -> Result<Exit, RuntimeError> {
        let (_, mut rx) = self.lookup(id)?;
        super::exit_of(&mut rx)
            .await
            .ok_or_else(|| RuntimeError::Stuck(id.clone()))
    }

    async fn status(&self, id: &ContainerId) -> Option<ContainerInfo> {
        self.containers()
            .get(id)
            .and_then(Option::as_ref)
            .map(|e| info(id, e))
    }

    async fn list(&self) -> Vec<ContainerInfo> {
        self.containers()
            .iter()
            .filter_map(|(id, e)| Some(info(id, e.as_ref()?)))
            .collect()
    }

    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let docker_id = {
            let mut containers = self.containers();
            match containers.get(id) {
                Some(Some(e)) if e.exit().is_none() => {
                    return Err(RuntimeError::StillRunning(id.clone()))
                }
                Some(Some(e)) => {
                    let docker_id = e.docker_id.clone();
                    containers.remove(id);
                    docker_id
                }
                _ => return Err(RuntimeError::NotFound(id.clone())),
            }
        };
        self.remove_container(&docker_id).await
    }

    async fn stop_all(&self, grace: Duration) {
        let running: Vec<ContainerId> = self
            .containers()
            .iter()
            .filter(|(_, e)| e.as_ref().is_some_and(|e| e.exit().is_none()))
            .map(|(id, _)| id.clone())
            .collect();
        let stops = running.iter().map(|id| async move {
            if let Err(e) = self.stop(id, StopSignal::Term, grace).await {
                tracing::error!(container = %id, error = %e, "cannot stop container");
            }
        });
        futures::future::join_all(stops).await;
    }

    async fn prepare_pod(&self, pod_uid: &str) -> Result<PodNetwork, RuntimeError> {
        let mut sandboxes = self.inner.sandboxes.lock().await;
        if let Some(sandbox) = sandboxes.get(pod_uid) {
            return Ok(PodNetwork { ip: sandbox.ip });
        }
        let sandbox = self.create_sandbox(pod_uid).await?;
        let ip = sandbox.ip;
        sandboxes.insert(pod_uid.to_string(), sandbox);
        Ok(PodNetwork { ip })
    }

    async fn release_pod(&self, pod_uid: &str) {
        let sandbox = self.inner.sandboxes.lock().await.remove(pod_uid);
        let label = format!("{POD_UID_LABEL}={pod_uid}");
        let mut left = match self.own_containers(&label).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(pod = pod_uid, error = %e, "cannot list the pod's containers");
                Vec::new()
            }
        };
        left.extend(sandbox.map(|s| s.docker_id));
        for docker_id in left {
            if let Err(e) = self.remove_container(&docker_id).await {
                tracing::warn!(pod = pod_uid, error = %e, "cannot remove container");
            }
        }
        self.containers().retain(|id, e| {
            id.pod_uid != pod_uid || e.as_ref().is_some_and(|e| e.exit().is_none())
        });
    }

    async fn release_all_pods(&self) {
        let uids: Vec<String> = self.inner.sandboxes.lock().await.keys().cloned().collect();
        for uid in uids {
            self.release_pod(&uid).await;
        }
        // And whatever is left of this agent's (e.g. from a start cut short).
        match self.own_containers(MANAGED_LABEL).await {
            Ok(ids) => {
                for docker_id in ids {
                    if let Err(e) = self.remove_container(&docker_id).await {
                        tracing::warn!(error = %e, "cannot remove container");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list the agent's containers"),
        }
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

#[cfg(test)]
#[path = "docker_tests.rs"]
mod tests;
