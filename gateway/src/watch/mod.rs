//! Watches: `?watch=true` streams one JSON event per line (`{"type":..,"object":..}`), chunked and flushed per
//! event, from the initial list or from a resourceVersion, filtered by the selectors, until `timeoutSeconds`,
//! the client leaves, or the gateway shuts down. With a Table `Accept` each event carries a one-row Table. With
//! `Accept: text/event-stream` the same events come as Server-Sent Events for browsers (`id:` the resourceVersion,
//! `event:` the type, `data:` the JSON event), and a reconnecting client's `Last-Event-ID` resumes after it.

pub mod cache;
mod filter;

pub use cache::WatchCache;
pub use filter::Filter;

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use bytes::Bytes;
use navarch_bus::api::{meta, ApiError, ObjectWatch, ResourceInfo, WatchType};
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::handlers::{with_type, Call};
use crate::selector::Selectors;
use crate::status::{Answer, JSON};
use crate::table::{self, TableOptions};

/// Starts a watch; `name` narrows it to one object (the deprecated `/pods/{name}?watch=true` form).
pub(crate) async fn serve(call: Call, name: Option<String>) -> Answer {
    let mut fields = call.query.field_selector.clone();
    if let Some(name) = &name {
        let term = format!(
            "metadata.name={}",
            name.replace('\\', r"\\")
                .replace(',', r"\,")
                .replace('=', r"\=")
        );
        fields = if fields.trim().is_empty() {
            term
        } else {
            format!("{fields},{term}")
        };
    }
    let selectors = Selectors::parse(call.info, &call.query.label_selector, &fields)?;
    let config = &call.gw.config;
    let timeout = call
        .query
        .timeout_seconds
        .map_or(config.default_watch_timeout, Duration::from_secs)
        .min(config.max_watch_timeout);
    let sse = wants_sse(&call.headers);
    let resource_version = match call.headers.get("last-event-id") {
        // EventSource resends the last `id:` it saw when it reconnects: resume after it.
        Some(id) if sse && call.query.resource_version.is_empty() => id
            .to_str()
            .map_err(|_| ApiError::bad_request("Last-Event-ID is not a resourceVersion"))?
            .to_string(),
        _ => call.query.resource_version.clone(),
    };
    let revision =
        meta::parse_resource_version(&resource_version).map_err(ApiError::bad_request)?;
    let (from, initial_events_end) = starting_point(&call.query, revision)?;
    let events = Events {
        info: call.info,
        table: call.table.map(|accept| call.table_options(accept)),
        sse,
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    let filter = Filter::new(selectors, call.query.allow_watch_bookmarks);
    let deadline = tokio::time::Instant::now() + timeout;
    let cached = call
        .gw
        .watch_cache
        .start(call.info, call.ns(), from, config.list_revision_wait)
        .await?;
    let (initial, backlog, live, end) = match cached {
        cache::Start::Snapshot(objects, at, live) => (
            objects,
            Vec::new(),
            Some(live),
            initial_events_end.then_some(at),
        ),
        cache::Start::Resume(changes, live) => (Vec::new(), changes, Some(live), None),
        cache::Start::TooOld => (Vec::new(), Vec::new(), None, None),
    };
    if let Some(live) = live {
        let run = Cached {
            tx,
            live,
            backlog,
            namespace: call.namespace.clone(),
            filter,
            events,
            deadline,
            shutdown: call.gw.shutdown.clone(),
        };
        tokio::spawn(run.run(initial, end).instrument(tracing::Span::current()));
        return Ok(streaming(rx, sse));
    }
    // Older than the cache reaches: a store watch of this request's own (410 Expired when compacted).
    let (initial, start) = match revision {
        None | Some(0) => call.gw.objects.list(call.info, call.ns()).await?,
        Some(n) => (Vec::new(), n),
    };
    // A compacted revision fails here, before anything is streamed: the client gets a plain 410.
    let stream = call.gw.objects.watch(call.info, call.ns(), start).await?;
    let run = Run {
        tx,
        stream,
        filter,
        events,
        deadline,
        shutdown: call.gw.shutdown.clone(),
    };
    // The stream outlives the handler; it stays in the request's span (and trace).
    tokio::spawn(run.run(initial).instrument(tracing::Span::current()));
    Ok(streaming(rx, sse))
}

/// The annotation of the bookmark that ends a watch's initial events (`sendInitialEvents=true`).
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// Where a watch starts, from its `resourceVersion` (`revision`), `resourceVersionMatch` and `sendInitialEvents`,
/// checked as kube-apiserver checks a watch's options (422 with field causes); and whether the initial events end
/// with a bookmark.
///
/// Without `sendInitialEvents`, an unset resourceVersion or `0` starts from a snapshot (sent as ADDED events) and
/// any other from the changes after it. With `sendInitialEvents=true` (a streaming list, which requires
/// `resourceVersionMatch=NotOlderThan` and `allowWatchBookmarks=true`), the snapshot is as of the store's current
/// revision (unset), any (`0`), or at least the given revision, and a bookmark annotated
/// `k8s.io/initial-events-end` follows it. With `sendInitialEvents=false` no snapshot is sent: the watch starts
/// at the given revision, or now.
fn starting_point(
    query: &crate::request::Query,
    revision: Option<i64>,
) -> Result<(cache::From, bool), ApiError> {
    let matching = query.resource_version_match.as_str();
    let forbidden = |field: &str, message: &str| navarch_bus::api::Cause {
        reason: "FieldValueForbidden".into(),
        field: field.into(),
        message: format!("Forbidden: {message}"),
    };
    let mut causes = Vec::new();
    match query.send_initial_events {
        None if !matching.is_empty() => causes.push(forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        )),
        Some(_) if matching != "NotOlderThan" => causes.push(forbidden(
            "resourceVersionMatch",
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        )),
        _ => {}
    }
    if query.send_initial_events == Some(true) && !query.allow_watch_bookmarks {
        causes.push(forbidden(
            "allowWatchBookmarks",
            "allowWatchBookmarks must be true when sendInitialEvents is true",
        ));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid_kind(
            "meta.k8s.io",
            "ListOptions",
            "",
            causes,
        ));
    }
    Ok(match (query.send_initial_events, revision) {
        (Some(true), at) => (cache::From::Snapshot(at), true),
        (Some(false), Some(n)) if n > 0 => (cache::From::Revision(n), false),
        // Nothing of the past: from the store's current revision.
        (Some(false), _) => (cache::From::Now, false),
        (None, None) => (cache::From::Snapshot(None), false),
        (None, Some(0)) => (cache::From::Snapshot(Some(0)), false),
        (None, Some(n)) => (cache::From::Revision(n), false),
    })
}

