//! LIST: every object of a kind in a namespace or in all, filtered by the selectors, as a `<Kind>List` or a Table.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::{with_type, Call};
use crate::selector::Selectors;
use crate::status::{json, json_as, Answer};
use crate::table;

/// Answers the list. `limit` is ignored: everything comes back in one page, without `continue`.
pub(crate) async fn list(call: Call) -> Answer {
    let selectors = Selectors::parse(
        call.info,
        &call.query.label_selector,
        &call.query.field_selector,
    )?;
    let (items, revision) = call.gw.objects.list(call.info, call.ns()).await?;
    let items: Vec<Value> = items
        .into_iter()
        .filter(|o| selectors.matches(o))
        .map(|o| with_type(call.info, o))
        .collect();
    let revision = revision.to_string();
    if let Some(accept) = call.table {
        let t = table::table(
            call.info,
            &items,
            Some(&revision),
            &call.table_options(accept),
        );
        return Ok(json_as(StatusCode::OK, &t, accept.content_type()));
    }
    Ok(json(
        StatusCode::OK,
        &json!({
            "kind": call.info.list_kind(),
            "apiVersion": call.info.api_version(),
            "metadata": {"resourceVersion": revision},
            "items": items,
        }),
    ))
}
