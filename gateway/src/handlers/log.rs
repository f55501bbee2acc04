//! `GET .../pods/{name}/log`: checks the pod and the query as kube-apiserver does, asks the pod's node agent for
//! the log over the bus ([`navarch_bus::logs`]) and streams it to the client as `text/plain`, chunk by chunk.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use bytes::Bytes;
use navarch_bus::api::{ApiError, Reason};
use navarch_bus::logs::{self, ChunkReceiver, LogReply, LogRequest};
use serde_json::Value;
use tracing::Instrument;

use super::Call;
use crate::status::{Answer, Failure};

/// How long the node agent has to accept or refuse a log request.
const AGENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The query parameters of `pods/log` (kube-apiserver's `PodLogOptions`).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct LogOptions {
    container: Option<String>,
    follow: bool,
    previous: bool,
    tail_lines: Option<i64>,
    limit_bytes: Option<i64>,
    since_seconds: Option<i64>,
    /// `sinceTime`, as RFC 3339 (checked here, read by the agent).
    since_time: Option<String>,
    timestamps: bool,
}

impl LogOptions {
    /// Parses the raw query string; what Navarch cannot honour is refused rather than ignored.
    pub(crate) fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut options = Self::default();
        let Some(raw) = raw else { return Ok(options) };
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            let value = value.as_ref();
            match key.as_ref() {
                "container" if !value.is_empty() => options.container = Some(value.to_string()),
                "follow" => options.follow = flag("follow", value)?,
                "previous" => options.previous = flag("previous", value)?,
                "tailLines" => options.tail_lines = Some(number("tailLines", value)?),
                "limitBytes" => options.limit_bytes = Some(number("limitBytes", value)?),
                "sinceSeconds" => options.since_seconds = Some(number("sinceSeconds", value)?),
                "timestamps" => options.timestamps = flag("timestamps", value)?,
                "sinceTime" => {
                    if navarch_bus::api::meta::parse_time(value).is_none() {
                        return Err(ApiError::bad_request(format!(
                            "sinceTime: parsing time {value:?} as RFC 3339 failed"
                        )));
                    }
                    options.since_time = Some(value.to_string());
                }
                _ => {} // insecureSkipTLSVerifyBackend and the rest: nothing to do
            }
        }
        // The validation messages of kube-apiserver's PodLogOptions.
        if options.limit_bytes.is_some_and(|n| n < 1) {
            return Err(ApiError::bad_request("limitBytes: must be greater than 0"));
        }
        if options.since_seconds.is_some_and(|n| n < 1) {
            return Err(ApiError::bad_request(
                "sinceSeconds: must be greater than 0",
            ));
        }
        if options.tail_lines.is_some_and(|n| n < 0) {
            return Err(ApiError::bad_request(
                "tailLines: must be greater than or equal to 0",
            ));
        }
        if options.since_seconds.is_some() && options.since_time.is_some() {
            return Err(ApiError::bad_request(
                "at most one of sinceTime or sinceSeconds may be specified",
            ));
        }
        Ok(options)
    }
}

fn flag(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "True" | "1" | "" => Ok(true),
        "false" | "False" | "0" => Ok(false),
        other => Err(ApiError::bad_request(format!(
            "{name} must be true or false, not {other:?}"
        ))),
    }
}

fn number(name: &str, value: &str) -> Result<i64, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{name} must be an integer, not {value:?}")))
}

/// The container to read and the pod's node, or kube-apiserver's refusal.
pub(crate) fn target<'a>(
    pod: &'a Value,
    name: &str,
    container: Option<&'a str>,
) -> Result<(&'a str, &'a str), ApiError> {
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let container = match (container, names.as_slice()) {
        (Some(c), _) if names.contains(&c) => c,
        (Some(c), _) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )))
        }
        (None, [only]) => only,
        (None, _) => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )))
        }
    };
    let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    Ok((container, node))
}

