//! The kubelet's Events about pods (Pulled, Created, Started, Killing, Unhealthy, BackOff, Failed, FailedMount),
//! recorded off the pod lifecycle's path: the agent hands each to [`PodEvents::emit`], which never waits; a task
//! writes them through the deduplicating [`EventRecorder`] (a repeat bumps `count`).
//!
//! Bounded three ways, so a crash-looping container cannot flood the store: repeats are counted, not added; each
//! pod may write [`SPAM_BURST`] events and then one per [`SPAM_REFILL`] (client-go's
//! `EventSourceObjectSpamFilter`); and at most [`QUEUE`] wait to be written (more are dropped, with a debug line).
//! What each Event says is decided by the pure functions here; [`SpamFilter`] is pure too.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodStatus};
use navarch_bus::api::Objects;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::events::{EventRecorder, EventType};

/// Events one pod may write at once (client-go's spam filter burst).
pub const SPAM_BURST: f64 = 25.0;

/// After the burst, one more event per pod per this long (client-go: a refill of 1/300 per second).
pub const SPAM_REFILL: Duration = Duration::from_secs(300);

/// Events waiting to be written, at most.
pub const QUEUE: usize = 1024;

/// The component the kubelet records as.
const COMPONENT: &str = "kubelet";

/// An Event about a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// The object: the pod, with `fieldPath` naming the container.
    pub regarding: ObjectReference,
    /// Normal or Warning.
    pub type_: EventType,
    /// The kubelet's reason.
    pub reason: &'static str,
    /// The kubelet's message.
    pub message: String,
}

/// The pod (and its container's `fieldPath`, when `container` is given) as an Event's `involvedObject`.
pub fn regarding(pod: &Pod, container: Option<&str>) -> ObjectReference {
    let init = |name: &str| {
        pod.spec
            .as_ref()
            .is_some_and(|s| s.init_containers.iter().flatten().any(|c| c.name == name))
    };
    let field_path = container.map(|name| {
        if init(name) {
            format!("spec.initContainers{{{name}}}")
        } else {
            format!("spec.containers{{{name}}}")
        }
    });
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        field_path,
        ..Default::default()
    }
}

fn note(
    pod: &Pod,
    container: &str,
    type_: EventType,
    reason: &'static str,
    message: String,
) -> Note {
    Note {
        regarding: regarding(pod, Some(container)),
        type_,
        reason,
        message,
    }
}

fn image_of(pod: &Pod, container: &str) -> String {
    pod.spec
        .iter()
        .flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
        })
        .find(|c| c.name == container)
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// A container started: Pulled (the node has its image: the process runtime never pulls), Created, Started.
pub fn started(pod: &Pod, container: &str) -> Vec<Note> {
    let image = image_of(pod, container);
    vec![
        note(
            pod,
            container,
            EventType::Normal,
            "Pulled",
            format!("Container image \"{image}\" already present on machine"),
        ),
        note(
            pod,
            container,
            EventType::Normal,
            "Created",
            format!("Created container {container}"),
        ),
        note(
            pod,
            container,
            EventType::Normal,
            "Started",
            format!("Started container {container}"),
        ),
    ]
}

/// A container could not start.
pub fn start_failed(pod: &Pod, container: &str, message: &str) -> Note {
    note(
        pod,
        container,
        EventType::Warning,
        "Failed",
        format!("Error: {message}"),
    )
}

/// A container's configuration could not be resolved: FailedMount when what is missing backs one of the pod's
/// volumes (`configmap "x" not found` for a configMap volume of x), else Failed.
pub fn config_failed(pod: &Pod, container: &str, message: &str) -> Note {
    let volume = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .find(|v| {
            let backs = |kind: &str, name: Option<&str>| {
                name.is_some_and(|n| message.starts_with(&format!("{kind} \"{n}\"")))
            };
            backs("configmap", v.config_map.as_ref().map(|c| c.name.as_str()))
                || backs(
                    "secret",
                    v.secret.as_ref().and_then(|s| s.secret_name.as_deref()),
                )
                || message.starts_with(&format!("volume {}:", v.name))
        });
    match volume {
        Some(v) => Note {
            regarding: regarding(pod, None),
            type_: EventType::Warning,
            reason: "FailedMount",
            message: format!(
                "MountVolume.SetUp failed for volume \"{}\" : {message}",
                v.name
            ),
        },
        None => start_failed(pod, container, message),
    }
}

