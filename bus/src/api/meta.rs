//! Reading and writing `metadata` of objects held as JSON, and Kubernetes' time format.

use k8s_openapi::chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// `metadata` of `object`, if it is an object.
pub fn metadata(object: &Value) -> Option<&Map<String, Value>> {
    object.get("metadata")?.as_object()
}

/// `metadata` of `object`, created when missing. Replaces a non-object `metadata`.
pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    let map = object.as_object_mut().expect("made an object above");
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().expect("made an object above")
}

fn str_field<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    metadata(object)?.get(field)?.as_str()
}

/// `metadata.name`.
pub fn name(object: &Value) -> Option<&str> {
    str_field(object, "name")
}

/// `metadata.namespace`.
pub fn namespace(object: &Value) -> Option<&str> {
    str_field(object, "namespace")
}

/// `metadata.uid`.
pub fn uid(object: &Value) -> Option<&str> {
    str_field(object, "uid")
}

/// `metadata.resourceVersion`.
pub fn resource_version(object: &Value) -> Option<&str> {
    str_field(object, "resourceVersion")
}

/// `metadata.deletionTimestamp` is set.
pub fn is_deleting(object: &Value) -> bool {
    str_field(object, "deletionTimestamp").is_some()
}

/// Sets `metadata.resourceVersion` (the store's mod revision of the object).
pub fn set_resource_version(object: &mut Value, revision: i64) {
    metadata_mut(object).insert(
        "resourceVersion".into(),
        Value::String(revision.to_string()),
    );
}

/// Parses a `resourceVersion` query parameter or field: empty means none, otherwise a non-negative integer.
pub fn parse_resource_version(raw: &str) -> Result<Option<i64>, String> {
    if raw.is_empty() {
        return Ok(None);
    }
    match raw.parse::<i64>() {
        Ok(v) if v >= 0 => Ok(Some(v)),
        _ => Err(format!(
            "invalid resource version {raw:?}: must be a non-negative integer"
        )),
    }
}

/// `time` in Kubernetes' format: RFC 3339, whole seconds, `Z`.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses a Kubernetes timestamp.
pub fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The current wall-clock time (timestamps are wall-clock by definition; durations use tokio's clock).
pub fn now() -> DateTime<Utc> {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    DateTime::from_timestamp(since_epoch.as_secs() as i64, since_epoch.subsec_nanos())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_helpers() {
        let mut o = json!({"metadata": {"name": "a", "namespace": "n"}});
        assert_eq!(name(&o), Some("a"));
        assert_eq!(namespace(&o), Some("n"));
        set_resource_version(&mut o, 42);
        assert_eq!(resource_version(&o), Some("42"));
        let mut broken = json!({"metadata": 7});
        metadata_mut(&mut broken).insert("name".into(), json!("x"));
        assert_eq!(name(&broken), Some("x"));
        assert_eq!(parse_resource_version("12"), Ok(Some(12)));
        assert_eq!(parse_resource_version(""), Ok(None));
        assert!(parse_resource_version("-1").is_err());
        assert!(parse_resource_version("abc").is_err());
        let t = parse_time("2026-11-27T03:49:39Z").unwrap();
        assert_eq!(format_time(t), "2026-11-27T03:49:39Z");
    }
}
