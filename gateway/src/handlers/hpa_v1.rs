//! HorizontalPodAutoscalers through `autoscaling/v1`, which kubectl 1.32's `kubectl autoscale` still speaks (its
//! typed client POSTs a v1 object): create, get and list, each converted to and from the stored autoscaling/v2
//! object as kube-apiserver converts them (`targetCPUUtilizationPercentage` is the v2 cpu Utilization metric).
//!
//! Only these verbs; discovery lists autoscaling/v2 alone, so every other client uses v2.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use navarch_bus::api::{resource, ApiError};
use serde_json::{json, Map, Value};

use crate::request::{decode_object, read_body, Query};
use crate::server::Gateway;
use crate::status::{self, Answer};

/// A v1 object as the v2 one stores it.
pub fn to_v2(mut v1: Value) -> Result<Value, ApiError> {
    let Some(object) = v1.as_object_mut() else {
        return Err(ApiError::bad_request("the request body must be an object"));
    };
    object.insert("apiVersion".into(), json!("autoscaling/v2"));
    let spec = object
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .map(std::mem::take)
        .unwrap_or_default();
    let mut v2 = Map::new();
    for key in ["scaleTargetRef", "minReplicas", "maxReplicas"] {
        if let Some(v) = spec.get(key) {
            v2.insert(key.into(), v.clone());
        }
    }
    if let Some(target) = spec.get("targetCPUUtilizationPercentage") {
        v2.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": target}}}]),
        );
    }
    object.insert("spec".into(), Value::Object(v2));
    object.remove("status");
    Ok(v1)
}

/// The stored v2 object as v1 shows it: the cpu Utilization target and current value; other metrics are not shown.
pub fn to_v1(mut v2: Value) -> Value {
    let cpu_target = v2["spec"]["metrics"].as_array().and_then(|ms| {
        ms.iter().find_map(|m| {
            (m["type"] == "Resource" && m["resource"]["name"] == "cpu")
                .then(|| m["resource"]["target"]["averageUtilization"].clone())
                .filter(|v| !v.is_null())
        })
    });
    let cpu_current = v2["status"]["currentMetrics"].as_array().and_then(|ms| {
        ms.iter().find_map(|m| {
            (m["type"] == "Resource" && m["resource"]["name"] == "cpu")
                .then(|| m["resource"]["current"]["averageUtilization"].clone())
                .filter(|v| !v.is_null())
        })
    });
    let Some(object) = v2.as_object_mut() else {
        return v2;
    };
    object.insert("apiVersion".into(), json!("autoscaling/v1"));
    object.insert("kind".into(), json!("HorizontalPodAutoscaler"));
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("metrics");
        spec.remove("behavior");
        if let Some(t) = cpu_target {
            spec.insert("targetCPUUtilizationPercentage".into(), t);
        }
    }
    if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) {
        status.remove("currentMetrics");
        status.remove("conditions");
        if let Some(c) = cpu_current {
            status.insert("currentCPUUtilizationPercentage".into(), c);
        }
    }
    v2
}

/// `POST /apis/autoscaling/v1/namespaces/{namespace}/horizontalpodautoscalers`.
pub async fn create(
    State(gw): State<Gateway>,
    Path(namespace): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let query = Query::parse(query.as_deref())?;
    let body = read_body(body, gw.config.max_body_bytes).await?;
    let object = to_v2(decode_object(&headers, &body)?)?;
    let objects = if query.dry_run {
        gw.objects.clone().dry_run()
    } else {
        gw.objects.clone()
    };
    let info = resource::of::<HorizontalPodAutoscaler>();
    let admitted = objects
        .create(info, Some(&namespace), object, query.field_validation)
        .await?;
    let mut response = status::json(StatusCode::CREATED, &to_v1(admitted.object));
    status::add_warnings(response.headers_mut(), &admitted.warnings);
    Ok(response)
}

/// `GET /apis/autoscaling/v1/namespaces/{namespace}/horizontalpodautoscalers/{name}`.
pub async fn get(
    State(gw): State<Gateway>,
    Path((namespace, name)): Path<(String, String)>,
) -> Answer {
    let info = resource::of::<HorizontalPodAutoscaler>();
    let object = gw.objects.get(info, Some(&namespace), &name).await?;
    Ok(status::json(StatusCode::OK, &to_v1(object)))
}

/// `GET /apis/autoscaling/v1/namespaces/{namespace}/horizontalpodautoscalers`.
pub async fn list(State(gw): State<Gateway>, Path(namespace): Path<String>) -> Answer {
    let info = resource::of::<HorizontalPodAutoscaler>();
    let (items, revision) = gw.objects.list(info, Some(&namespace)).await?;
    let items: Vec<Value> = items.into_iter().map(to_v1).collect();
    let list = json!({
        "kind": "HorizontalPodAutoscalerList",
        "apiVersion": "autoscaling/v1",
        "metadata": {"resourceVersion": revision.to_string()},
        "items": items,
    });
    Ok(status::json(StatusCode::OK, &list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_convert_as_kube_apiserver_does() {
        let v1 = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 4, "targetCPUUtilizationPercentage": 50},
        });
        let v2 = to_v2(v1).unwrap();
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
        assert_eq!(v2["spec"]["maxReplicas"], 4);
        assert_eq!(
            v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            50
        );
        assert!(v2["spec"].get("targetCPUUtilizationPercentage").is_none());

        let mut stored = v2.clone();
        stored["status"] = json!({"currentReplicas": 2, "desiredReplicas": 3,
            "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 85}}}],
            "conditions": [{"type": "AbleToScale", "status": "True"}]});
        let back = to_v1(stored);
        assert_eq!(back["apiVersion"], "autoscaling/v1");
        assert_eq!(back["spec"]["targetCPUUtilizationPercentage"], 50);
        assert!(back["spec"].get("metrics").is_none());
        assert_eq!(back["status"]["currentCPUUtilizationPercentage"], 85);
        assert_eq!(back["status"]["desiredReplicas"], 3);
        assert!(to_v2(json!("x")).is_err());
    }
}
