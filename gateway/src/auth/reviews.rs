//! The create-only review APIs: "who am I" (`SelfSubjectReview`, `kubectl auth whoami`), "may I"
//! (`SelfSubjectAccessReview`, `kubectl auth can-i`), "what may I" (`SelfSubjectRulesReview`, `can-i --list`),
//! "may they" (`SubjectAccessReview`, `LocalSubjectAccessReview`) and "whose token is this" (`TokenReview`), and
//! the TokenRequest subresource of ServiceAccounts (`kubectl create token`). None is stored: each answers the
//! object it was sent with `status` filled in, 201 Created, as kube-apiserver does.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Extension;
use bytes::Bytes;
use k8s_openapi::api::authorization::v1::{NonResourceAttributes, ResourceAttributes};
use navarch_bus::api::{meta, resource, ApiError, Reason};
use serde_json::{json, Value};

use super::authn::{Identity, ServiceAccountClaims};
use super::middleware::{stored_uid, unix_now};
use super::rbac::UserInfo;
use crate::request::decode_object;
use crate::server::Gateway;
use crate::status::{self, Answer, Failure};

/// Default lifetime of a requested token: kube-apiserver's (1 h).
pub const DEFAULT_TOKEN_SECONDS: i64 = 3600;
/// Shortest lifetime a TokenRequest may ask for: kube-apiserver's (10 min).
pub const MIN_TOKEN_SECONDS: i64 = 600;
/// Longest lifetime granted: one year; longer requests are cut to it (kube-apiserver's
/// `--service-account-max-token-expiration` behaves the same way when set).
pub const MAX_TOKEN_SECONDS: i64 = 365 * 24 * 3600;

/// The body as an object of `kind` in `api_version`: 400 when it is another kind.
fn review_body(
    headers: &HeaderMap,
    body: &[u8],
    api_version: &str,
    kind: &str,
) -> Result<Value, ApiError> {
    let object = decode_object(headers, body)?;
    let sent = (
        object["apiVersion"].as_str().unwrap_or(api_version),
        object["kind"].as_str().unwrap_or(kind),
    );
    if sent != (api_version, kind) {
        return Err(ApiError::bad_request(format!(
            "expected a {kind} of {api_version}, got a {} of {}",
            sent.1, sent.0
        )));
    }
    Ok(object)
}

/// The answer: the review with its status, typed.
fn answer(api_version: &str, kind: &str, mut review: Value, status: Value) -> Answer {
    review["apiVersion"] = json!(api_version);
    review["kind"] = json!(kind);
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    review["status"] = status;
    Ok(status::json(StatusCode::CREATED, &review))
}

fn user_json(user: &UserInfo) -> Value {
    json!({"username": user.name, "uid": user.uid, "groups": user.groups})
}

fn field<T: serde::de::DeserializeOwned>(value: &Value, path: &str) -> Result<Option<T>, ApiError> {
    if value.is_null() {
        return Ok(None);
    }
    serde_json::from_value(value.clone())
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("{path}: {e}")))
}