/// A container is being stopped: `reason` says why (a failed probe), else the pod is being deleted.
pub fn killing(pod: &Pod, container: &str, reason: Option<&str>) -> Note {
    let message = reason.map_or_else(|| format!("Stopping container {container}"), str::to_string);
    note(pod, container, EventType::Normal, "Killing", message)
}

/// A probe failed (`kind` as the kubelet names it: Liveness, Readiness, Startup).
pub fn unhealthy(pod: &Pod, container: &str, kind: &str, output: &str) -> Note {
    let output = output.trim();
    note(
        pod,
        container,
        EventType::Warning,
        "Unhealthy",
        format!("{kind} probe failed: {output}"),
    )
}

/// The containers that went into a back-off between two status reports, with the BackOff Event for each.
pub fn back_offs(
    pod: &Pod,
    before: &HashSet<String>,
    status: &PodStatus,
) -> (HashSet<String>, Vec<Note>) {
    let mut now = HashSet::new();
    let mut notes = Vec::new();
    let statuses = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for c in statuses {
        let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
        let reason = waiting.and_then(|w| w.reason.as_deref());
        let message = match reason {
            Some("CrashLoopBackOff") => format!(
                "Back-off restarting failed container {} in pod {}_{}({})",
                c.name,
                pod.metadata.name.as_deref().unwrap_or_default(),
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.uid.as_deref().unwrap_or_default()
            ),
            Some("ImagePullBackOff") => format!("Back-off pulling image \"{}\"", c.image),
            _ => continue,
        };
        now.insert(c.name.clone());
        if !before.contains(&c.name) {
            notes.push(note(pod, &c.name, EventType::Normal, "BackOff", message));
        }
    }
    (now, notes)
}

/// client-go's per-object token bucket. Pure: the caller passes the time.
#[derive(Debug, Default)]
pub struct SpamFilter {
    buckets: HashMap<String, (f64, Instant)>,
}

impl SpamFilter {
    /// Whether an event about the object `key` may be written at `now` (taking a token if so).
    pub fn allow(&mut self, key: &str, now: Instant) -> bool {
        let refill_per_second = 1.0 / SPAM_REFILL.as_secs_f64();
        let (tokens, last) = self
            .buckets
            .entry(key.to_string())
            .or_insert((SPAM_BURST, now));
        *tokens = (*tokens
            + now.saturating_duration_since(*last).as_secs_f64() * refill_per_second)
            .min(SPAM_BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets an object (its pod is gone).
    pub fn forget(&mut self, key: &str) {
        self.buckets.remove(key);
    }
}

/// The agent's handle for pod Events. Cheap to clone.
#[derive(Clone)]
pub struct PodEvents {
    sender: mpsc::Sender<Note>,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    spam: SpamFilter,
    /// Per pod uid: containers in a back-off at the last report.
    backing_off: HashMap<String, HashSet<String>>,
}

impl PodEvents {
    /// Starts the writer task on the current runtime; it ends when every handle is dropped.
    pub fn start(objects: Objects) -> Self {
        let (sender, mut receiver) = mpsc::channel::<Note>(QUEUE);
        let recorder = EventRecorder::new(objects, COMPONENT);
        tokio::spawn(async move {
            while let Some(n) = receiver.recv().await {
                if let Err(e) = recorder
                    .record(&n.regarding, n.type_, n.reason, &n.message)
                    .await
                {
                    tracing::debug!(reason = n.reason, error = %e, "cannot record pod event");
                }
            }
        });
        Self {
            sender,
            state: Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `notes` to be written, as far as the pod's budget and the queue allow; never waits.
    pub fn emit(&self, notes: impl IntoIterator<Item = Note>) {
        let now = Instant::now();
        for n in notes {
            let key = n.regarding.uid.clone().unwrap_or_default();
            if !self.state().spam.allow(&key, now) {
                continue;
            }
            if let Err(e) = self.sender.try_send(n) {
                tracing::debug!(error = %e, "pod event dropped");
            }
        }
    }

    /// A status about to be reported: emits BackOff for containers newly in a back-off.
    pub fn reported(&self, pod: &Pod, status: &PodStatus) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let notes = {
            let mut state = self.state();
            let before = state.backing_off.remove(&uid).unwrap_or_default();
            let (now, notes) = back_offs(pod, &before, status);
            state.backing_off.insert(uid, now);
            notes
        };
        self.emit(notes);
    }

    /// The pod is gone from the node: its state goes.
    pub fn forget(&self, uid: &str) {
        let mut state = self.state();
        state.backing_off.remove(uid);
        state.spam.forget(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "demo", "uid": "u1"},
            "spec": {
                "initContainers": [{"name": "setup", "image": "busybox"}],
                "containers": [{"name": "main", "image": "nginx:1.27"}],
                "volumes": [{"name": "conf", "configMap": {"name": "web-conf"}}],
            },
        }))
        .unwrap()
    }

