//! The `/scale` subresource: an `autoscaling/v1` Scale view of `spec.replicas`, `status.replicas` and the
//! selector, written back through admission (so `replicas: -1` is 422 Invalid).

use axum::http::StatusCode;
use navarch_bus::api::admission::Part;
use navarch_bus::api::{meta, ApiError, ResourceInfo};
use serde_json::{json, Value};

use super::Call;
use crate::patch;
use crate::request::{decode_object, PatchKind};
use crate::status::{json as json_response, Answer};
use crate::table::selector_string;

/// The Scale of `object`.
pub(crate) fn scale_of(object: &Value) -> Value {
    let m = &object["metadata"];
    let mut metadata = json!({});
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if !m[field].is_null() {
            metadata[field] = m[field].clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": object["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {
            "replicas": object["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector_string(&object["spec"]["selector"]),
        },
    })
}

/// `spec.replicas` of a Scale the client sent.
fn replicas_of(scale: &Value) -> Result<i64, ApiError> {
    match &scale["spec"]["replicas"] {
        Value::Null => Ok(0),
        v => v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "spec.replicas of a Scale must be an integer, not {v}"
            ))
        }),
    }
}

/// GET: the Scale.
pub(crate) async fn get(call: Call, name: &str) -> Answer {
    let object = call.gw.objects.get(call.info, call.ns(), name).await?;
    Ok(json_response(StatusCode::OK, &scale_of(&object)))
}

/// Writes `replicas`; when `expected` (the Scale's resourceVersion) is set the object must still be at it.
async fn write(
    call: &Call,
    info: &'static ResourceInfo,
    name: &str,
    replicas: i64,
    expected: Option<String>,
) -> Answer {
    let object = call
        .gw
        .objects
        .update_with(info, call.ns(), name, Part::Main, |mut o| {
            if expected
                .as_deref()
                .is_some_and(|rv| meta::resource_version(&o) != Some(rv))
            {
                return Err(ApiError::conflict(info, name));
            }
            let old = o.clone();
            o["spec"]["replicas"] = json!(replicas);
            super::apply::record(call, Some(&old), &mut o, crate::apply::Part::Scale);
            Ok(o)
        })
        .await?;
    Ok(json_response(StatusCode::OK, &scale_of(&object)))
}

/// PUT: sets the replicas from the Scale in the body.
pub(crate) async fn update(call: Call, name: &str) -> Answer {
    let scale = decode_object(&call.headers, &call.body)?;
    let replicas = replicas_of(&scale)?;
    let expected = meta::resource_version(&scale)
        .filter(|rv| !rv.is_empty())
        .map(str::to_string);
    write(&call, call.info, name, replicas, expected).await
}

/// PATCH: applies the patch to the current Scale and sets the replicas it ends with (what `kubectl scale` sends).
pub(crate) async fn patch(call: Call, name: &str) -> Answer {
    let kind = PatchKind::from_headers(&call.headers)?;
    let current = scale_of(&call.gw.objects.get(call.info, call.ns(), name).await?);
    let patched = patch::apply(kind, "Scale", &current, &call.body)?;
    let replicas = replicas_of(&patched)?;
    let expected = meta::resource_version(&patched)
        .filter(|rv| Some(*rv) != meta::resource_version(&current))
        .map(str::to_string);
    write(&call, call.info, name, replicas, expected).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_reads_as_a_scale() {
        let d = json!({"metadata": {"name": "web", "namespace": "demo", "resourceVersion": "9", "labels": {"a": "b"}},
                       "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}},
                       "status": {"replicas": 2}});
        let s = scale_of(&d);
        assert_eq!(s["apiVersion"], "autoscaling/v1");
        assert_eq!(s["kind"], "Scale");
        assert_eq!(
            s["metadata"],
            json!({"name": "web", "namespace": "demo", "resourceVersion": "9"})
        );
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"], json!({"replicas": 2, "selector": "app=web"}));
        assert_eq!(replicas_of(&json!({"spec": {"replicas": -1}})).unwrap(), -1);
        assert_eq!(
            replicas_of(&json!({"spec": {"replicas": "x"}}))
                .unwrap_err()
                .code(),
            400
        );
        assert_eq!(replicas_of(&json!({})).unwrap(), 0);
    }
}