/// Decides a review's `spec` for `user`; 400 unless exactly one of the attribute kinds is given.
async fn decide(
    gw: &Gateway,
    user: &UserInfo,
    spec: &Value,
    namespace: Option<&str>,
) -> Result<Value, ApiError> {
    let mut resource: Option<ResourceAttributes> =
        field(&spec["resourceAttributes"], "spec.resourceAttributes")?;
    let non_resource: Option<NonResourceAttributes> =
        field(&spec["nonResourceAttributes"], "spec.nonResourceAttributes")?;
    if resource.is_some() == non_resource.is_some() {
        return Err(invalid(
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    }
    if let (Some(r), Some(ns)) = (resource.as_mut(), namespace) {
        match r.namespace.as_deref() {
            None | Some("") => r.namespace = Some(ns.to_string()),
            Some(given) if given == ns => {}
            Some(_) => {
                return Err(invalid(
                    "spec.resourceAttributes.namespace",
                    "must match metadata.namespace",
                ))
            }
        }
    }
    let snapshot = gw.auth_cache.ready().await?;
    let decision = snapshot
        .policy
        .authorize_review(user, resource.as_ref(), non_resource.as_ref());
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    Ok(status)
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::new(
        Reason::Invalid,
        format!("{field}: Invalid value: {message}"),
    )
}

const AUTHORIZATION_V1: &str = "authorization.k8s.io/v1";
const AUTHENTICATION_V1: &str = "authentication.k8s.io/v1";

/// `POST /apis/authentication.k8s.io/v1/selfsubjectreviews`.
pub(crate) async fn self_subject(
    Extension(user): Extension<UserInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let kind = "SelfSubjectReview";
    let review = if body.is_empty() {
        json!({})
    } else {
        review_body(&headers, &body, AUTHENTICATION_V1, kind)?
    };
    answer(
        AUTHENTICATION_V1,
        kind,
        review,
        json!({"userInfo": user_json(&user)}),
    )
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`.
pub(crate) async fn self_subject_access(
    State(gw): State<Gateway>,
    Extension(user): Extension<UserInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let kind = "SelfSubjectAccessReview";
    let review = review_body(&headers, &body, AUTHORIZATION_V1, kind)?;
    let status = decide(&gw, &user, &review["spec"], None).await?;
    answer(AUTHORIZATION_V1, kind, review, status)
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectrulesreviews`.
pub(crate) async fn self_subject_rules(
    State(gw): State<Gateway>,
    Extension(user): Extension<UserInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let kind = "SelfSubjectRulesReview";
    let review = review_body(&headers, &body, AUTHORIZATION_V1, kind)?;
    let namespace = review["spec"]["namespace"].as_str().unwrap_or_default();
    let snapshot = gw.auth_cache.ready().await?;
    let (resource_rules, non_resource_rules) = snapshot.policy.rules_for(&user, namespace);
    let status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false,
    });
    answer(AUTHORIZATION_V1, kind, review, status)
}

/// The user a SubjectAccessReview asks about.
fn subject_of(spec: &Value) -> Result<UserInfo, ApiError> {
    let user = spec["user"].as_str().unwrap_or_default();
    let groups: Vec<String> = field(&spec["groups"], "spec.groups")?.unwrap_or_default();
    if user.is_empty() && groups.is_empty() {
        return Err(invalid(
            "spec.user",
            "at least one of user or group must be specified",
        ));
    }
    Ok(UserInfo {
        name: user.to_string(),
        uid: spec["uid"].as_str().unwrap_or_default().to_string(),
        groups,
    })
}

/// `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`.
pub(crate) async fn subject_access(
    State(gw): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let kind = "SubjectAccessReview";
    let review = review_body(&headers, &body, AUTHORIZATION_V1, kind)?;
    let subject = subject_of(&review["spec"])?;
    let status = decide(&gw, &subject, &review["spec"], None).await?;
    answer(AUTHORIZATION_V1, kind, review, status)
}

/// `POST /apis/authorization.k8s.io/v1/namespaces/{namespace}/localsubjectaccessreviews`.
pub(crate) async fn local_subject_access(
    State(gw): State<Gateway>,
    Path(namespace): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let kind = "LocalSubjectAccessReview";
    let mut review = review_body(&headers, &body, AUTHORIZATION_V1, kind)?;
    match review["metadata"]["namespace"].as_str() {
        None | Some("") => review["metadata"]["namespace"] = json!(namespace),
        Some(ns) if ns == namespace => {}
        Some(_) => {
            return Err(Failure(invalid(
                "metadata.namespace",
                "does not match the namespace of the request",
            )))
        }
    }
    if !review["spec"]["nonResourceAttributes"].is_null() {
        return Err(Failure(invalid(
            "spec.nonResourceAttributes",
            "disallowed on this kind of request",
        )));
    }
    let subject = subject_of(&review["spec"])?;
    let status = decide(&gw, &subject, &review["spec"], Some(&namespace)).await?;
    answer(AUTHORIZATION_V1, kind, review, status)
}

/// `POST /apis/authentication.k8s.io/v1/tokenreviews`: whose is the token in `spec.token`.
pub(crate) async fn token(State(gw): State<Gateway>, headers: HeaderMap, body: Bytes) -> Answer {
    let kind = "TokenReview";
    let review = review_body(&headers, &body, AUTHENTICATION_V1, kind)?;
    let token = review["spec"]["token"].as_str().unwrap_or_default();
    let header = format!("Bearer {token}");
    let auth = &gw.config.authentication;
    let status = match auth.authenticate(Some(&header), unix_now()) {
        Ok(identity) => {
            let live = match &identity {
                Identity::ServiceAccount(claims) => {
                    stored_uid(&gw, claims).await.as_deref() == Some(claims.uid.as_str())
                }
                Identity::User(_) => true,
            };
            if live {
                json!({"authenticated": true, "user": user_json(&identity.user()), "audiences": auth.audiences})
            } else {
                json!({"authenticated": false, "user": {}, "error": "the token's service account no longer exists"})
            }
        }
        Err(e) => json!({"authenticated": false, "user": {}, "error": e.to_string()}),
    };
    answer(AUTHENTICATION_V1, kind, review, status)
}

/// `POST /api/v1/namespaces/{namespace}/serviceaccounts/{name}/token`: a signed token for the account.
pub(crate) async fn token_request(
    gw: &Gateway,
    namespace: &str,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    let kind = "TokenRequest";
    let Some(key) = gw.config.authentication.service_account_key.as_ref() else {
        return Err(Failure(ApiError::new(
            Reason::NotFound,
            "TokenRequest is not served: the gateway has no service-account signing key (--service-account-key-file)",
        )));
    };
    let mut request = review_body(headers, body, AUTHENTICATION_V1, kind)?;
    let spec = &request["spec"];
    let seconds = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_TOKEN_SECONDS,
        v => v
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("spec.expirationSeconds must be an integer"))?,
    };
    if seconds < MIN_TOKEN_SECONDS {
        return Err(Failure(invalid(
            "spec.expirationSeconds",
            "may not specify a duration less than 10 minutes",
        )));
    }
    let seconds = seconds.min(MAX_TOKEN_SECONDS);
    let audiences: Vec<String> = field(&spec["audiences"], "spec.audiences")?
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| gw.config.authentication.audiences.clone());
    if !spec["boundObjectRef"].is_null() {
        return Err(Failure(invalid(
            "spec.boundObjectRef",
            "tokens bound to objects are not supported by Navarch yet; the token is bound to the service account",
        )));
    }
    let info = resource::by_kind("v1", "ServiceAccount")
        .ok_or_else(|| ApiError::internal("no ServiceAccount kind in the registry"))?;
    let account = gw.objects.get(info, Some(namespace), name).await?;
    let uid = account["metadata"]["uid"].as_str().unwrap_or_default();
    let now = unix_now();
    let claims = ServiceAccountClaims {
        namespace: namespace.to_string(),
        name: name.to_string(),
        uid: uid.to_string(),
        audiences: audiences.clone(),
        issued_at: now,
        expires_at: now + seconds,
        id: uuid::Uuid::new_v4().to_string(),
    };
    let token = key.issue(&claims);
    let expires = meta::format_time(
        k8s_openapi::chrono::DateTime::from_timestamp(claims.expires_at, 0).unwrap_or_default(),
    );
    request["metadata"] = json!({
        "name": name,
        "namespace": namespace,
        "creationTimestamp": meta::format_time(meta::now()),
    });
    request["spec"] =
        json!({"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": null});
    answer(
        AUTHENTICATION_V1,
        kind,
        request,
        json!({"token": token, "expirationTimestamp": expires}),
    )
}
