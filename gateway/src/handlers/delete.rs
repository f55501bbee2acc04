//! DELETE: `DeleteOptions` (grace period, preconditions, propagation). The propagation policy becomes the owner's
//! `orphan` or `foregroundDeletion` finalizer ([`navarch_bus::api::deletion`]); the garbage collector in the
//! controllers role does the rest.

use axum::http::{HeaderMap, StatusCode};
use navarch_bus::api::{ApiError, DeleteOptions, Propagation};
use serde::Deserialize;

use super::Call;
use crate::request::{decode_object, is_protobuf};
use crate::status::Answer;

/// Kubernetes' `DeleteOptions` body, the fields the gateway acts on.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Options {
    grace_period_seconds: Option<i64>,
    preconditions: Option<Preconditions>,
    propagation_policy: Option<String>,
    orphan_dependents: Option<bool>,
    dry_run: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Preconditions {
    uid: Option<String>,
    resource_version: Option<String>,
}

/// The DeleteOptions in the body: JSON, or protobuf (client-go's typed clients send theirs so); none when empty.
fn parse_options(headers: &HeaderMap, body: &[u8]) -> Result<Options, ApiError> {
    let malformed = |e: serde_json::Error| {
        ApiError::bad_request(format!("the DeleteOptions body is malformed: {e}"))
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Options::default());
    }
    if is_protobuf(headers) {
        return serde_json::from_value(decode_object(headers, body)?).map_err(malformed);
    }
    serde_json::from_slice(body).map_err(malformed)
}

fn propagation(options: &Options, query: Option<&str>) -> Result<Option<Propagation>, ApiError> {
    let policy = options.propagation_policy.as_deref().or(query);
    Propagation::from_options(policy, options.orphan_dependents)
}

/// Deletes the object named `name`; 200 with the object as deleted (or as it is while deletion is pending).
pub(crate) async fn delete(mut call: Call, name: &str) -> Answer {
    let options = parse_options(&call.headers, &call.body)?;
    match options.dry_run.as_deref().unwrap_or_default() {
        [] => {}
        [all] if all == "All" => call.gw.objects = call.gw.objects.clone().dry_run(),
        other => {
            return Err(
                ApiError::bad_request(format!("dryRun must be [\"All\"], not {other:?}")).into(),
            )
        }
    }
    let propagation = propagation(&options, call.query.propagation_policy.as_deref())?;
    let preconditions = options.preconditions.unwrap_or_default();
    let delete_options = DeleteOptions {
        grace_period_seconds: options
            .grace_period_seconds
            .or(call.query.grace_period_seconds),
        uid: preconditions.uid,
        resource_version: preconditions.resource_version,
        propagation,
    };
    let object = call
        .gw
        .objects
        .delete(call.info, call.ns(), name, &delete_options)
        .await?;
    Ok(call.object(StatusCode::OK, object, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_options_parse_and_pick_a_propagation() {
        let o = parse_options(
            &HeaderMap::new(),
            br#"{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":0,
            "preconditions":{"uid":"u1","resourceVersion":"7"},"propagationPolicy":"Orphan"}"#,
        )
        .unwrap();
        assert_eq!(o.grace_period_seconds, Some(0));
        assert_eq!(o.preconditions.as_ref().unwrap().uid.as_deref(), Some("u1"));
        assert_eq!(propagation(&o, None).unwrap(), Some(Propagation::Orphan));
        assert_eq!(
            parse_options(&HeaderMap::new(), b"").unwrap(),
            Options::default()
        );
        assert_eq!(propagation(&Options::default(), None).unwrap(), None);
        assert_eq!(
            propagation(&Options::default(), Some("Foreground")).unwrap(),
            Some(Propagation::Foreground)
        );
        let legacy = Options {
            orphan_dependents: Some(true),
            ..Options::default()
        };
        assert_eq!(
            propagation(&legacy, None).unwrap(),
            Some(Propagation::Orphan)
        );
        let both = Options {
            orphan_dependents: Some(true),
            propagation_policy: Some("Orphan".into()),
            ..Options::default()
        };
        assert_eq!(propagation(&both, None).unwrap_err().code(), 422);
        assert_eq!(
            propagation(&Options::default(), Some("Sideways"))
                .unwrap_err()
                .code(),
            422
        );
        assert_eq!(
            parse_options(&HeaderMap::new(), b"{").unwrap_err().code(),
            400
        );
        assert_eq!(
            parse_options(&HeaderMap::new(), br#"{"gracePeriodSeconds":"x"}"#)
                .unwrap_err()
                .code(),
            400
        );
    }

    #[test]
    fn delete_options_also_come_as_protobuf() {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/vnd.kubernetes.protobuf"),
        );
        // Envelope {typeMeta {v1, DeleteOptions}, raw {gracePeriodSeconds: 0, propagationPolicy: Foreground}}.
        let mut body =
            b"k8s\0\x0a\x13\x0a\x02v1\x12\x0dDeleteOptions\x12\x0e\x08\x00\x22\x0a".to_vec();
        body.extend(b"Foreground");
        let o = parse_options(&headers, &body).unwrap();
        assert_eq!(o.grace_period_seconds, Some(0));
        assert_eq!(o.propagation_policy.as_deref(), Some("Foreground"));
        assert_eq!(
            parse_options(&headers, b"k8s\0\xff").unwrap_err().code(),
            400
        );
    }
}
