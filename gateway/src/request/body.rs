//! Request bodies (JSON, YAML or Kubernetes' protobuf; size-limited) and content negotiation (`Accept` asking for a
//! Table). Answers are always JSON, whatever the `Accept`: kubectl and client-go take JSON answers to requests that
//! prefer protobuf.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use navarch_bus::api::{ApiError, Reason};
use serde_json::Value;

use super::protobuf::{self, MEDIA_TYPE as PROTOBUF};

/// The media type of a `Content-Type` or `Accept` entry, lowercased, without parameters.
fn media_type(raw: &str) -> String {
    raw.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(media_type)
}

/// Reads the whole body, refusing more than `limit` bytes with 413.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            Reason::RequestEntityTooLarge,
            format!("Request entity too large: limit is {limit}"),
        )
    };
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(e) => {
            let inner = e.into_inner();
            if inner.is::<http_body_util::LengthLimitError>() {
                Err(too_large())
            } else {
                Err(ApiError::bad_request(format!(
                    "the request body could not be read: {inner}"
                )))
            }
        }
    }
}

/// Whether the body is in Kubernetes' protobuf envelope.
pub fn is_protobuf(headers: &HeaderMap) -> bool {
    content_type(headers).as_deref() == Some(PROTOBUF)
}

/// Decodes an object sent as JSON (the default), YAML or Kubernetes' protobuf (into the JSON client-go would have
/// sent). Anything else is 415.
pub fn decode_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let kind = content_type(headers);
    let value: Value = match kind.as_deref() {
        None | Some("application/json") | Some("*/*") => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(ApiError::bad_request("the request body is empty"));
            }
            serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
            })?
        }
        Some("application/yaml") | Some("application/x-yaml") | Some("text/yaml") => {
            serde_norway::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("the request body is not valid YAML: {e}"))
            })?
        }
        Some(PROTOBUF) => protobuf::decode(body)?,
        Some(other) => return Err(unsupported(other)),
    };
    if !value.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    Ok(value)
}

fn unsupported(media: &str) -> ApiError {
    ApiError::new(
        Reason::UnsupportedMediaType,
        format!(
            "the body of the request was in an unknown format ({media}) - accepted media types include: \
             application/json, application/yaml, {PROTOBUF}"
        ),
    )
}

/// The media type of server-side apply's PATCH.
const APPLY: &str = "application/apply-patch+yaml";

/// Whether a PATCH is a server-side apply (`application/apply-patch+yaml`).
pub fn is_apply(headers: &HeaderMap) -> bool {
    content_type(headers).as_deref() == Some(APPLY)
}

/// How a PATCH body is to be applied, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// RFC 7386 JSON merge patch.
    Merge,
    /// RFC 6902 JSON patch.
    Json,
    /// Kubernetes' strategic merge patch.
    Strategic,
}

impl PatchKind {
    /// The patch kind named by `headers`' content type; 415 for server-side apply and anything unknown.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        match content_type(headers).as_deref() {
            Some("application/merge-patch+json") => Ok(Self::Merge),
            Some("application/json-patch+json") => Ok(Self::Json),
            Some("application/strategic-merge-patch+json") => Ok(Self::Strategic),
            Some(APPLY) => Err(ApiError::new(
                Reason::UnsupportedMediaType,
                "server-side apply (application/apply-patch+yaml) is served on objects and their /status, \
                 not here",
            )),
            other => Err(ApiError::new(
                Reason::UnsupportedMediaType,
                format!(
                    "the patch content type {:?} is not supported - accepted: application/merge-patch+json, \
                     application/json-patch+json, application/strategic-merge-patch+json",
                    other.unwrap_or_default()
                ),
            )),
        }
    }
}

/// Which Table the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableAccept {
    /// `meta.k8s.io/v1`.
    V1,
    /// `meta.k8s.io/v1beta1`.
    V1beta1,
}

impl TableAccept {
    /// The Table's apiVersion.
    pub fn api_version(self) -> &'static str {
        match self {
            TableAccept::V1 => "meta.k8s.io/v1",
            TableAccept::V1beta1 => "meta.k8s.io/v1beta1",
        }
    }

    /// The answer's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            TableAccept::V1 => "application/json;as=Table;v=v1;g=meta.k8s.io",
            TableAccept::V1beta1 => "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
        }
    }
}

