//! The life of one pod on a node, as a state machine: `(state, event, now) -> commands`. Pure: the agent feeds it
//! what happened (assignment, process starts and exits, deletion, time passing) and carries out what it returns
//! (start or kill a container, report status, delete the pod object, forget the pod).
//!
//! Rules, as the kubelet's: init containers run one at a time, in order, each to success, before the app
//! containers (which wait as `PodInitializing`); a failed init container restarts (with the same back-off) unless
//! `restartPolicy` is Never, which fails the pod. A container whose configuration cannot be resolved waits as
//! `CreateContainerConfigError` and is tried again, without counting a restart. The app containers start together
//! once the pod is initialized; an exited container restarts per
//! `restartPolicy` (Always, OnFailure, Never): the first restart at once, then after a back-off of 10 s doubling
//! to 5 min (reset after 10 min of running), waiting as `CrashLoopBackOff` meanwhile; a pod being deleted gets
//! SIGTERM, then SIGKILL once its grace period is over, and its object is deleted once nothing runs; a pod whose
//! object disappeared is killed at once and forgotten. A running container's probes are sent when due (see
//! [`super::probe`]); one whose startup or liveness probe failed too often is stopped (its `preStop` hook, SIGTERM,
//! `terminationGracePeriodSeconds`, SIGKILL) and restarts per `restartPolicy` as if it had crashed. Every stop that
//! begins with SIGTERM runs the container's `preStop` hook first.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::chrono::{DateTime, Utc};

use super::container::{
    go_duration, ContainerRun, RunState, Termination, BACKOFF_INITIAL, BACKOFF_MAX, BACKOFF_RESET,
};
use super::probe::{Action, ProbeKind, Verdict};
use crate::runtime::StopSignal;

/// How long a container whose configuration could not be resolved waits before it is tried again (the kubelet
/// retries on its next pod sync).
pub const CONFIG_RETRY: Duration = Duration::from_secs(2);

#[path = "adopt.rs"]
pub mod adopt;
pub use adopt::Adopted;

/// Something that happened to the pod.
#[derive(Debug, Clone, PartialEq)]
pub enum PodEvent {
    /// The pod is bound to this node (its object as first seen).
    Assigned(Box<Pod>),
    /// A container's process started.
    Started {
        /// Container name.
        container: String,
        /// The run that started.
        attempt: u32,
        /// `<runtime>://<id>`, shown in the status.
        container_id: String,
    },
    /// A container could not be started.
    StartFailed {
        /// Container name.
        container: String,
        /// The run that failed.
        attempt: u32,
        /// Short reason (e.g. `CommandNotFound`).
        reason: String,
        /// What went wrong, for the user.
        message: String,
    },
    /// A container's main process exited.
    Exited {
        /// Container name.
        container: String,
        /// The run that exited.
        attempt: u32,
        /// Exit code (128 + signal when killed).
        exit_code: i32,
        /// The signal that killed it, if one did.
        signal: Option<i32>,
        /// The kernel killed it for going over its memory limit.
        oom_killed: bool,
    },
    /// The pod object got a deletionTimestamp: stop within `grace`.
    DeletionRequested {
        /// The grace period (`deletionGracePeriodSeconds`).
        grace: Duration,
    },
    /// The grace period is over: kill what still runs.
    GraceExpired,
    /// The pod object is gone from the store.
    ObjectGone,
    /// Time passed (back-offs and grace deadlines are checked).
    Tick,
    /// The last status report did not reach the store: report again.
    StatusWriteFailed,
    /// A container's configuration (env from ConfigMaps and Secrets, volumes) could not be resolved; it waits with
    /// `reason` and is tried again after [`CONFIG_RETRY`] without counting a restart.
    ConfigFailed {
        /// Container name.
        container: String,
        /// The run that could not start.
        attempt: u32,
        /// `CreateContainerConfigError`.
        reason: String,
        /// What is missing, in the kubelet's words (`configmap "x" not found`).
        message: String,
    },
    /// The pod is bound to this node and the agent, restarted, found some of its containers (see [`adopt`]).
    Adopted {
        /// The pod object as first seen.
        pod: Box<Pod>,
        /// Its containers the runtime found, to take as running.
        containers: Vec<Adopted>,
    },
    /// An adopted container's process is gone and how it ended is unknown.
    Lost {
        /// Container name.
        container: String,
        /// The run that is gone.
        attempt: u32,
    },
    /// A probe sent by [`Command::RunProbe`] finished.
    ProbeResult {
        /// Container name.
        container: String,
        /// The run it probed.
        attempt: u32,
        /// Which probe.
        kind: ProbeKind,
        /// Whether it passed.
        success: bool,
    },
}

