//! POST: creates an object through admission (`fieldValidation` honored, unknown-field warnings as headers).

use axum::http::StatusCode;

use super::Call;
use crate::request::decode_object;
use crate::status::Answer;

/// Creates the object in the body; 201 with the stored object.
pub(crate) async fn create(call: Call) -> Answer {
    let mut object = decode_object(&call.headers, &call.body)?;
    super::apply::record(&call, None, &mut object, crate::apply::Part::Main);
    super::confirm_no_escalation(&call, &object).await?;
    let admitted = call
        .gw
        .objects
        .create(call.info, call.ns(), object, call.query.field_validation)
        .await?;
    Ok(call.object(StatusCode::CREATED, admitted.object, &admitted.warnings))
}
