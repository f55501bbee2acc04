//! LIST: the objects of a kind in a namespace or in all, filtered by the selectors, as a `<Kind>List` or a Table,
//! in pages (`limit`, `continue`) read at one revision, with Kubernetes' `resourceVersion` semantics.

mod options;
mod token;

use std::time::Duration;

use axum::http::StatusCode;
use navarch_bus::api::{ApiError, Page, PageRequest, Reason};
use serde_json::{json, Value};

use self::options::{ListOptions, Read};
use self::token::{ContinueToken, LATEST};
use super::{with_type, Call};
use crate::selector::Selectors;
use crate::status::{json, json_as, Answer};
use crate::table;

/// kube-apiserver's answer to a continue token whose revision was compacted. It comes with a token for the rest
/// of the list at the latest revision.
const INCONSISTENT_CONTINUE: &str = "The provided continue parameter is too old to display a consistent list \
    result. You can start a new list without the continue parameter, or use the continue token in this response to \
    retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - \
    objects that were created, modified, or deleted between the time the first chunk was returned and now may show \
    up in the list.";

/// kube-apiserver's answer to a list at a compacted resourceVersion.
const EXPIRED: &str = "The resourceVersion for the provided list is too old.";

/// Answers the list: one page of at most `limit` items, with `metadata.continue` when more remain and
/// `metadata.remainingItemCount` when no selector makes the count unknowable.
pub(crate) async fn list(call: Call) -> Answer {
    let options = ListOptions::from_query(&call.query)?;
    let selectors = Selectors::parse(
        call.info,
        &call.query.label_selector,
        &call.query.field_selector,
    )?;
    let page = match read(&call, &options, &selectors).await {
        Ok(page) => page,
        Err(e) if e.reason == Reason::Expired => return expired(&options),
        Err(e) => return Err(e.into()),
    };
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(start) = page.next {
        metadata["continue"] = json!(ContinueToken {
            start,
            revision: page.revision
        }
        .encode());
        if selectors.is_empty() {
            metadata["remainingItemCount"] = json!(page.remaining);
        }
    }
    let items: Vec<Value> = page
        .items
        .into_iter()
        .map(|o| with_type(call.info, o))
        .collect();
    if let Some(accept) = call.table {
        let mut t = table::table(call.info, &items, None, &call.table_options(accept));
        t["metadata"] = metadata;
        return Ok(json_as(StatusCode::OK, &t, accept.content_type()));
    }
    Ok(json(
        StatusCode::OK,
        &json!({
            "kind": call.info.list_kind(),
            "apiVersion": call.info.api_version(),
            "metadata": metadata,
            "items": items,
        }),
    ))
}

/// Reads the page. A revision the store has not reached yet is waited for (up to the configured time, as
/// kube-apiserver's watch cache waits), then refused with 504.
async fn read(call: &Call, options: &ListOptions, selectors: &Selectors) -> Result<Page, ApiError> {
    if call.query.resource_version == "0" && options.start.is_none() && options.read == Read::Latest
    {
        // "Any" revision: the watch cache answers, without the store, and whole (kube-apiserver ignores `limit`
        // for the lists its cache serves).
        return call
            .gw
            .watch_cache
            .page(
                call.info,
                call.ns(),
                1,
                ("", 0),
                |o| selectors.matches(o),
                call.gw.config.list_revision_wait,
            )
            .await;
    }
    // The first page of a list at the latest revision (or one not older than a given one) comes from the watch
    // cache once it has caught up with that revision, as kube-apiserver's consistent lists from cache: one
    // count-only store read instead of reading every object. Later pages read the store at the page's revision.
    // A cache that cannot catch up in time (its store watch is being re-established) leaves the list to the store.
    let from_cache = match options.read {
        Read::Latest if options.start.is_none() => Some(call.gw.objects.current_revision().await?),
        Read::NotOlderThan(n) => Some(n),
        _ => None,
    };
    if let Some(at) = from_cache {
        let page = call
            .gw
            .watch_cache
            .page(
                call.info,
                call.ns(),
                at,
                ("", options.limit),
                |o| selectors.matches(o),
                call.gw.config.list_revision_wait,
            )
            .await;
        match page {
            Ok(page) => return Ok(page),
            Err(e) if is_too_large(&e) && matches!(options.read, Read::NotOlderThan(_)) => {
                return Err(e)
            }
            Err(e) => {
                tracing::debug!(kind = call.info.kind, error = %e, "list not served from the watch cache")
            }
        }
    }
    let (revision, wanted) = match options.read {
        Read::Latest => (0, 0),
        Read::NotOlderThan(n) => (0, n),
        Read::Exact(n) => (n, n),
    };
    let request = PageRequest {
        revision,
        start: options.start.clone().unwrap_or_default(),
        limit: options.limit,
    };
    let objects = &call.gw.objects;
    let keep = |o: &Value| selectors.matches(o);
    match objects
        .list_page(call.info, call.ns(), &request, keep)
        .await
    {
        Ok(page) if page.revision >= wanted => return Ok(page),
        // NotOlderThan a revision ahead of the store's.
        Ok(_) => {}
        // Exact at a revision ahead of the store's.
        Err(e) if is_too_large(&e) => {}
        Err(e) => return Err(e),
    }
    wait_for_revision(call, wanted).await?;
    objects
        .list_page(call.info, call.ns(), &request, keep)
        .await
}

/// Waits until the store reaches `wanted`, or refuses with kube-apiserver's "Too large resource version".
async fn wait_for_revision(call: &Call, wanted: i64) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + call.gw.config.list_revision_wait;
    let mut pause = Duration::from_millis(10);
    loop {
        let current = call.gw.objects.current_revision().await?;
        if current >= wanted {
            return Ok(());
        }
        if tokio::time::Instant::now() + pause > deadline {
            return Err(ApiError::too_large_resource_version(wanted, current));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Whether `e` says a read asked for a revision the store has not reached.
fn is_too_large(e: &ApiError) -> bool {
    e.reason == Reason::Timeout
        && e.causes()
            .iter()
            .any(|c| c.reason == "ResourceVersionTooLarge")
}

/// 410 Expired for a read at a compacted revision. A continued list gets kube-apiserver's inconsistent-continue
/// answer: a token for the rest of the list at the latest revision, in the Status's `metadata.continue`.
fn expired(options: &ListOptions) -> Answer {
    let Some(start) = &options.start else {
        return Err(ApiError::expired(EXPIRED).into());
    };
    let mut status = ApiError::expired(INCONSISTENT_CONTINUE).to_status();
    status["metadata"]["continue"] = json!(ContinueToken {
        start: start.clone(),
        revision: LATEST,
    }
    .encode());
    Ok(json(StatusCode::GONE, &status))
}
