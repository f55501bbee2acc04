//! Server-side apply (`PATCH` with `application/apply-patch+yaml`): merges the applied configuration into the live
//! object, or creates it, recording field ownership (see [`crate::apply`]); and the `Update` entries the other
//! writes record.

use axum::http::{header, StatusCode};
use navarch_bus::api::admission::Part;
use navarch_bus::api::{meta, ApiError, Cause, Reason, ResourceInfo};
use serde_json::{json, Value};

use super::Call;
use crate::apply::{self, Schema};
use crate::status::Answer;

/// How often an apply is redone when the object changed under it.
const MAX_ATTEMPTS: usize = 16;

/// The structure of `info`'s objects.
fn schema_of(info: &ResourceInfo) -> Schema<'static> {
    Schema::of_kind(info.group, info.version, info.kind)
}

/// The manager of a write: `fieldManager`, else the `User-Agent` up to its first `/` (kube-apiserver's default).
pub(crate) fn manager_of(call: &Call) -> String {
    if let Some(m) = call
        .query
        .field_manager
        .as_deref()
        .filter(|m| !m.is_empty())
    {
        return m.to_string();
    }
    let agent = call
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let prefix: String = agent
        .split('/')
        .next()
        .unwrap_or_default()
        .chars()
        .take(128)
        .collect();
    if prefix.is_empty() {
        "unknown".into()
    } else {
        prefix
    }
}

/// Records the fields a create, update or patch changes as the caller's `Update` entry in `new`.
pub(crate) fn record(call: &Call, old: Option<&Value>, new: &mut Value, part: apply::Part) {
    apply::record_update(
        old,
        new,
        &schema_of(call.info),
        &manager_of(call),
        &call.info.api_version(),
        part,
        &meta::format_time(meta::now()),
    );
}

/// kube-apiserver's refusal of an apply without a field manager (422, from `ValidatePatchOptions`).
fn field_manager_required() -> ApiError {
    ApiError::invalid_kind(
        "meta.k8s.io",
        "PatchOptions",
        "",
        vec![Cause {
            reason: "FieldValueRequired".into(),
            field: "fieldManager".into(),
            message: "Required value: is required for apply patch".into(),
        }],
    )
}

/// Decodes an apply body: YAML or JSON, an object naming its apiVersion and kind.
fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let config: Value = serde_norway::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "the applied configuration must be an object",
        ));
    }
    for field in ["apiVersion", "kind"] {
        if config
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(format!(
                "the applied configuration must set {field}"
            )));
        }
    }
    Ok(config)
}

/// Applies the body to the object named `name` (its `part`), creating it when missing.
pub(crate) async fn apply(call: Call, name: &str, part: Part) -> Answer {
    let manager = call
        .query
        .field_manager
        .clone()
        .filter(|m| !m.is_empty())
        .ok_or_else(field_manager_required)?;
    let config = decode(&call.body)?;
    if let Some(n) = meta::name(&config).filter(|n| !n.is_empty() && *n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))
        .into());
    }
    let info = call.info;
    let schema = schema_of(info);
    let api_version = info.api_version();
    let apply_part = match part {
        Part::Main => apply::Part::Main,
        Part::Status => apply::Part::Status,
    };
    let mut base =
        json!({"apiVersion": api_version, "kind": info.kind, "metadata": {"name": name}});
    if let Some(ns) = call.ns() {
        base["metadata"]["namespace"] = json!(ns);
    }
    let force = call.query.force.unwrap_or(false);
    for _ in 0..MAX_ATTEMPTS {
        let now = meta::format_time(meta::now());
        let live = match call.gw.objects.get(info, call.ns(), name).await {
            Ok(live) => Some(live),
            Err(e) if e.reason == Reason::NotFound && part == Part::Main => None,
            Err(e) => return Err(e.into()),
        };
        let applied = apply::apply(
            live.as_ref(),
            &base,
            &config,
            &schema,
            &manager,
            &api_version,
            force,
            apply_part,
            &now,
        )?;
        super::confirm_no_escalation(&call, &applied.object).await?;
        let Some(live) = live else {
            match call
                .gw
                .objects
                .create(info, call.ns(), applied.object, call.query.field_validation)
                .await
            {
                Ok(admitted) => {
                    return Ok(call.object(
                        StatusCode::CREATED,
                        admitted.object,
                        &admitted.warnings,
                    ))
                }
                Err(e) if e.reason == Reason::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if applied.object == live {
            return Ok(call.object(StatusCode::OK, live, &[]));
        }
        // The object carries the resourceVersion read: a writer in between makes this a conflict, and a retry.
        match call
            .gw
            .objects
            .update(
                info,
                call.ns(),
                name,
                applied.object,
                part,
                call.query.field_validation,
            )
            .await
        {
            Ok(admitted) => {
                return Ok(call.object(StatusCode::OK, admitted.object, &admitted.warnings))
            }
            Err(e) if e.reason == Reason::Conflict || e.reason == Reason::NotFound => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(info, name).into())
}