/// Whether the client asked for Server-Sent Events (`Accept: text/event-stream`, as browsers' EventSource sends).
fn wants_sse(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|entry| {
            entry
                .split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case(SSE))
        })
}

/// The media type of Server-Sent Events.
const SSE: &str = "text/event-stream";

/// The response whose body is the lines sent on `rx`.
fn streaming(rx: mpsc::Receiver<Result<Bytes, Infallible>>, sse: bool) -> axum::response::Response {
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let content_type = if sse { SSE } else { JSON };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// One watch fed by the watch cache.
struct Cached {
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    live: tokio::sync::broadcast::Receiver<std::sync::Arc<cache::Change>>,
    backlog: Vec<std::sync::Arc<cache::Change>>,
    namespace: Option<String>,
    filter: Filter,
    events: Events,
    deadline: tokio::time::Instant,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Cached {
    /// Sends one change if this watcher sees it; false when the client is gone.
    async fn send(&mut self, change: &cache::Change) -> bool {
        if self
            .namespace
            .as_deref()
            .is_some_and(|ns| ns != change.namespace)
            && change.event.kind != WatchType::Bookmark
        {
            return true;
        }
        let Some(kind) = self.filter.kind_of(&change.event) else {
            return true;
        };
        let encode = || {
            self.events
                .encode(kind.as_str(), change.event.object.clone())
        };
        // Plain JSON lines are the same for every watcher sent this type of event: encoded once per change.
        let line =
            if !self.events.sse && (self.events.table.is_none() || kind == WatchType::Bookmark) {
                change.line(kind, encode)
            } else {
                encode()
            };
        self.tx.send(Ok(line)).await.is_ok()
    }

    /// Sends the initial objects, then (for `sendInitialEvents`) the bookmark marking their end at revision
    /// `end`, then the changes.
    async fn run(mut self, initial: Vec<Value>, end: Option<i64>) {
        for object in initial {
            if self.filter.initial(&object)
                && self
                    .tx
                    .send(Ok(self.events.encode_initial(object)))
                    .await
                    .is_err()
            {
                return;
            }
        }
        if let Some(revision) = end {
            let bookmark = serde_json::json!({"metadata": {
                "resourceVersion": revision.to_string(),
                "annotations": {INITIAL_EVENTS_END: "true"},
            }});
            let line = self.events.encode(WatchType::Bookmark.as_str(), bookmark);
            if self.tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        for change in std::mem::take(&mut self.backlog) {
            if !self.send(&change).await {
                return;
            }
        }
        let deadline = tokio::time::sleep_until(self.deadline);
        tokio::pin!(deadline);
        loop {
            let received = tokio::select! {
                _ = &mut deadline => return,
                _ = self.tx.closed() => return,
                _ = self.shutdown.wait_for(|stop| *stop) => return,
                received = self.live.recv() => received,
            };
            match received {
                Ok(change) if cache::is_reset(&change) => return,
                Ok(change) => {
                    if !self.send(&change).await {
                        return;
                    }
                }
                // Too slow for the broadcast, or the cache restarted: end the watch; the client re-watches from
                // the last resourceVersion it saw.
                Err(_) => return,
            }
        }
    }
}

/// One watch event as sent.
#[derive(serde::Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    object: &'a Value,
}

/// Encodes events for one watcher.
struct Events {
    info: &'static ResourceInfo,
    table: Option<TableOptions>,
    /// Server-Sent Events framing instead of JSON lines.
    sse: bool,
}

impl Events {
    /// One line: `{"type":..,"object":..}\n`; as a Server-Sent Event, `id: <resourceVersion>`, `event: <type>` and
    /// `data: {"type":..,"object":..}` then a blank line.
    fn encode(&self, kind: &str, object: Value) -> Bytes {
        self.frame(kind, object, true)
    }

    /// An ADDED event of the initial snapshot. As a Server-Sent Event it carries no `id:`: an object's own
    /// resourceVersion is not the snapshot's, so resuming from it could skip changes. A client cut off before the
    /// first change re-watches from a fresh snapshot.
    fn encode_initial(&self, object: Value) -> Bytes {
        self.frame(WatchType::Added.as_str(), object, false)
    }

    fn frame(&self, kind: &str, object: Value, with_id: bool) -> Bytes {
        let object = match (kind, &self.table) {
            ("ERROR" | "BOOKMARK", _) => object,
            (_, None) => with_type(self.info, object),
            (_, Some(options)) => {
                let object = with_type(self.info, object);
                let rv = meta::resource_version(&object).map(str::to_string);
                let options = TableOptions {
                    now: meta::now(),
                    ..*options
                };
                table::table(self.info, &[object], rv.as_deref(), &options)
            }
        };
        // A struct keeps `type` first on the wire, as kube-apiserver writes it.
        let mut line = serde_json::to_vec(&Event {
            kind,
            object: &object,
        })
        .unwrap_or_default();
        if self.sse {
            // JSON has no raw newlines, so the event is one `data:` line.
            let mut framed = Vec::with_capacity(line.len() + 64);
            if with_id && kind != "ERROR" {
                if let Some(rv) = meta::resource_version(&object) {
                    framed.extend_from_slice(format!("id: {rv}\n").as_bytes());
                }
            }
            framed.extend_from_slice(format!("event: {kind}\ndata: ").as_bytes());
            framed.append(&mut line);
            framed.extend_from_slice(b"\n\n");
            return Bytes::from(framed);
        }
        line.push(b'\n');
        Bytes::from(line)
    }
}

/// One running watch, feeding the response body.
struct Run {
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    stream: ObjectWatch,
    filter: Filter,
    events: Events,
    deadline: tokio::time::Instant,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Run {
    async fn send(&self, kind: &str, object: Value) -> bool {
        self.tx
            .send(Ok(self.events.encode(kind, object)))
            .await
            .is_ok()
    }

    async fn run(mut self, initial: Vec<Value>) {
        for object in initial {
            if self.filter.initial(&object)
                && self
                    .tx
                    .send(Ok(self.events.encode_initial(object)))
                    .await
                    .is_err()
            {
                return;
            }
        }
        let deadline = tokio::time::sleep_until(self.deadline);
        tokio::pin!(deadline);
        loop {
            let event = tokio::select! {
                _ = &mut deadline => return,
                _ = self.tx.closed() => return,
                _ = self.shutdown.wait_for(|stop| *stop) => return,
                event = self.stream.next() => event,
            };
            match event {
                None => return,
                Some(Err(e)) => {
                    self.send("ERROR", e.to_status()).await;
                    return;
                }
                Some(Ok(event)) => {
                    if let Some((kind, object)) = self.filter.decide(event) {
                        if !self.send(kind.as_str(), object).await {
                            return;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{IncludeObject, TableAccept};
    use navarch_bus::api::resource::by_kind;
    use serde_json::json;

    #[test]
    fn events_are_one_json_line_each() {
        let pods = by_kind("v1", "Pod").unwrap();
        let plain = Events {
            info: pods,
            table: None,
            sse: false,
        };
        let pod = json!({"metadata": {"name": "p1", "resourceVersion": "7"}});
        let line = plain.encode("ADDED", pod.clone());
        assert!(line.ends_with(b"\n"));
        assert!(line.starts_with(br#"{"type":"ADDED","object":"#));
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["type"], "ADDED");
        assert_eq!(v["object"]["kind"], "Pod");
        assert_eq!(v["object"]["apiVersion"], "v1");

        let tables = Events {
            info: pods,
            table: Some(TableOptions {
                accept: TableAccept::V1,
                include: IncludeObject::Metadata,
                now: meta::now(),
            }),
            sse: false,
        };
        let v: Value = serde_json::from_slice(&tables.encode("MODIFIED", pod)).unwrap();
        assert_eq!(v["object"]["kind"], "Table");
        assert_eq!(v["object"]["rows"].as_array().unwrap().len(), 1);
        assert_eq!(v["object"]["metadata"]["resourceVersion"], "7");
        assert!(v["object"]["columnDefinitions"].as_array().unwrap().len() > 2);

        let status = ApiError::expired("too old").to_status();
        let v: Value = serde_json::from_slice(&tables.encode("ERROR", status)).unwrap();
        assert_eq!(v["object"]["code"], 410);
    }

    #[test]
    fn server_sent_events_carry_the_resource_version_as_their_id() {
        let pods = by_kind("v1", "Pod").unwrap();
        let sse = Events {
            info: pods,
            table: None,
            sse: true,
        };
        let pod = json!({"metadata": {"name": "p1", "resourceVersion": "7"}});
        let text = String::from_utf8(sse.encode("MODIFIED", pod).to_vec()).unwrap();
        let mut lines = text.split('\n');
        assert_eq!(lines.next(), Some("id: 7"));
        assert_eq!(lines.next(), Some("event: MODIFIED"));
        let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["type"], "MODIFIED");
        assert_eq!(v["object"]["kind"], "Pod");
        assert_eq!(
            lines.collect::<Vec<_>>(),
            vec!["", ""],
            "a blank line ends the event"
        );

        let error = String::from_utf8(
            sse.encode("ERROR", ApiError::expired("too old").to_status())
                .to_vec(),
        )
        .unwrap();
        assert!(error.starts_with("event: ERROR\ndata: "), "{error}");
    }

    #[test]
    fn event_stream_accept_headers_are_recognised() {
        let mut headers = axum::http::HeaderMap::new();
        assert!(!wants_sse(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, */*"),
        );
        assert!(!wants_sse(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        assert!(wants_sse(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, Text/Event-Stream;q=0.9"),
        );
        assert!(wants_sse(&headers));
    }
}