/// Something the agent must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Start run `attempt` of a container.
    StartContainer {
        /// Container name.
        container: String,
        /// Run number.
        attempt: u32,
    },
    /// Stop run `attempt` of a container: `signal`, then SIGKILL after `grace`.
    KillContainer {
        /// Container name.
        container: String,
        /// Run number.
        attempt: u32,
        /// First signal.
        signal: StopSignal,
        /// Time between `signal` and SIGKILL.
        grace: Duration,
        /// The container's `preStop` hook, to run (within `grace`) before `signal`.
        pre_stop: Option<Action>,
        /// Why it is stopped, when not for the pod's deletion (the kubelet's `Killing` message, e.g. `Container
        /// main failed liveness probe, will be restarted`).
        reason: Option<String>,
    },
    /// Run a probe of run `attempt` of a container, within `timeout`, and feed back [`PodEvent::ProbeResult`].
    RunProbe {
        /// Container name.
        container: String,
        /// Run number.
        attempt: u32,
        /// Which probe.
        kind: ProbeKind,
        /// What it does (host filled in).
        action: Action,
        /// How long it may take; past that it failed.
        timeout: Duration,
    },
    /// Write this status to the pod object.
    ReportStatus(Box<PodStatus>),
    /// Delete the pod object (grace 0, if it still has `uid`).
    DeletePodObject {
        /// The pod's uid.
        uid: String,
    },
    /// Nothing of the pod runs and its object is gone: drop the machine.
    Forget,
}

/// The pod's life on this node. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct PodMachine {
    pub(super) pod: Option<Pod>,
    pub(super) containers: Vec<ContainerRun>,
    pub(super) start_time: Option<DateTime<Utc>>,
    pub(super) deadline: Option<DateTime<Utc>>,
    pub(super) object_gone: bool,
    delete_sent: bool,
    done: bool,
    /// Succeeded or Failed, once reached (a pod never leaves a terminal phase).
    pub(super) terminal: Option<&'static str>,
    /// Per condition type: its status and since when.
    pub(super) transitions: Vec<(&'static str, bool, DateTime<Utc>)>,
    reported: Option<PodStatus>,
    pub(super) host_ip: String,
    /// The pod's own IP, when it has one (else it shares the node's).
    pub(super) pod_ip: Option<String>,
}

impl PodMachine {
    /// A machine for a pod on the node whose IP is `host_ip`.
    pub fn new(host_ip: impl Into<String>) -> Self {
        Self {
            host_ip: host_ip.into(),
            ..Default::default()
        }
    }

    /// Gives the pod its own IP (its network namespace's) instead of the node's.
    pub fn set_pod_ip(&mut self, ip: impl Into<String>) {
        self.pod_ip = Some(ip.into());
    }

    /// The pod as assigned.
    pub fn pod(&self) -> Option<&Pod> {
        self.pod.as_ref()
    }

    /// The containers.
    pub fn containers(&self) -> &[ContainerRun] {
        &self.containers
    }

    /// The pod's IP: where its probes connect by default and what its status shows. Its network namespace's
    /// address when it has one, else the node's.
    pub fn pod_ip(&self) -> &str {
        self.pod_ip.as_deref().unwrap_or(&self.host_ip)
    }

