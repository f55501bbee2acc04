//! The event table: LAST SEEN TYPE REASON OBJECT (+ SUBOBJECT SOURCE) MESSAGE (+ FIRST SEEN COUNT NAME), as
//! `printEvent` computes it.
//!
//! Core `v1` events and `events.k8s.io/v1` events print alike: for the latter, the fields core renamed
//! (`regarding`, `note`, `deprecatedCount`...) are read where the core ones are missing, as kube-apiserver's
//! conversion to its internal Event would.

use k8s_openapi::chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age, name, text, Column, NAME};

/// Kubernetes' event columns (`eventColumnDefinitions`); NAME comes last and only with `-o wide`.
pub const COLUMNS: &[Column] = &[
    Column::new("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
    Column::new("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
    Column::new("Reason", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    Column::new("Object", "The object that this event is about."),
    Column::new("Subobject", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].").wide(),
    Column::new("Source", "The component reporting this event. Should be a short machine understandable string.").wide(),
    Column::new("Message", "A human-readable description of the status of this operation."),
    Column::new("First Seen", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)").wide(),
    Column::new("Count", "The number of times this event has occurred.").wide(),
    Column {
        priority: 1,
        ..NAME
    },
];

/// The core field `core`, else its `events.k8s.io/v1` name `renamed`.
fn field<'a>(event: &'a Value, core: &str, renamed: &str) -> &'a Value {
    match &event[core] {
        Value::Null => &event[renamed],
        v => v,
    }
}

/// `a`, or `b` when `a` is empty (Go's `firstNonEmpty`).
fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() {
        b
    } else {
        a
    }
}

/// SOURCE: the source component (else the reporting controller, `reportingComponent` in core JSON), then the
/// host (else the reporting instance) after ", " when there is one (`formatEventSource`).
fn source(event: &Value) -> String {
    let source = field(event, "source", "deprecatedSource");
    let component = first_non_empty(
        text(&source["component"]),
        text(field(event, "reportingComponent", "reportingController")),
    );
    let instance = first_non_empty(text(&source["host"]), text(&event["reportingInstance"]));
    if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    }
}

/// OBJECT: the involved object as `kind/name` with the kind lower-cased, or the kind alone without a name.
fn target(event: &Value) -> String {
    let object = field(event, "involvedObject", "regarding");
    let kind = text(&object["kind"]).to_lowercase();
    match text(&object["name"]) {
        "" => kind,
        name => format!("{kind}/{name}"),
    }
}

