//! Records Kubernetes Events (core/v1) about objects, the way client-go's event recorder does: the same event
//! again (same object, type, reason and message) bumps the stored Event's `count` and `lastTimestamp` instead of
//! adding another. `kubectl describe` and `kubectl get events` show them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::chrono::{DateTime, Utc};
use navarch_bus::api::admission::{FieldValidation, Part};
use navarch_bus::api::{meta, resource, ApiError, Objects, Reason};
use serde_json::{json, Value};

/// How many distinct events a recorder remembers for deduplication (client-go's event cache holds 4096).
const REMEMBERED: usize = 4096;

/// How many names an event tries before giving up (each one nanosecond later).
const NAME_ATTEMPTS: i64 = 8;

/// An Event's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something went as it should.
    Normal,
    /// Something a user may need to act on.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// What makes two events the same one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Identity {
    namespace: String,
    uid: String,
    name: String,
    type_: EventType,
    reason: String,
    message: String,
}

/// Writes Events through [`Objects`] on behalf of one component (the Event's `source.component`).
#[derive(Clone)]
pub struct EventRecorder {
    objects: Objects,
    component: String,
    /// The name of the Event stored for each identity recorded so far.
    recorded: Arc<Mutex<HashMap<Identity, String>>>,
}

/// The namespace an event about `regarding` lives in: the object's, or `default` for a cluster-scoped object.
fn namespace_of(regarding: &ObjectReference) -> String {
    regarding
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// A new Event (count 1) named `name`.
pub fn new_event(
    name: &str,
    component: &str,
    regarding: &ObjectReference,
    type_: EventType,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> Value {
    let at = meta::format_time(now);
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace_of(regarding)},
        "involvedObject": regarding,
        "type": type_.as_str(),
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": "",
        "firstTimestamp": at,
        "lastTimestamp": at,
        "count": 1,
    })
}

/// `event` seen once more at `now`.
pub fn bumped(mut event: Value, now: DateTime<Utc>) -> Value {
    let count = event["count"].as_i64().unwrap_or(1).max(1);
    event["count"] = json!(count.saturating_add(1));
    event["lastTimestamp"] = json!(meta::format_time(now));
    event
}

/// The name client-go gives an event: the object's name and the time in hexadecimal nanoseconds.
fn event_name(regarding: &ObjectReference, now: DateTime<Utc>) -> String {
    let nanos = now.timestamp_nanos_opt().unwrap_or_default();
    format!(
        "{}.{:x}",
        regarding.name.as_deref().unwrap_or("unknown"),
        nanos
    )
}

impl EventRecorder {
    /// A recorder writing as `component` (e.g. `default-scheduler`).
    pub fn new(objects: Objects, component: impl Into<String>) -> Self {
        Self {
            objects,
            component: component.into(),
            recorded: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn remembered(&self, identity: &Identity) -> Option<String> {
        self.recorded.lock().ok()?.get(identity).cloned()
    }

    fn remember(&self, identity: Identity, name: String) {
        if let Ok(mut recorded) = self.recorded.lock() {
            if recorded.len() >= REMEMBERED {
                recorded.clear();
            }
            recorded.insert(identity, name);
        }
    }

    fn forget(&self, identity: &Identity) {
        if let Ok(mut recorded) = self.recorded.lock() {
            recorded.remove(identity);
        }
    }

    /// Records that `reason` happened to `regarding`: bumps the Event recorded before for the same thing, or
    /// creates one. Failures are returned for the caller to log; an event is never worth failing an action for.
    pub async fn record(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
    ) -> Result<(), ApiError> {
        let namespace = namespace_of(regarding);
        let identity = Identity {
            namespace: namespace.clone(),
            uid: regarding.uid.clone().unwrap_or_default(),
            name: regarding.name.clone().unwrap_or_default(),
            type_,
            reason: reason.into(),
            message: message.into(),
        };
        let info = resource::of::<k8s_openapi::api::core::v1::Event>();
        let now = crate::now();
        if let Some(name) = self.remembered(&identity) {
            let result = self
                .objects
                .update_with(info, Some(&namespace), &name, Part::Main, |current| {
                    Ok(bumped(current, now))
                })
                .await;
            match result {
                Ok(_) => return Ok(()),
                // Deleted (or expired) meanwhile: record it afresh.
                Err(e) if e.reason == Reason::NotFound => self.forget(&identity),
                Err(e) => return Err(e),
            }
        }
        // Named by the time in nanoseconds, as client-go names events; two events about one object within the same
        // nanosecond (or clock step) take the next free name.
        let precise = meta::now();
        let mut last = None;
        for step in 0..NAME_ATTEMPTS {
            let at = precise + k8s_openapi::chrono::Duration::nanoseconds(step);
            let name = event_name(regarding, at);
            let event = new_event(
                &name,
                &self.component,
                regarding,
                type_,
                reason,
                message,
                now,
            );
            match self
                .objects
                .create(info, Some(&namespace), event, FieldValidation::Ignore)
                .await
            {
                Ok(_) => {
                    self.remember(identity, name);
                    return Ok(());
                }
                Err(e) if e.reason == Reason::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ApiError::internal("no event name left")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Event;

    fn pod_ref() -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some("demo".into()),
            name: Some("web-1".into()),
            uid: Some("u1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_new_event_names_its_object_source_and_times() {
        let now = meta::parse_time("2026-11-27T12:00:00Z").unwrap();
        let v = new_event(
            "web-1.1",
            "default-scheduler",
            &pod_ref(),
            EventType::Warning,
            "FailedScheduling",
            "0/1 nodes are available: 1 Insufficient cpu.",
            now,
        );
        let ev: Event = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(ev.metadata.namespace.as_deref(), Some("demo"));
        assert_eq!(ev.involved_object, pod_ref());
        assert_eq!(ev.type_.as_deref(), Some("Warning"));
        assert_eq!(ev.reason.as_deref(), Some("FailedScheduling"));
        assert_eq!(
            ev.source.and_then(|s| s.component).as_deref(),
            Some("default-scheduler")
        );
        assert_eq!(ev.count, Some(1));
        assert_eq!(v["firstTimestamp"], "2026-11-27T12:00:00Z");
        let later = meta::parse_time("2026-11-27T12:00:10Z").unwrap();
        let again = bumped(bumped(v, later), later);
        assert_eq!(again["count"], 3);
        assert_eq!(again["firstTimestamp"], "2026-11-27T12:00:00Z");
        assert_eq!(again["lastTimestamp"], "2026-11-27T12:00:10Z");
    }

    #[test]
    fn names_follow_client_go_and_cluster_objects_go_to_default() {
        let now = meta::parse_time("2026-11-27T12:00:00Z").unwrap();
        assert_eq!(event_name(&pod_ref(), now), "web-1.18ebe51f86778000");
        let node = ObjectReference {
            kind: Some("Node".into()),
            name: Some("n1".into()),
            ..Default::default()
        };
        assert_eq!(namespace_of(&node), "default");
    }
}