    /// The pod's `terminationGracePeriodSeconds` (default 30).
    fn termination_grace(&self) -> Duration {
        let secs = self
            .pod
            .as_ref()
            .and_then(|p| p.spec.as_ref())
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        Duration::from_secs(u64::try_from(secs).unwrap_or(0))
    }

    /// Whether the machine is finished (it said [`Command::Forget`]).
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn restart_policy(&self) -> &str {
        self.pod
            .as_ref()
            .and_then(|p| p.spec.as_ref())
            .and_then(|s| s.restart_policy.as_deref())
            .unwrap_or("Always")
    }

    fn stopping(&self) -> bool {
        self.deadline.is_some() || self.object_gone
    }

    /// Handles `event` at `now`; returns what to do, in order.
    pub fn handle(&mut self, event: PodEvent, now: DateTime<Utc>) -> Vec<Command> {
        let mut commands = Vec::new();
        if self.done {
            return commands;
        }
        match event {
            PodEvent::Assigned(pod) => self.assign(*pod, now, &mut commands),
            PodEvent::Adopted { pod, containers } => {
                self.adopt(*pod, containers, now, &mut commands)
            }
            PodEvent::Lost { container, attempt } => {
                self.lost(&container, attempt, now, &mut commands)
            }
            PodEvent::Started {
                container,
                attempt,
                container_id,
            } => {
                if let Some(i) =
                    self.run_index(&container, attempt, |s| matches!(s, RunState::Starting))
                {
                    self.containers[i].state = RunState::Running {
                        started_at: now,
                        container_id,
                        stop_sent: None,
                    };
                    self.containers[i].probes.run_started(now);
                    if self.stopping() {
                        self.stop(i, now, &mut commands);
                    }
                }
            }
            PodEvent::StartFailed {
                container,
                attempt,
                reason,
                message,
            } => {
                if let Some(i) =
                    self.run_index(&container, attempt, |s| matches!(s, RunState::Starting))
                {
                    if let Some(waiting) = image_wait_reason(&reason) {
                        // The container never ran: no restart, the same run retries after a back-off (whatever
                        // the restart policy), the pod stays Pending.
                        self.image_failed(i, waiting, message, now);
                    } else {
                        let end = Termination {
                            exit_code: 128,
                            signal: None,
                            reason,
                            message: Some(message),
                            started_at: None,
                            finished_at: now,
                            container_id: None,
                        };
                        self.ended(i, end, now, &mut commands);
                    }
                }
            }
            PodEvent::Exited {
                container,
                attempt,
                exit_code,
                signal,
                oom_killed,
            } => {
                if let Some(i) = self.run_index(&container, attempt, |s| {
                    matches!(s, RunState::Starting | RunState::Running { .. })
                }) {
                    let (started_at, container_id) = match &self.containers[i].state {
                        RunState::Running {
                            started_at,
                            container_id,
                            ..
                        } => (Some(*started_at), Some(container_id.clone())),
                        _ => (None, None),
                    };
                    let end = Termination {
                        exit_code,
                        signal,
                        reason: match (oom_killed, exit_code) {
                            (true, _) => "OOMKilled",
                            (false, 0) => "Completed",
                            (false, _) => "Error",
                        }
                        .into(),
                        message: None,
                        started_at,
                        finished_at: now,
                        container_id,
                    };
                    self.ended(i, end, now, &mut commands);
                }
            }
            PodEvent::DeletionRequested { grace } => {
                let deadline = later(now, grace);
                if self.deadline.is_none_or(|d| deadline < d) {
                    self.deadline = Some(deadline);
                }
                for c in &mut self.containers {
                    c.retry_at = None; // no more restarts
                }
                for i in 0..self.containers.len() {
                    self.stop(i, now, &mut commands);
                }
            }
            PodEvent::GraceExpired => {
                self.deadline = Some(self.deadline.map_or(now, |d| d.min(now)));
                for i in 0..self.containers.len() {
                    self.stop(i, now, &mut commands);
                }
            }
            PodEvent::ObjectGone => {
                self.object_gone = true;
                self.deadline = Some(now);
                for i in 0..self.containers.len() {
                    self.stop(i, now, &mut commands);
                }
            }
            PodEvent::Tick => {
                if self.deadline.is_some_and(|d| d <= now) {
                    for i in 0..self.containers.len() {
                        self.stop(i, now, &mut commands);
                    }
                }
                if !self.stopping() && self.terminal.is_none() {
                    for i in 0..self.containers.len() {
                        let c = &self.containers[i];
                        if c.retry_at.is_some_and(|at| at <= now) {
                            if c.retry_same_attempt {
                                self.start(i, &mut commands);
                            } else {
                                self.restart(i, &mut commands);
                            }
                        }
                    }
                }
            }
            PodEvent::StatusWriteFailed => self.reported = None,
            PodEvent::ConfigFailed {
                container,
                attempt,
                reason,
                message,
            } => {
                if let Some(i) =
                    self.run_index(&container, attempt, |s| matches!(s, RunState::Starting))
                {
                    let c = &mut self.containers[i];
                    c.state = RunState::Waiting {
                        reason,
                        message: Some(message),
                    };
                    c.retry_same_attempt = true;
                    c.retry_at = Some(later(now, CONFIG_RETRY));
                }
            }
            PodEvent::ProbeResult {
                container,
                attempt,
                kind,
                success,
            } => {
                let probed = self.run_index(&container, attempt, |s| {
                    matches!(
                        s,
                        RunState::Running {
                            stop_sent: None,
                            ..
                        }
                    )
                });
                if let Some(i) = probed.filter(|_| !self.stopping()) {
                    if let Verdict::Kill { reason, grace } =
                        self.containers[i].probes.record(kind, success)
                    {
                        let grace = grace.unwrap_or_else(|| self.termination_grace());
                        self.kill_unhealthy(i, grace, reason, &mut commands);
                    }
                }
            }
        }
        self.send_probes(now, &mut commands);
        self.follow_up(now, &mut commands);
        commands
    }

