//! GET of one object (or its `/status`).

use axum::http::StatusCode;

use super::Call;
use crate::status::Answer;

/// Answers the object named `name`, as a Table when asked.
pub(crate) async fn get(call: Call, name: &str) -> Answer {
    let object = call.gw.objects.get(call.info, call.ns(), name).await?;
    Ok(call.object(StatusCode::OK, object, &[]))
}
