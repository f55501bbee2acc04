//! DELETE: `DeleteOptions` (grace period, preconditions, propagation). Background and Foreground delete the owner
//! at once and leave its dependents to the garbage collector; Orphan first strips this owner's reference from
//! every dependent.

use axum::http::{HeaderMap, StatusCode};
use navarch_bus::api::admission::Part;
use navarch_bus::api::{meta, ApiError, DeleteOptions, Reason, RESOURCES};
use serde::Deserialize;
use serde_json::Value;

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

/// What happens to an object's dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Propagation {
    Orphan,
    Background,
    Foreground,
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

fn propagation(options: &Options, query: Option<&str>) -> Result<Propagation, ApiError> {
    let policy = options.propagation_policy.as_deref().or(query);
    if policy.is_some() && options.orphan_dependents.is_some() {
        return Err(ApiError::new(
            Reason::Invalid,
            "DeleteOptions is invalid: propagationPolicy: Invalid value: orphanDependents and propagationPolicy \
             cannot both be set",
        ));
    }
    match (policy, options.orphan_dependents) {
        (Some("Orphan"), _) | (None, Some(true)) => Ok(Propagation::Orphan),
        (Some("Background"), _) | (None, _) => Ok(Propagation::Background),
        (Some("Foreground"), _) => Ok(Propagation::Foreground),
        (Some(other), _) => Err(ApiError::new(
            Reason::Invalid,
            format!(
                "DeleteOptions is invalid: propagationPolicy: Unsupported value: \"{other}\": supported values: \
                 \"Foreground\", \"Background\", \"Orphan\""
            ),
        )),
    }
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
    };
    if propagation == Propagation::Orphan {
        let owner = call.gw.objects.get(call.info, call.ns(), name).await?;
        if let Some(uid) = meta::uid(&owner) {
            orphan_dependents(&call, uid).await?;
        }
    }
    let object = call
        .gw
        .objects
        .delete(call.info, call.ns(), name, &delete_options)
        .await?;
    Ok(call.object(StatusCode::OK, object, &[]))
}

fn owned_by(object: &Value, uid: &str) -> bool {
    object["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
}

/// Removes the owner reference to `uid` from every object that has one: in the owner's namespace for a
/// namespaced owner, everywhere for a cluster-scoped one.
async fn orphan_dependents(call: &Call, uid: &str) -> Result<(), ApiError> {
    for info in RESOURCES {
        let namespace = if call.info.namespaced {
            call.ns()
        } else {
            None
        };
        if !info.namespaced && namespace.is_some() {
            continue; // a namespaced owner has no cluster-scoped dependents
        }
        let (objects, _) = call.gw.objects.list(info, namespace).await?;
        for dependent in objects.iter().filter(|o| owned_by(o, uid)) {
            let name = meta::name(dependent).unwrap_or_default();
            let result = call
                .gw
                .objects
                .update_with(
                    info,
                    meta::namespace(dependent),
                    name,
                    Part::Main,
                    |mut o| {
                        if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                            refs.retain(|r| r["uid"] != uid);
                        }
                        Ok(o)
                    },
                )
                .await;
            match result {
                Ok(_) => {}
                Err(e) if e.reason == Reason::NotFound => {} // gone meanwhile: nothing to orphan
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!(propagation(&o, None).unwrap(), Propagation::Orphan);
        assert_eq!(
            parse_options(&HeaderMap::new(), b"").unwrap(),
            Options::default()
        );
        assert_eq!(
            propagation(&Options::default(), None).unwrap(),
            Propagation::Background
        );
        assert_eq!(
            propagation(&Options::default(), Some("Foreground")).unwrap(),
            Propagation::Foreground
        );
        let legacy = Options {
            orphan_dependents: Some(true),
            ..Options::default()
        };
        assert_eq!(propagation(&legacy, None).unwrap(), Propagation::Orphan);
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

    #[test]
    fn owner_references_are_matched_by_uid() {
        let pod = json!({"metadata": {"ownerReferences": [{"uid": "u1"}, {"uid": "u2"}]}});
        assert!(owned_by(&pod, "u2"));
        assert!(!owned_by(&pod, "u3"));
        assert!(!owned_by(&json!({}), "u1"));
    }
}
