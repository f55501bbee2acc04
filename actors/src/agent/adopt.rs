//! A pod taken over by an agent restarted on its node: which of the containers the runtime found are the pod's, and
//! how the pod's machine starts from them and from the status the pod last reported instead of from scratch. Pure.
//!
//! As the kubelet after a restart: a container found running is adopted as it is (same run, same restart count, no
//! new process); one found exited, whose exit status was lost, ends as `ContainerStatusUnknown` with exit code 137
//! and restarts per `restartPolicy`; one not found starts, its restart count continuing from the reported status
//! (one more when it had run, since that run is over); one reported terminated for good stays so.

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};
use k8s_openapi::chrono::{DateTime, Utc};

use super::{later, Command, PodMachine};
use crate::agent::container::{ContainerRun, RunState, Termination};
use crate::runtime::ContainerId;

/// The reason a container whose exit status was lost ends with (the kubelet's).
pub const LOST_REASON: &str = "ContainerStatusUnknown";

/// The exit code it ends with (the kubelet's for a lost container).
pub const LOST_EXIT_CODE: i32 = 137;

/// One container of the pod the runtime found when the agent started; the machine takes it as running and the
/// agent watches it (an adopted container that had already exited is reported [`super::PodEvent::Lost`] at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    /// Container name.
    pub container: String,
    /// Its run (= restart count).
    pub attempt: u32,
    /// `<runtime>://<id>`, shown in the status.
    pub container_id: String,
}

/// Splits the containers found for `pod` into the ones to adopt (the latest run of each container of its spec) and
/// the ones to stop and remove (older runs, containers the spec does not have).
pub fn choose(pod: &Pod, found: &[ContainerId]) -> (Vec<ContainerId>, Vec<ContainerId>) {
    let names: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| c.name.as_str())
        .collect();
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let (mut keep, mut drop): (Vec<ContainerId>, Vec<ContainerId>) = (Vec::new(), Vec::new());
    for id in found {
        let latest = found
            .iter()
            .filter(|o| o.pod_uid == id.pod_uid && o.container == id.container)
            .all(|o| o.attempt <= id.attempt);
        if id.pod_uid == uid && names.contains(&id.container.as_str()) && latest {
            keep.push(id.clone());
        } else {
            drop.push(id.clone());
        }
    }
    (keep, drop)
}

impl PodMachine {
    /// Seeds the machine with `pod` and the containers adopted for it (see the module docs); a pod already being
    /// deleted gets its stop signals at once and starts nothing.
    pub(super) fn adopt(
        &mut self,
        pod: Pod,
        adopted: Vec<Adopted>,
        now: DateTime<Utc>,
        commands: &mut Vec<Command>,
    ) {
        if self.pod.is_some() {
            return;
        }
        let status = pod.status.as_ref();
        self.start_time = Some(
            status
                .and_then(|s| s.start_time.as_ref())
                .map_or(now, |t| t.0),
        );
        let reported: Vec<ContainerStatus> = status
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        self.containers = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .map(ContainerRun::of)
            .collect();
        let deleting = pod.metadata.deletion_timestamp.is_some().then(|| {
            let secs = pod.metadata.deletion_grace_period_seconds.unwrap_or(30);
            std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0))
        });
        self.pod = Some(pod);
        let mut to_start = Vec::new();
        for (i, c) in self.containers.iter_mut().enumerate() {
            let report = reported.iter().find(|s| s.name == c.name);
            c.last = report
                .and_then(|s| s.last_state.as_ref())
                .and_then(|s| s.terminated.as_ref())
                .map(|t| termination_of(t, now));
            let restarts = report.map_or(0, |s| u32::try_from(s.restart_count).unwrap_or(0));
            if let Some(a) = adopted.iter().find(|a| a.container == c.name) {
                // Still the run the report shows: it keeps its start time.
                let started_at = report
                    .filter(|s| s.container_id.as_deref() == Some(a.container_id.as_str()))
                    .and_then(|s| s.state.as_ref())
                    .and_then(|s| s.running.as_ref())
                    .and_then(|r| r.started_at.as_ref())
                    .map_or(now, |t| t.0);
                c.attempt = a.attempt;
                c.state = RunState::Running {
                    started_at,
                    container_id: a.container_id.clone(),
                    stop_sent: None,
                };
                c.probes.run_started(started_at);
                continue;
            }
            let state = report.and_then(|s| s.state.as_ref());
            if let Some(ended) = state.and_then(|s| s.terminated.as_ref()) {
                c.attempt = restarts;
                c.state = RunState::Terminated(termination_of(ended, now));
                continue;
            }
            let ran = state.is_some_and(|s| s.running.is_some()) || c.last.is_some();
            c.attempt = if ran {
                restarts.saturating_add(1)
            } else {
                restarts
            };
            to_start.push(i);
        }
        if let Some(grace) = deleting {
            self.deadline = Some(later(now, grace));
            for i in 0..self.containers.len() {
                self.stop(i, now, commands);
            }
            return;
        }
        for i in to_start {
            self.start(i, commands);
        }
    }

    /// An adopted container's process is gone and how it ended is unknown: it ends as the kubelet ends a lost
    /// container, and restarts per `restartPolicy`.
    pub(super) fn lost(
        &mut self,
        container: &str,
        attempt: u32,
        now: DateTime<Utc>,
        commands: &mut Vec<Command>,
    ) {
        let Some(i) = self.run_index(container, attempt, |s| {
            matches!(s, RunState::Running { .. })
        }) else {
            return;
        };
        let RunState::Running {
            started_at,
            container_id,
            ..
        } = &self.containers[i].state
        else {
            return;
        };
        let end = Termination {
            exit_code: LOST_EXIT_CODE,
            signal: None,
            reason: LOST_REASON.into(),
            message: Some(
                "the container's process ended while no agent watched it or after it was adopted; its exit \
                 status is unknown"
                    .into(),
            ),
            started_at: Some(*started_at),
            finished_at: now,
            container_id: Some(container_id.clone()),
        };
        self.ended(i, end, now, commands);
    }
}

/// A termination as the pod's status reported it.
fn termination_of(t: &ContainerStateTerminated, now: DateTime<Utc>) -> Termination {
    Termination {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: t.reason.clone().unwrap_or_default(),
        message: t.message.clone(),
        started_at: t.started_at.as_ref().map(|s| s.0),
        finished_at: t.finished_at.as_ref().map_or(now, |f| f.0),
        container_id: t.container_id.clone(),
    }
}

#[cfg(test)]
#[path = "adopt_tests.rs"]
mod tests;
