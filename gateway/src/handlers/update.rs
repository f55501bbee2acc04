//! PUT: replaces an object (or its `/status`); a stale `resourceVersion` is a 409 Conflict.

use axum::http::StatusCode;
use navarch_bus::api::admission::Part;

use super::Call;
use crate::request::decode_object;
use crate::status::Answer;

/// Replaces the object named `name` with the body, writing `part`.
pub(crate) async fn update(call: Call, name: &str, part: Part) -> Answer {
    let mut object = decode_object(&call.headers, &call.body)?;
    // The stored object, to see which fields this write changes (a write in between is caught by admission's
    // resourceVersion check when the client sent one; without one the record may miss that writer's fields).
    let old = call.gw.objects.get(call.info, call.ns(), name).await?;
    let owned = match part {
        Part::Main => crate::apply::Part::Main,
        Part::Status => crate::apply::Part::Status,
    };
    super::apply::record(&call, Some(&old), &mut object, owned);
    super::confirm_no_escalation(&call, &object).await?;
    let admitted = call
        .gw
        .objects
        .update(
            call.info,
            call.ns(),
            name,
            object,
            part,
            call.query.field_validation,
        )
        .await?;
    Ok(call.object(StatusCode::OK, admitted.object, &admitted.warnings))
}