/// Serves one `pods/log` request.
pub(crate) async fn serve(call: Call, name: &str, raw_query: Option<&str>) -> Answer {
    if call.info.kind != "Pod" {
        return Err(Failure(crate::status::path_not_found()));
    }
    let options = LogOptions::parse(raw_query)?;
    let pod = call.gw.objects.get(call.info, call.ns(), name).await?;
    let (container, node) = target(&pod, name, options.container.as_deref())?;
    let bus = call.gw.objects.store().bus().clone();
    let inbox = logs::inbox(bus.subjects());
    let unreachable = |e: &dyn std::fmt::Display| {
        ApiError::new(
            Reason::ServiceUnavailable,
            format!("cannot reach the node agent of node {node:?}: {e}"),
        )
    };
    let mut receiver = ChunkReceiver::subscribe(&bus, &inbox)
        .await
        .map_err(|e| unreachable(&e))?;
    let request = LogRequest {
        namespace: call.ns().unwrap_or("default").to_string(),
        pod: name.to_string(),
        uid: pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        container: container.to_string(),
        tail_lines: options.tail_lines,
        limit_bytes: options.limit_bytes,
        follow: options.follow,
        previous: options.previous,
        since_seconds: options.since_seconds,
        since_time: options.since_time,
        timestamps: options.timestamps,
        inbox,
    };
    let reply: LogReply = bus
        .request_encoded(&bus.subjects().agent(node), &request, AGENT_TIMEOUT)
        .await
        .map_err(|e| unreachable(&e))?;
    if let Some(error) = reply.error {
        return Err(Failure(ApiError::bad_request(error)));
    }
    // One chunk in hand at a time: the agent's next chunk waits until the client took this one.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::convert::Infallible>>(1);
    let (pod_name, container) = (name.to_string(), container.to_string());
    let pump = async move {
        while let Some(chunk) = receiver.next_chunk().await {
            match chunk {
                Ok(chunk) => {
                    if let Some(error) = &chunk.error {
                        tracing::warn!(pod = %pod_name, %container, %error, "log stream ended by the agent");
                    }
                    if !chunk.data.is_empty() && tx.send(Ok(chunk.data.into())).await.is_err() {
                        return; // the client left; dropping the inbox tells the agent
                    }
                }
                Err(e) => {
                    tracing::warn!(pod = %pod_name, %container, error = %e, "log stream cut short");
                    return;
                }
            }
        }
    };
    tokio::spawn(pump.instrument(tracing::Span::current()));
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_parameters_parse_like_kube_apiserver() {
        let o = LogOptions::parse(Some(
            "container=c&follow=true&tailLines=2&limitBytes=10&previous=false&insecureSkipTLSVerifyBackend=true",
        ))
        .unwrap();
        assert_eq!(
            o,
            LogOptions {
                container: Some("c".into()),
                follow: true,
                tail_lines: Some(2),
                limit_bytes: Some(10),
                ..Default::default()
            }
        );
        assert_eq!(LogOptions::parse(None).unwrap(), LogOptions::default());
        assert!(LogOptions::parse(Some("timestamps=false")).is_ok());
        let o = LogOptions::parse(Some("timestamps=true&sinceSeconds=10")).unwrap();
        assert!(o.timestamps);
        assert_eq!(o.since_seconds, Some(10));
        let o = LogOptions::parse(Some("sinceTime=2024-01-01T00%3A00%3A00Z")).unwrap();
        assert_eq!(o.since_time.as_deref(), Some("2024-01-01T00:00:00Z"));
        for bad in [
            "tailLines=x",
            "tailLines=-1",
            "limitBytes=0",
            "sinceSeconds=0",
            "follow=maybe",
            "timestamps=often",
            "sinceTime=yesterday",
            "sinceTime=2024-01-01T00:00:00Z&sinceSeconds=5",
        ] {
            let e = LogOptions::parse(Some(bad)).unwrap_err();
            assert_eq!(e.reason, Reason::BadRequest, "{bad}");
        }
    }

    #[test]
    fn containers_and_nodes_are_checked_with_kubernetes_messages() {
        let two = json!({"spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(target(&two, "p", Some("b")).unwrap(), ("b", "n1"));
        assert_eq!(
            target(&two, "p", None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert_eq!(
            target(&two, "p", Some("nope")).unwrap_err().message,
            "container nope is not valid for pod p"
        );
        let one = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(
            target(&one, "p", None).unwrap_err().message,
            "pod p does not have a host assigned"
        );
        assert!(target(&json!({}), "p", None).is_err());
    }
}