    fn assign(&mut self, pod: Pod, now: DateTime<Utc>, commands: &mut Vec<Command>) {
        if self.pod.is_some() {
            return; // a pod's containers never change; image updates are a later issue
        }
        self.start_time = Some(now);
        let spec = pod.spec.as_ref();
        let inits = spec
            .into_iter()
            .flat_map(|s| s.init_containers.iter().flatten());
        let apps = spec.into_iter().flat_map(|s| s.containers.iter());
        self.containers = inits
            .map(ContainerRun::of_init)
            .chain(apps.map(ContainerRun::of))
            .collect();
        let already_deleting = pod.metadata.deletion_timestamp.is_some();
        self.pod = Some(pod);
        if already_deleting {
            self.deadline = Some(now); // nothing was started; nothing will be
            return;
        }
        self.start_next(commands);
    }

    /// Starts the first init container that has not completed, or, once all have, every app container; while
    /// init containers run, the app containers wait as `PodInitializing`.
    fn start_next(&mut self, commands: &mut Vec<Command>) {
        if let Some(i) = self
            .containers
            .iter()
            .position(|c| c.init && !c.init_done())
        {
            for c in self.containers.iter_mut().filter(|c| !c.init) {
                c.state = RunState::Waiting {
                    reason: "PodInitializing".into(),
                    message: None,
                };
            }
            if matches!(self.containers[i].state, RunState::Waiting { .. }) {
                self.start(i, commands);
            }
            return;
        }
        for i in 0..self.containers.len() {
            if !self.containers[i].init {
                self.start(i, commands);
            }
        }
    }

    /// The index of container `name` if its current run is `attempt` and its state passes `state_ok`.
    fn run_index(
        &self,
        name: &str,
        attempt: u32,
        state_ok: impl Fn(&RunState) -> bool,
    ) -> Option<usize> {
        self.containers
            .iter()
            .position(|c| c.name == name && c.attempt == attempt && state_ok(&c.state))
    }

    fn start(&mut self, i: usize, commands: &mut Vec<Command>) {
        let c = &mut self.containers[i];
        c.state = RunState::Starting;
        c.retry_at = None;
        c.retry_same_attempt = false;
        commands.push(Command::StartContainer {
            container: c.name.clone(),
            attempt: c.attempt,
        });
    }

