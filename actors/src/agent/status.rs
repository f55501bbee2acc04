//! A pod's status as the node agent reports it, built from its [`PodMachine`]: phase, conditions, container
//! statuses, IPs, start time; and how that status is merged into the stored pod. Pure.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::chrono::{DateTime, Utc};
use navarch_bus::api::{ApiError, Reason};
use serde_json::Value;

use super::container::{ContainerRun, RunState, Termination};
use super::lifecycle::PodMachine;
use crate::conditions;

/// The pod's phase, as the kubelet computes it: Pending while a container has never run; Running while one runs
/// or will restart; once all have stopped for good, Succeeded if all exited 0, else Failed. A pod being deleted
/// whose containers have all stopped is terminal too.
fn phase(m: &PodMachine) -> &'static str {
    if let Some(terminal) = m.terminal {
        return terminal;
    }
    let (inits, apps): (Vec<&ContainerRun>, Vec<&ContainerRun>) =
        m.containers.iter().partition(|c| c.init);
    // An init container terminated without success will not run again (restartPolicy Never).
    if inits
        .iter()
        .any(|c| matches!(&c.state, RunState::Terminated(t) if t.exit_code != 0))
    {
        return "Failed";
    }
    if !inits.iter().all(|c| c.init_done()) {
        return "Pending";
    }
    let never_ran = apps
        .iter()
        .any(|c| !matches!(c.state, RunState::Running { .. }) && c.latest_end().is_none());
    if apps.is_empty() || never_ran {
        return "Pending";
    }
    if apps
        .iter()
        .any(|c| matches!(c.state, RunState::Running { .. }))
    {
        return "Running";
    }
    let succeeded = apps
        .iter()
        .all(|c| c.latest_end().is_some_and(|t| t.exit_code == 0));
    let all_done = apps
        .iter()
        .all(|c| matches!(c.state, RunState::Terminated(_)));
    if !all_done {
        return "Running"; // some container is restarting or backing off
    }
    if succeeded {
        "Succeeded"
    } else {
        "Failed"
    }
}

fn terminated(t: &Termination) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: t.started_at.map(Time),
        finished_at: Some(Time(t.finished_at)),
        container_id: t.container_id.clone(),
    }
}

