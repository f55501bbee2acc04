//! Request bodies in Kubernetes' protobuf envelope (`application/vnd.kubernetes.protobuf`, what client-go's typed
//! clients and `kubectl create namespace|configmap|secret|deployment` send), decoded into the JSON object client-go
//! would have sent for the same object, so that everything after decoding is the JSON path.
//!
//! The envelope is the magic `k8s\0` followed by a `runtime.Unknown`: `typeMeta` (apiVersion, kind), `raw` (the
//! object's message), `contentEncoding` and `contentType` (both empty in practice).
//!
//! # Layout
//! - `schema`: the messages (from `proto/`, compiled by `build.rs`) and each field's Go JSON rule
//!   (`proto/go-json.tsv`); which message a kind is.
//! - `json`: a decoded message printed as Go's encoding/json prints the object.

mod json;
mod schema;
#[cfg(test)]
mod tests;

use navarch_bus::api::{ApiError, Reason};
use prost_reflect::DynamicMessage;
use serde_json::Value;

use schema::Schema;

/// The media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
pub(crate) const MAGIC: [u8; 4] = *b"k8s\0";

const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";

/// Decodes a protobuf body into the object's JSON (with `apiVersion` and `kind` from the envelope). Malformed
/// bodies are 400 BadRequest; a kind or encoding the gateway cannot decode is 415 UnsupportedMediaType.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let schema = Schema::get().map_err(ApiError::internal)?;
    envelope(schema, body, 0)
}

fn malformed(what: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("the protobuf request body is malformed: {what}"))
}

fn unsupported(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        Reason::UnsupportedMediaType,
        format!("{what}; send the object as application/json"),
    )
}

fn envelope(schema: &Schema, body: &[u8], depth: usize) -> Result<Value, ApiError> {
    let Some(rest) = body.strip_prefix(&MAGIC) else {
        return Err(malformed(
            "it does not start with Kubernetes' protobuf magic bytes \"k8s\\x00\"",
        ));
    };
    let unknown = schema
        .message(UNKNOWN)
        .ok_or_else(|| ApiError::internal(format!("{UNKNOWN} is missing from the schema")))?;
    let unknown = DynamicMessage::decode(unknown, rest).map_err(malformed)?;
    let text = |message: &DynamicMessage, name: &str| -> String {
        message
            .get_field_by_name(name)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let type_meta = unknown
        .get_field_by_name("typeMeta")
        .and_then(|v| v.as_message().cloned());
    let (api_version, kind) = type_meta
        .map(|t| (text(&t, "apiVersion"), text(&t, "kind")))
        .unwrap_or_default();
    let encoding = text(&unknown, "contentEncoding");
    if !encoding.is_empty() {
        return Err(unsupported(format!(
            "the protobuf envelope's content encoding {encoding:?} is not supported"
        )));
    }
    let content_type = text(&unknown, "contentType");
    if !content_type.is_empty() && content_type != MEDIA_TYPE {
        return Err(unsupported(format!(
            "the protobuf envelope's content type {content_type:?} is not supported"
        )));
    }
    if kind.is_empty() {
        return Err(malformed("the envelope names no kind"));
    }
    let Some(desc) = schema.kind(&api_version, &kind) else {
        return Err(unsupported(format!(
            "the Navarch gateway cannot decode protobuf bodies of kind {kind:?} in {api_version:?}"
        )));
    };
    let raw = unknown
        .get_field_by_name("raw")
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    let object = DynamicMessage::decode(desc, raw)
        .map_err(|e| malformed(format!("the {kind} does not decode: {e}")))?;
    let nested = |bytes: &[u8], depth: usize| envelope(schema, bytes, depth).map_err(|e| e.message);
    let mut value = json::message(schema, &object, depth, &nested)
        .map_err(|e| malformed(format!("the {kind} is invalid: {e}")))?;
    if let Value::Object(map) = &mut value {
        // TypeMeta's fields are `omitempty`.
        if !api_version.is_empty() {
            map.insert("apiVersion".into(), Value::String(api_version));
        }
        map.insert("kind".into(), Value::String(kind));
    }
    Ok(value)
}