    fn restart(&mut self, i: usize, commands: &mut Vec<Command>) {
        self.containers[i].attempt += 1;
        self.start(i, commands);
    }

    /// Sends the stop signal due at `now` to container `i` if it runs and has not had it yet.
    fn stop(&mut self, i: usize, now: DateTime<Utc>, commands: &mut Vec<Command>) {
        let left = self
            .deadline
            .map(|d| d.signed_duration_since(now).to_std().unwrap_or_default())
            .unwrap_or_default();
        let signal = if left.is_zero() {
            StopSignal::Kill
        } else {
            StopSignal::Term
        };
        self.send_stop(i, signal, left, None, commands);
    }

    /// Sends `signal` (with `grace` before SIGKILL) to container `i` if it runs and has had no stronger signal;
    /// the `preStop` hook goes with a first SIGTERM.
    fn send_stop(
        &mut self,
        i: usize,
        signal: StopSignal,
        grace: Duration,
        reason: Option<String>,
        commands: &mut Vec<Command>,
    ) {
        let pod_ip = self.pod_ip().to_string();
        let c = &mut self.containers[i];
        if let RunState::Running { stop_sent, .. } = &mut c.state {
            let stronger = match stop_sent {
                None => true,
                Some(StopSignal::Term) => signal == StopSignal::Kill,
                Some(StopSignal::Kill) => false,
            };
            if stronger {
                let pre_stop = match (signal, &stop_sent) {
                    (StopSignal::Term, None) => {
                        c.pre_stop.clone().map(|a| a.with_default_host(&pod_ip))
                    }
                    _ => None,
                };
                *stop_sent = Some(signal);
                commands.push(Command::KillContainer {
                    container: c.name.clone(),
                    attempt: c.attempt,
                    signal,
                    grace,
                    pre_stop,
                    reason,
                });
            }
        }
    }

    /// Container `i` failed its startup or liveness probe: stop it within `grace`; it restarts per
    /// `restartPolicy` once it has exited.
    fn kill_unhealthy(
        &mut self,
        i: usize,
        grace: Duration,
        reason: String,
        commands: &mut Vec<Command>,
    ) {
        let signal = if grace.is_zero() {
            StopSignal::Kill
        } else {
            StopSignal::Term
        };
        let why = format!(
            "Container {} {reason}, will be restarted",
            self.containers[i].name
        );
        self.send_stop(i, signal, grace, Some(why), commands);
    }

    /// Sends the probes due at `now` of the containers that run and are not being stopped.
    fn send_probes(&mut self, now: DateTime<Utc>, commands: &mut Vec<Command>) {
        if self.stopping() || self.terminal.is_some() {
            return;
        }
        let pod_ip = self.pod_ip().to_string();
        for c in &mut self.containers {
            if !matches!(
                c.state,
                RunState::Running {
                    stop_sent: None,
                    ..
                }
            ) {
                continue;
            }
            for due in c.probes.due(now) {
                commands.push(Command::RunProbe {
                    container: c.name.clone(),
                    attempt: c.attempt,
                    kind: due.kind,
                    action: due.action.with_default_host(&pod_ip),
                    timeout: due.timeout,
                });
            }
        }
    }

