//! PATCH: reads the object, applies the patch (merge, JSON or strategic), and writes the result through admission
//! with the version it read, retrying when another writer got in between.

use axum::http::StatusCode;
use navarch_bus::api::admission::Part;
use navarch_bus::api::{meta, ApiError, Cause, Reason};
use serde_json::Value;

use super::Call;
use crate::patch;
use crate::request::PatchKind;
use crate::status::Answer;

/// How often a patch is re-applied when the object changed under it (kube-apiserver retries too).
const MAX_ATTEMPTS: usize = 16;

/// Patches the object named `name`, writing `part`.
pub(crate) async fn patch(call: Call, name: &str, part: Part) -> Answer {
    refuse_force(&call)?;
    let kind = PatchKind::from_headers(&call.headers)?;
    let patch: Value = serde_json::from_slice(&call.body)
        .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
    for _ in 0..MAX_ATTEMPTS {
        let current = call.gw.objects.get(call.info, call.ns(), name).await?;
        let mut patched = patch::apply_value(kind, call.info.kind, &current, &patch)?;
        if patched == current {
            return Ok(call.object(StatusCode::OK, current, &[]));
        }
        let owned = match part {
            Part::Main => crate::apply::Part::Main,
            Part::Status => crate::apply::Part::Status,
        };
        super::apply::record(&call, Some(&current), &mut patched, owned);
        super::confirm_no_escalation(&call, &patched).await?;
        // A resourceVersion the patch itself sets is the client's precondition: its conflict is final.
        let precondition = meta::resource_version(&patched) != meta::resource_version(&current);
        match call
            .gw
            .objects
            .update(
                call.info,
                call.ns(),
                name,
                patched,
                part,
                call.query.field_validation,
            )
            .await
        {
            Ok(admitted) => {
                return Ok(call.object(StatusCode::OK, admitted.object, &admitted.warnings))
            }
            Err(e) if e.reason == Reason::Conflict && !precondition => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(call.info, name).into())
}

/// `force` belongs to server-side apply; kube-apiserver refuses it on other patches (422).
pub(crate) fn refuse_force(call: &Call) -> Result<(), ApiError> {
    if call.query.force.is_none() {
        return Ok(());
    }
    Err(ApiError::invalid_kind(
        "meta.k8s.io",
        "PatchOptions",
        "",
        vec![Cause {
            reason: "FieldValueForbidden".into(),
            field: "force".into(),
            message: "Forbidden: may not be specified for non-apply patch".into(),
        }],
    ))
}