    #[test]
    fn a_start_is_pulled_created_started_on_the_container() {
        let notes = started(&pod(), "main");
        let summary: Vec<(&str, &str)> = notes
            .iter()
            .map(|n| (n.reason, n.message.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "Pulled",
                    "Container image \"nginx:1.27\" already present on machine"
                ),
                ("Created", "Created container main"),
                ("Started", "Started container main"),
            ]
        );
        assert_eq!(
            notes[0].regarding.field_path.as_deref(),
            Some("spec.containers{main}")
        );
        assert_eq!(notes[0].regarding.uid.as_deref(), Some("u1"));
        let init = killing(&pod(), "setup", None);
        assert_eq!(
            init.regarding.field_path.as_deref(),
            Some("spec.initContainers{setup}")
        );
        assert_eq!(init.message, "Stopping container setup");
        let probe = killing(
            &pod(),
            "main",
            Some("Container main failed liveness probe, will be restarted"),
        );
        assert_eq!(
            probe.message,
            "Container main failed liveness probe, will be restarted"
        );
    }

    #[test]
    fn failures_say_what_the_kubelet_says() {
        let n = unhealthy(
            &pod(),
            "main",
            "Liveness",
            "HTTP probe failed with statuscode: 500\n",
        );
        assert_eq!((n.type_, n.reason), (EventType::Warning, "Unhealthy"));
        assert_eq!(
            n.message,
            "Liveness probe failed: HTTP probe failed with statuscode: 500"
        );
        let n = config_failed(&pod(), "main", "configmap \"web-conf\" not found");
        assert_eq!(n.reason, "FailedMount");
        assert_eq!(
            n.message,
            "MountVolume.SetUp failed for volume \"conf\" : configmap \"web-conf\" not found"
        );
        assert_eq!(n.regarding.field_path, None);
        let n = config_failed(&pod(), "main", "configmap \"env-only\" not found");
        assert_eq!(
            (n.reason, n.message.as_str()),
            ("Failed", "Error: configmap \"env-only\" not found")
        );
    }

    #[test]
    fn back_off_is_noted_once_per_entry() {
        let status: PodStatus = serde_json::from_value(json!({
            "containerStatuses": [
                {"name": "main", "image": "nginx:1.27", "imageID": "", "ready": false, "restartCount": 2,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            ],
        }))
        .unwrap();
        let (backing, notes) = back_offs(&pod(), &HashSet::new(), &status);
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].reason, "BackOff");
        assert_eq!(
            notes[0].message,
            "Back-off restarting failed container main in pod web-1_demo(u1)"
        );
        let (again, notes) = back_offs(&pod(), &backing, &status);
        assert!(notes.is_empty());
        let running = PodStatus::default();
        let (cleared, _) = back_offs(&pod(), &again, &running);
        assert!(cleared.is_empty());
    }

    #[test]
    fn the_spam_filter_allows_a_burst_then_one_per_refill() {
        let start = Instant::now();
        let mut filter = SpamFilter::default();
        let allowed = (0..40).filter(|_| filter.allow("u1", start)).count();
        assert_eq!(allowed, 25);
        assert!(
            filter.allow("u2", start),
            "other objects have their own budget"
        );
        assert!(!filter.allow("u1", start + Duration::from_secs(200)));
        assert!(filter.allow("u1", start + Duration::from_secs(301)));
        assert!(!filter.allow("u1", start + Duration::from_secs(302)));
    }
}