/// The cells of one event.
pub fn cells(event: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let since = |v: &Value| {
        v.as_str()
            .filter(|s| !s.is_empty())
            .map(|s| age(Some(s), now))
    };
    // FIRST SEEN falls back to eventTime (the newer API's only timestamp), LAST SEEN to FIRST SEEN; a series
    // overrides LAST SEEN and COUNT, and an event without a count happened once.
    let first_seen = since(field(event, "firstTimestamp", "deprecatedFirstTimestamp"))
        .unwrap_or_else(|| age(event["eventTime"].as_str(), now));
    let mut last_seen = since(field(event, "lastTimestamp", "deprecatedLastTimestamp"))
        .unwrap_or_else(|| first_seen.clone());
    let mut count = field(event, "count", "deprecatedCount")
        .as_i64()
        .unwrap_or(0);
    let series = &event["series"];
    if series.is_object() {
        last_seen = age(series["lastObservedTime"].as_str(), now);
        count = series["count"].as_i64().unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    vec![
        json!(last_seen),
        json!(text(&event["type"])),
        json!(text(&event["reason"])),
        json!(target(event)),
        json!(text(
            &field(event, "involvedObject", "regarding")["fieldPath"]
        )),
        json!(source(event)),
        json!(text(field(event, "message", "note")).trim()),
        json!(first_seen),
        json!(count),
        json!(name(event)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::meta::parse_time;

    fn now() -> DateTime<Utc> {
        parse_time("2026-01-01T01:00:00Z").unwrap()
    }

    #[test]
    fn core_event_cells() {
        let e = json!({"apiVersion": "v1", "kind": "Event",
                       "metadata": {"name": "web-1.17f3a2b4c5d6e7f8", "namespace": "default",
                                    "creationTimestamp": "2026-01-01T00:50:00Z"},
                       "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1",
                                          "apiVersion": "v1", "fieldPath": "spec.containers{nginx}"},
                       "reason": "BackOff", "type": "Warning",
                       "message": "Back-off restarting failed container nginx\n",
                       "source": {"component": "kubelet", "host": "node-a"},
                       "firstTimestamp": "2026-01-01T00:50:00Z", "lastTimestamp": "2026-01-01T00:58:00Z",
                       "count": 7, "reportingComponent": "kubelet", "reportingInstance": "node-a"});
        assert_eq!(
            cells(&e, now()),
            vec![
                json!("2m"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web-1"),
                json!("spec.containers{nginx}"),
                json!("kubelet, node-a"),
                json!("Back-off restarting failed container nginx"),
                json!("10m"),
                json!(7),
                json!("web-1.17f3a2b4c5d6e7f8")
            ]
        );
    }

    #[test]
    fn new_style_events_use_event_time_series_and_reporter() {
        // As client-go's events.k8s.io recorder writes them through the core API: no first/last timestamps,
        // no source, no count.
        let mut e = json!({"metadata": {"name": "web.181a"},
                           "involvedObject": {"kind": "Deployment", "name": "web"},
                           "reason": "ScalingReplicaSet", "type": "Normal", "message": "Scaled up to 3",
                           "eventTime": "2026-01-01T00:59:30.123456Z",
                           "reportingComponent": "deployment-controller", "reportingInstance": ""});
        let c = cells(&e, now());
        // 29.88 s ago: whole seconds, truncated, as Go's HumanDuration counts them.
        assert_eq!(c[0], json!("29s"));
        assert_eq!(c[3], json!("deployment/web"));
        assert_eq!(c[5], json!("deployment-controller"));
        assert_eq!(c[7], json!("29s"));
        assert_eq!(c[8], json!(1));
        e["series"] = json!({"count": 4, "lastObservedTime": "2026-01-01T00:59:55.000000Z"});
        let c = cells(&e, now());
        assert_eq!(
            (&c[0], &c[7], &c[8]),
            (&json!("5s"), &json!("29s"), &json!(4))
        );
    }

    #[test]
    fn events_k8s_io_field_names() {
        let e = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                       "metadata": {"name": "n1.1"},
                       "regarding": {"kind": "Node", "name": "n1"},
                       "note": "Node n1 status is now: NodeReady", "reason": "NodeReady", "type": "Normal",
                       "reportingController": "kubelet", "reportingInstance": "n1",
                       "deprecatedFirstTimestamp": "2026-01-01T00:00:00Z",
                       "deprecatedLastTimestamp": "2026-01-01T00:30:00Z", "deprecatedCount": 2});
        assert_eq!(
            cells(&e, now()),
            vec![
                json!("30m"),
                json!("Normal"),
                json!("NodeReady"),
                json!("node/n1"),
                json!(""),
                json!("kubelet, n1"),
                json!("Node n1 status is now: NodeReady"),
                json!("60m"),
                json!(2),
                json!("n1.1")
            ]
        );
    }

    #[test]
    fn missing_everything() {
        let c = cells(&json!({"involvedObject": {"kind": "Namespace"}}), now());
        assert_eq!(
            c,
            vec![
                json!("<unknown>"),
                json!(""),
                json!(""),
                json!("namespace"),
                json!(""),
                json!(""),
                json!(""),
                json!("<unknown>"),
                json!(1),
                json!("")
            ]
        );
        assert_eq!(COLUMNS.len(), 10);
        assert_eq!(COLUMNS[9].format, "name");
        assert_eq!(COLUMNS[9].priority, 1);
    }
}