/// The first Table the `Accept` header lists (`application/json;as=Table;v=v1;g=meta.k8s.io`), if any.
pub fn wants_table(headers: &HeaderMap) -> Option<TableAccept> {
    let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
    accept.split(',').find_map(|entry| {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next()?.to_ascii_lowercase();
        if media != "application/json" && media != "application/*" && media != "*/*" {
            return None;
        }
        let (mut table, mut group, mut version) = (false, false, None);
        for param in parts {
            match param.split_once('=') {
                Some(("as", "Table")) => table = true,
                Some(("g", "meta.k8s.io")) => group = true,
                Some(("v", "v1")) => version = Some(TableAccept::V1),
                Some(("v", "v1beta1")) => version = Some(TableAccept::V1beta1),
                _ => {}
            }
        }
        if table && group {
            version
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn kubectl_get_accept_asks_for_a_v1_table() {
        let h = headers(
            header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
        );
        assert_eq!(wants_table(&h), Some(TableAccept::V1));
        let h = headers(
            header::ACCEPT,
            "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
        );
        assert_eq!(wants_table(&h), Some(TableAccept::V1beta1));
        let h = headers(
            header::ACCEPT,
            "application/vnd.kubernetes.protobuf, application/json",
        );
        assert_eq!(wants_table(&h), None);
        assert_eq!(wants_table(&HeaderMap::new()), None);
    }

    #[test]
    fn bodies_decode_from_json_and_yaml_and_refuse_the_rest() {
        let json = headers(header::CONTENT_TYPE, "application/json");
        assert_eq!(decode_object(&json, br#"{"a":1}"#).unwrap()["a"], 1);
        assert_eq!(
            decode_object(&json, b"{").unwrap_err().reason,
            Reason::BadRequest
        );
        assert_eq!(
            decode_object(&json, b"  ").unwrap_err().reason,
            Reason::BadRequest
        );
        assert_eq!(
            decode_object(&json, b"[1]").unwrap_err().reason,
            Reason::BadRequest
        );

        let yaml = headers(header::CONTENT_TYPE, "application/yaml; charset=utf-8");
        let v = decode_object(&yaml, b"kind: Pod\nmetadata:\n  name: p\n").unwrap();
        assert_eq!(v["metadata"]["name"], "p");
        assert_eq!(
            decode_object(&yaml, b"kind: [unclosed").unwrap_err().reason,
            Reason::BadRequest
        );

        let pb = headers(header::CONTENT_TYPE, PROTOBUF);
        assert!(is_protobuf(&pb));
        assert!(!is_protobuf(&json));
        let e = decode_object(&pb, b"k8s\0").unwrap_err();
        assert_eq!(e.reason, Reason::BadRequest, "{}", e.message);
        assert_eq!(
            decode_object(&pb, br#"{"a":1}"#).unwrap_err().reason,
            Reason::BadRequest
        );
        let cbor = headers(header::CONTENT_TYPE, "application/cbor");
        let e = decode_object(&cbor, b"\xa0").unwrap_err();
        assert_eq!(e.reason, Reason::UnsupportedMediaType);
        assert!(e.message.contains(PROTOBUF), "{}", e.message);
        assert_eq!(
            decode_object(&HeaderMap::new(), br#"{"a":1}"#).unwrap()["a"],
            1
        );
    }

    #[test]
    fn patch_kinds_follow_the_content_type() {
        let h = headers(
            header::CONTENT_TYPE,
            "application/strategic-merge-patch+json",
        );
        assert_eq!(PatchKind::from_headers(&h).unwrap(), PatchKind::Strategic);
        let h = headers(header::CONTENT_TYPE, "application/merge-patch+json");
        assert_eq!(PatchKind::from_headers(&h).unwrap(), PatchKind::Merge);
        let h = headers(header::CONTENT_TYPE, "application/json-patch+json");
        assert_eq!(PatchKind::from_headers(&h).unwrap(), PatchKind::Json);
        let h = headers(header::CONTENT_TYPE, "application/apply-patch+yaml");
        assert_eq!(PatchKind::from_headers(&h).unwrap_err().code(), 415);
        assert_eq!(
            PatchKind::from_headers(&HeaderMap::new())
                .unwrap_err()
                .code(),
            415
        );
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_413() {
        let e = read_body(Body::from(vec![b'x'; 100]), 10)
            .await
            .unwrap_err();
        assert_eq!(e.code(), 413);
        assert_eq!(read_body(Body::from("abc"), 10).await.unwrap(), "abc");
    }
}
