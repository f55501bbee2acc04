//! One container of a pod on a node: its runs, how the last one ended, its restart back-off, and what the
//! runtime needs to start it. Pure.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::chrono::{DateTime, Utc};

use super::config::{ConfigError, PodIps, Sources};
use super::probe::{Action, Probes};
use crate::informer::ObjectKey;
use crate::runtime::{ContainerId, ContainerSpec, StopSignal};

/// First back-off after a container failed again soon after a restart (kubelet's).
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
/// Longest back-off (kubelet's).
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long before exiting restarts without back-off (kubelet: twice the maximum).
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// How a container run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    /// Exit code (128 + signal when killed; 128 when it never started).
    pub exit_code: i32,
    /// Killing signal.
    pub signal: Option<i32>,
    /// `Completed`, `Error`, or why it did not start.
    pub reason: String,
    /// Details, when there are some.
    pub message: Option<String>,
    /// When it started (None: it never did).
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Its container id.
    pub container_id: Option<String>,
}

/// Where a container is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Not running and not being started (`ContainerCreating` before the first start, `CrashLoopBackOff` during a
    /// back-off).
    Waiting {
        /// Why.
        reason: String,
        /// Details.
        message: Option<String>,
    },
    /// A start was asked for; its outcome is awaited.
    Starting,
    /// Its process runs.
    Running {
        /// Since when.
        started_at: DateTime<Utc>,
        /// Its container id.
        container_id: String,
        /// The strongest stop signal sent so far.
        stop_sent: Option<StopSignal>,
    },
    /// It ended and will not restart.
    Terminated(Termination),
}

/// One container of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRun {
    /// Name.
    pub name: String,
    /// Image, as the pod names it.
    pub image: String,
    /// Where it is.
    pub state: RunState,
    /// Current run number (= restarts so far).
    pub attempt: u32,
    /// The previous run's end.
    pub last: Option<Termination>,
    /// The next back-off (None: restart at once).
    pub(super) backoff: Option<Duration>,
    /// When the current back-off ends.
    pub(super) retry_at: Option<DateTime<Utc>>,
    /// Its probes and what they found in the current run.
    pub(super) probes: Probes,
    /// Its `preStop` hook, run before it is sent SIGTERM.
    pub(super) pre_stop: Option<Action>,
    /// An init container: runs to completion, in order, before the app containers start.
    pub init: bool,
    /// The next start after `retry_at` repeats the current attempt (its configuration could not be resolved or
    /// its image could not be had; it never ran, so it is not a restart).
    pub(super) retry_same_attempt: bool,
}

impl ContainerRun {
    pub(super) fn new(name: String, image: String) -> Self {
        Self {
            name,
            image,
            state: RunState::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            attempt: 0,
            last: None,
            backoff: None,
            retry_at: None,
            probes: Probes::default(),
            pre_stop: None,
            init: false,
            retry_same_attempt: false,
        }
    }

    /// An init container of a pod spec (init containers have no probes or hooks).
    pub(super) fn of_init(c: &Container) -> Self {
        Self {
            init: true,
            // The kubelet's default waiting reason in a pod with init containers.
            state: RunState::Waiting {
                reason: "PodInitializing".into(),
                message: None,
            },
            ..Self::new(c.name.clone(), c.image.clone().unwrap_or_default())
        }
    }

    /// Whether it is an init container that completed successfully.
    pub fn init_done(&self) -> bool {
        self.init && matches!(&self.state, RunState::Terminated(t) if t.exit_code == 0)
    }

    /// A container of a pod spec, with its probes and hooks.
    pub(super) fn of(c: &Container) -> Self {
        Self {
            probes: Probes::of(c),
            pre_stop: c
                .lifecycle
                .as_ref()
                .and_then(|l| l.pre_stop.as_ref())
                .and_then(|h| Action::of_hook(h, c)),
            ..Self::new(c.name.clone(), c.image.clone().unwrap_or_default())
        }
    }

    /// Whether it runs and counts as started (`containerStatus.started`).
    pub fn is_started(&self) -> bool {
        matches!(self.state, RunState::Running { .. }) && self.probes.started()
    }

    /// Whether it runs and is ready (`containerStatus.ready`).
    pub fn is_ready(&self) -> bool {
        matches!(self.state, RunState::Running { .. }) && self.probes.ready()
    }

    /// Whether a process of it runs or may be about to.
    pub fn is_active(&self) -> bool {
        matches!(self.state, RunState::Starting | RunState::Running { .. })
    }

    /// Its latest end: the current one if terminated, else the previous run's.
    pub fn latest_end(&self) -> Option<&Termination> {
        match &self.state {
            RunState::Terminated(t) => Some(t),
            _ => self.last.as_ref(),
        }
    }
}

/// A duration as Go prints it (`10s`, `1m20s`, `5m0s`), as the kubelet's messages show it.
pub fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

/// The container `name` of `pod`, init or app.
pub fn find<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .find(|c| c.name == name)
}

/// What the runtime needs to start run `attempt` of `container` of `pod` (whose key is `key`): its environment
/// resolved from `sources` and `ips`, `$(VAR)` expanded in command and args, its volumes (host paths by volume name
/// in `volumes`) at their mount paths.
pub fn spec_for(
    pod: &Pod,
    key: &ObjectKey,
    container: &str,
    attempt: u32,
    config: (&Sources, &PodIps),
    volumes: &HashMap<String, PathBuf>,
) -> Result<ContainerSpec, ConfigError> {
    let (sources, ips) = config;
    let c = find(pod, container)
        .ok_or_else(|| ConfigError(format!("no container {container:?} in the pod")))?;
    let env = super::config::environment(pod, c, sources, ips)?;
    let lookup: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expand_all = |list: &Option<Vec<String>>| -> Vec<String> {
        list.iter()
            .flatten()
            .map(|s| super::config::expand(s, &lookup))
            .collect()
    };
    let (command, args) = (expand_all(&c.command), expand_all(&c.args));
    let mounts = super::volumes::mounts_for(c, volumes)?;
    Ok(ContainerSpec {
        id: ContainerId {
            pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
            container: container.to_string(),
            attempt,
        },
        pod_namespace: key.namespace.clone(),
        pod_name: key.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        pull_policy: crate::runtime::PullPolicy::for_image(
            c.image_pull_policy.as_deref(),
            c.image.as_deref().unwrap_or_default(),
        ),
        command,
        args,
        env,
        working_dir: c
            .working_dir
            .clone()
            .filter(|d| !d.is_empty())
            .map(Into::into),
        limits: limits(c),
        mounts,
    })
}

/// The container's `resources.limits` for memory and CPU.
fn limits(c: &k8s_openapi::api::core::v1::Container) -> crate::runtime::Limits {
    let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
    let get = |name: &str| limits.and_then(|l| l.get(name)).map(|q| q.0.as_str());
    crate::runtime::Limits::from_quantities(get("memory"), get("cpu"))
}
