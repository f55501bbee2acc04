//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and Kubernetes' strategic merge patch, applied
//! to an object held as JSON. Pure: the handler reads the object, applies the patch here, and writes the result
//! through admission.

mod schema;
mod strategic;

pub use schema::{list_strategy, ListStrategy};

use navarch_bus::api::{ApiError, Reason};
use serde_json::Value;

use crate::request::PatchKind;

/// Applies `body`, a patch of kind `patch_kind`, to `current`, an object of kind `kind` (`Deployment`, `Scale`...).
pub fn apply(
    patch_kind: PatchKind,
    kind: &str,
    current: &Value,
    body: &[u8],
) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
    apply_value(patch_kind, kind, current, &patch)
}

/// [`apply`] with the patch already decoded.
pub fn apply_value(
    patch_kind: PatchKind,
    kind: &str,
    current: &Value,
    patch: &Value,
) -> Result<Value, ApiError> {
    match patch_kind {
        PatchKind::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            let mut doc = current.clone();
            json_patch::merge(&mut doc, patch);
            Ok(doc)
        }
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("the JSON patch is malformed: {e}")))?;
            let mut doc = current.clone();
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::new(
                    Reason::Invalid,
                    format!("the JSON patch cannot be applied: {e}"),
                )
            })?;
            Ok(doc)
        }
        PatchKind::Strategic => strategic::apply(kind, current, patch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let current = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1, "list": [1, 2]}});
        let patched = apply(
            PatchKind::Merge,
            "Deployment",
            &current,
            br#"{"metadata":{"labels":{"a":null,"c":"3"}},"spec":{"replicas":5,"list":[3]}}"#,
        )
        .unwrap();
        assert_eq!(
            patched,
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"replicas": 5, "list": [3]}})
        );
        assert_eq!(
            apply(PatchKind::Merge, "Pod", &current, b"[1]")
                .unwrap_err()
                .code(),
            400
        );
        assert_eq!(
            apply(PatchKind::Merge, "Pod", &current, b"{")
                .unwrap_err()
                .code(),
            400
        );
    }

    #[test]
    fn json_patch_follows_rfc_6902() {
        let current = json!({"spec": {"replicas": 1, "containers": [{"name": "a"}]}});
        let patched = apply(
            PatchKind::Json,
            "Pod",
            &current,
            br#"[{"op":"test","path":"/spec/replicas","value":1},
                 {"op":"replace","path":"/spec/replicas","value":3},
                 {"op":"add","path":"/spec/containers/-","value":{"name":"b"}},
                 {"op":"remove","path":"/spec/containers/0"}]"#,
        )
        .unwrap();
        assert_eq!(
            patched,
            json!({"spec": {"replicas": 3, "containers": [{"name": "b"}]}})
        );
        let failed = apply(
            PatchKind::Json,
            "Pod",
            &current,
            br#"[{"op":"test","path":"/spec/replicas","value":2}]"#,
        )
        .unwrap_err();
        assert_eq!(failed.code(), 422);
        let malformed = apply(PatchKind::Json, "Pod", &current, br#"[{"op":"jump"}]"#).unwrap_err();
        assert_eq!(malformed.code(), 400);
        let missing = apply(
            PatchKind::Json,
            "Pod",
            &current,
            br#"[{"op":"remove","path":"/nope/x"}]"#,
        )
        .unwrap_err();
        assert_eq!(missing.code(), 422);
    }
}
