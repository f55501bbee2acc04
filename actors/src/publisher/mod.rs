//! The public event stream: every committed change of an API object published as a JSON watch event on
//! `navarch.<cluster>.events.<resource>.<namespace>.<name>`, for any NATS client (`docs/events.md`).
//!
//! [`message`] decides what one change becomes (subject, headers, payload; Secrets redacted) and [`Checkpoint`]
//! tracks what has been published, so a restarted publisher resumes where it stopped and every event can name the
//! previous one of its resource; [`EventPublisher`] watches the store and carries it out.

mod actor;

use std::collections::BTreeMap;

use navarch_bus::api::{meta, resource, ObjectEvent, ResourceInfo, WatchType};
use navarch_bus::{Headers, Subjects};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use actor::EventPublisher;

/// Header: the resourceVersion of the change (the store revision it committed at).
pub const RESOURCE_VERSION: &str = "Navarch-Resource-Version";
/// Header: the resourceVersion of the previous event published for the same resource (e.g. `pods`), so a
/// subscriber of `events.<resource>.>` sees a gap as a mismatch. Absent when the publisher cannot vouch for it
/// (its first event of the resource after it lost its place): resync through the API.
pub const PREVIOUS: &str = "Navarch-Previous-Resource-Version";
/// Header: `ADDED`, `MODIFIED` or `DELETED`.
pub const EVENT_TYPE: &str = "Navarch-Event-Type";
/// Header: the resource (plural, e.g. `deployments`).
pub const RESOURCE: &str = "Navarch-Resource";
/// Header present (`true`) when the object was too large for one message and only its metadata is sent.
pub const TRUNCATED: &str = "Navarch-Truncated";

/// The store key holding the publisher's [`Checkpoint`]. Outside `/registry/`, so saving it publishes nothing.
pub const CHECKPOINT_KEY: &[u8] = b"/navarch/event-stream/checkpoint";

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMessage {
    /// The subject.
    pub subject: String,
    /// Its headers.
    pub headers: Headers,
    /// `{"type":..,"object":..}` as JSON.
    pub payload: Vec<u8>,
}

/// What has been published: the revision of the last change, and per resource the revision of its last event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Every change up to this revision has been published.
    pub revision: i64,
    /// Per resource (plural), the revision of its last published event.
    pub resources: BTreeMap<String, i64>,
}

impl Checkpoint {
    /// Starting over from "now" after the place was lost (the checkpoint's revision was compacted): no event can
    /// vouch for its predecessor any more.
    pub fn lost(&mut self) {
        self.revision = 0;
        self.resources.clear();
    }
}

/// What one change becomes, given what was published before it (`checkpoint`, updated here): `None` for
/// bookmarks and for values under `/registry/` that are not API objects. `max_payload` is the bus's limit: a larger
/// event is sent with the object cut down to its metadata and the [`TRUNCATED`] header.
pub fn message(
    subjects: &Subjects,
    event: &ObjectEvent,
    checkpoint: &mut Checkpoint,
    max_payload: usize,
) -> Option<EventMessage> {
    checkpoint.revision = checkpoint.revision.max(event.revision);
    if event.kind == WatchType::Bookmark {
        return None;
    }
    let info = info_of(&event.object)?;
    let name = meta::name(&event.object)?;
    let namespace = info
        .namespaced
        .then(|| meta::namespace(&event.object))
        .flatten();
    let mut headers = Headers::new();
    headers.insert(RESOURCE_VERSION, event.revision.to_string());
    headers.insert(EVENT_TYPE, event.kind.as_str());
    headers.insert(RESOURCE, info.plural);
    if let Some(previous) = checkpoint
        .resources
        .insert(info.plural.to_string(), event.revision)
    {
        headers.insert(PREVIOUS, previous.to_string());
    }
    let object = redacted(info, event.object.clone());
    let mut payload = encode(event.kind, &object);
    if payload.len() + headers.wire_len() > max_payload {
        let cut = serde_json::json!({
            "apiVersion": object.get("apiVersion"),
            "kind": object.get("kind"),
            "metadata": object.get("metadata"),
        });
        payload = encode(event.kind, &cut);
        headers.insert(TRUNCATED, "true");
    }
    Some(EventMessage {
        subject: subjects.object_events(info.plural, namespace, name),
        headers,
        payload,
    })
}

/// The served kind of a stored object, from its `apiVersion` and `kind`.
fn info_of(object: &Value) -> Option<&'static ResourceInfo> {
    let api_version = object.get("apiVersion")?.as_str()?;
    let kind = object.get("kind")?.as_str()?;
    resource::by_kind(api_version, kind)
}

/// The object as subscribers get it: a Secret's values are emptied (its keys, type and metadata stay), since the
/// bus has no per-subscriber authorization.
fn redacted(info: &ResourceInfo, mut object: Value) -> Value {
    if info.group.is_empty() && info.kind == "Secret" {
        for field in ["data", "stringData"] {
            if let Some(map) = object.get_mut(field).and_then(Value::as_object_mut) {
                for value in map.values_mut() {
                    *value = Value::String(String::new());
                }
            }
        }
    }
    object
}

/// `{"type":..,"object":..}`, `type` first as kube-apiserver writes watch events.
fn encode(kind: WatchType, object: &Value) -> Vec<u8> {
    #[derive(Serialize)]
    struct Event<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        object: &'a Value,
    }
    serde_json::to_vec(&Event {
        kind: kind.as_str(),
        object,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests;