fn container_status(c: &ContainerRun) -> ContainerStatus {
    let (state, container_id) = match &c.state {
        RunState::Waiting { reason, message } => (
            ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..Default::default()
            },
            None,
        ),
        RunState::Starting => (
            ContainerState {
                waiting: Some(ContainerStateWaiting {
                    // kubectl shows an init container being created as `Init:N/M`, as the kubelet reports it.
                    reason: Some(
                        if c.init {
                            "PodInitializing"
                        } else {
                            "ContainerCreating"
                        }
                        .into(),
                    ),
                    message: None,
                }),
                ..Default::default()
            },
            None,
        ),
        RunState::Running {
            started_at,
            container_id,
            ..
        } => (
            ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(*started_at)),
                }),
                ..Default::default()
            },
            Some(container_id.clone()),
        ),
        RunState::Terminated(t) => (
            ContainerState {
                terminated: Some(terminated(t)),
                ..Default::default()
            },
            t.container_id.clone(),
        ),
    };
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: String::new(),
        container_id,
        // An init container counts as ready once it completed, as the kubelet reports it.
        ready: if c.init { c.init_done() } else { c.is_ready() },
        started: Some(c.is_started()),
        restart_count: i32::try_from(c.attempt).unwrap_or(i32::MAX),
        state: Some(state),
        last_state: Some(ContainerState {
            terminated: c.last.as_ref().map(terminated),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Records condition `type_` at `status`, keeping its transition time unless the status flipped; returns it.
fn transition(
    m: &mut PodMachine,
    type_: &'static str,
    status: bool,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match m.transitions.iter_mut().find(|(t, _, _)| *t == type_) {
        Some((_, s, since)) if *s == status => *since,
        Some(entry) => {
            *entry = (type_, status, now);
            now
        }
        None => {
            m.transitions.push((type_, status, now));
            now
        }
    }
}

fn condition(
    m: &mut PodMachine,
    type_: &'static str,
    status: bool,
    reason: Option<&str>,
    message: Option<&str>,
    now: DateTime<Utc>,
) -> PodCondition {
    let since = transition(m, type_, status, now);
    conditions::pod_condition(type_, status, reason, message, since)
}

/// The status the machine's pod has at `now`. Latches a terminal phase.
pub fn build(m: &mut PodMachine, now: DateTime<Utc>) -> PodStatus {
    let phase = phase(m);
    if matches!(phase, "Succeeded" | "Failed") {
        m.terminal = Some(phase);
    }
    let start = m.start_time.unwrap_or(now);
    let unready: Vec<&str> = m
        .containers
        .iter()
        .filter(|c| !c.init && !c.is_ready())
        .map(|c| c.name.as_str())
        .collect();
    let ready = unready.is_empty() && m.containers.iter().any(|c| !c.init);
    let incomplete: Vec<&str> = m
        .containers
        .iter()
        .filter(|c| c.init && !c.init_done())
        .map(|c| c.name.as_str())
        .collect();
    let (reason, message) = if m.terminal.is_some() {
        (Some("PodCompleted".to_string()), None)
    } else if ready {
        (None, None)
    } else {
        (
            Some("ContainersNotReady".to_string()),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let scheduled = conditions::pod_condition("PodScheduled", true, None, None, start);
    let initialized = if incomplete.is_empty() {
        let since = transition(m, "Initialized", true, start);
        conditions::pod_condition("Initialized", true, None, None, since)
    } else {
        let message = format!(
            "containers with incomplete status: [{}]",
            incomplete.join(" ")
        );
        let reason = "ContainersNotInitialized";
        condition(m, "Initialized", false, Some(reason), Some(&message), now)
    };
    let containers_ready = condition(
        m,
        "ContainersReady",
        ready,
        reason.as_deref(),
        message.as_deref(),
        now,
    );
    let pod_ready = condition(
        m,
        "Ready",
        ready,
        reason.as_deref(),
        message.as_deref(),
        now,
    );
    let ip = m.host_ip.clone();
    let pod_ip = m.pod_ip().to_string();
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(vec![scheduled, initialized, containers_ready, pod_ready]),
        container_statuses: Some(
            m.containers
                .iter()
                .filter(|c| !c.init)
                .map(container_status)
                .collect(),
        ),
        init_container_statuses: m.containers.iter().any(|c| c.init).then(|| {
            m.containers
                .iter()
                .filter(|c| c.init)
                .map(container_status)
                .collect()
        }),
        host_ip: Some(ip.clone()),
        host_ips: Some(vec![HostIP { ip }]),
        pod_ip: Some(pod_ip.clone()),
        pod_ips: Some(vec![PodIP { ip: pod_ip }]),
        start_time: Some(Time(start)),
        ..Default::default()
    }
}

/// `stored` (the pod object) with the agent's part of the status replaced by `ours`: phase, container statuses,
/// IPs, start time, and the conditions the agent owns (others, and fields like `qosClass`, stay). Refuses (409) a
/// pod whose uid is not `uid`.
pub fn merge(stored: Value, uid: &str, ours: &PodStatus) -> Result<Value, ApiError> {
    let mut pod: Pod = serde_json::from_value(stored).map_err(ApiError::internal)?;
    if pod.metadata.uid.as_deref() != Some(uid) {
        return Err(ApiError::new(
            Reason::Conflict,
            format!("pod uid changed (wanted {uid})"),
        ));
    }
    let status = pod.status.get_or_insert_with(Default::default);
    status.phase = ours.phase.clone();
    status.container_statuses = ours.container_statuses.clone();
    status.init_container_statuses = ours.init_container_statuses.clone();
    status.host_ip = ours.host_ip.clone();
    status.host_ips = ours.host_ips.clone();
    status.pod_ip = ours.pod_ip.clone();
    status.pod_ips = ours.pod_ips.clone();
    status.start_time = status
        .start_time
        .clone()
        .or_else(|| ours.start_time.clone());
    let list = status.conditions.get_or_insert_with(Vec::new);
    for c in ours.conditions.iter().flatten() {
        conditions::set(list, c.clone());
    }
    serde_json::to_value(&pod).map_err(ApiError::internal)
}
