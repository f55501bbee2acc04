//! PATCH: reads the object, applies the patch (merge, JSON or strategic), and writes the result through admission
//! with the version it read, retrying when another writer got in between.

use axum::http::StatusCode;
use navarch_bus::api::admission::Part;
use navarch_bus::api::{meta, ApiError, Reason};
use serde_json::Value;

use super::create::refuse_dry_run;
use super::Call;
use crate::patch;
use crate::request::PatchKind;
use crate::status::Answer;

/// How often a patch is re-applied when the object changed under it (kube-apiserver retries too).
const MAX_ATTEMPTS: usize = 16;

/// Patches the object named `name`, writing `part`.
pub(crate) async fn patch(call: Call, name: &str, part: Part) -> Answer {
    refuse_dry_run(&call)?;
    let kind = PatchKind::from_headers(&call.headers)?;
    let patch: Value = serde_json::from_slice(&call.body)
        .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
    for _ in 0..MAX_ATTEMPTS {
        let current = call.gw.objects.get(call.info, call.ns(), name).await?;
        let patched = patch::apply_value(kind, call.info.kind, &current, &patch)?;
        if patched == current {
            return Ok(call.object(StatusCode::OK, current, &[]));
        }
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