    /// Container `i`'s run ended: restart it (at once or after a back-off) or leave it terminated; an init container
    /// that succeeded lets the next one (or the app containers) start, one that failed restarts unless
    /// `restartPolicy` is Never (then the pod fails).
    fn ended(
        &mut self,
        i: usize,
        end: Termination,
        now: DateTime<Utc>,
        commands: &mut Vec<Command>,
    ) {
        let init = self.containers[i].init;
        let restart = !self.stopping()
            && self.terminal.is_none()
            && match self.restart_policy() {
                "Never" => false,
                _ if init => end.exit_code != 0,
                "OnFailure" => end.exit_code != 0,
                _ => true,
            };
        let pod_name = self.pod_ref();
        let c = &mut self.containers[i];
        c.probes.run_ended();
        if !restart {
            let succeeded = end.exit_code == 0;
            c.state = RunState::Terminated(end);
            if init && succeeded && !self.stopping() && self.terminal.is_none() {
                self.start_next(commands);
            }
            return;
        }
        let ran = end
            .started_at
            .and_then(|s| end.finished_at.signed_duration_since(s).to_std().ok())
            .unwrap_or_default();
        if ran >= BACKOFF_RESET {
            c.backoff = None;
        }
        c.last = Some(end);
        match c.backoff {
            None => {
                c.backoff = Some(BACKOFF_INITIAL);
                self.restart(i, commands);
            }
            Some(delay) => {
                c.backoff = Some((delay * 2).min(BACKOFF_MAX));
                c.retry_at = Some(later(now, delay));
                c.state = RunState::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(format!(
                        "back-off {} restarting failed container={} pod={pod_name}",
                        go_duration(delay),
                        c.name
                    )),
                };
            }
        }
    }

    /// Container `i` could not start for want of its image: it waits as `reason` with the failure's message and
    /// retries the same run after the next back-off.
    fn image_failed(&mut self, i: usize, reason: &str, message: String, now: DateTime<Utc>) {
        let c = &mut self.containers[i];
        let delay = c.backoff.unwrap_or(BACKOFF_INITIAL);
        c.backoff = Some((delay * 2).min(BACKOFF_MAX));
        c.retry_at = Some(later(now, delay));
        // The image is what failed, not the container: the same run tries again.
        c.retry_same_attempt = true;
        c.state = RunState::Waiting {
            reason: reason.into(),
            message: Some(message),
        };
    }

    /// `<name>_<namespace>(<uid>)`, as the kubelet names a pod in messages.
    fn pod_ref(&self) -> String {
        let meta = self.pod.as_ref().map(|p| &p.metadata);
        format!(
            "{}_{}({})",
            meta.and_then(|m| m.name.as_deref()).unwrap_or_default(),
            meta.and_then(|m| m.namespace.as_deref())
                .unwrap_or_default(),
            meta.and_then(|m| m.uid.as_deref()).unwrap_or_default()
        )
    }

    /// After every event: report a changed status, delete the object of a stopped pod being deleted, forget a
    /// stopped pod whose object is gone.
    fn follow_up(&mut self, now: DateTime<Utc>, commands: &mut Vec<Command>) {
        if self.pod.is_none() {
            return;
        }
        let active = self.containers.iter().any(ContainerRun::is_active);
        if self.object_gone {
            if !active {
                self.done = true;
                commands.push(Command::Forget);
            }
            return;
        }
        let status = super::status::build(self, now);
        if self.reported.as_ref() != Some(&status) {
            self.reported = Some(status.clone());
            commands.push(Command::ReportStatus(Box::new(status)));
        }
        if self.deadline.is_some() && !active && !self.delete_sent {
            self.delete_sent = true;
            let uid = self
                .pod
                .as_ref()
                .and_then(|p| p.metadata.uid.clone())
                .unwrap_or_default();
            commands.push(Command::DeletePodObject { uid });
        }
    }
}

/// `now + d`, saturating at the end of time (a grace period may be absurdly long; nothing may panic on it).
pub(super) fn later(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    k8s_openapi::chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// What a container whose start failed for want of its image waits as (the kubelet's reasons: a missing image
/// with `Never` stays `ErrImageNeverPull`, a failed pull backs off as `ImagePullBackOff`); None for other
/// failures.
pub fn image_wait_reason(reason: &str) -> Option<&'static str> {
    match reason {
        "ErrImageNeverPull" => Some("ErrImageNeverPull"),
        "ErrImagePull" | "ImagePullBackOff" => Some("ImagePullBackOff"),
        _ => None,
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "lifecycle_probe_tests.rs"]
mod probe_tests;

#[cfg(test)]
#[path = "lifecycle_init_tests.rs"]
mod init_tests;
