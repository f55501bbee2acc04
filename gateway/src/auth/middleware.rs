//! The check every request passes before a handler sees it: authenticate (401), then authorize with RBAC (403).
//! The health probes are the only paths open to anonymous callers: they reveal nothing and load balancers probe
//! without credentials (kube-apiserver lets `system:unauthenticated` read them through
//! `system:public-info-viewer`).

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use navarch_bus::api::error::Details;
use navarch_bus::api::{resource, ApiError, Reason};

use super::authn::{Identity, ServiceAccountClaims, MASTERS};
use super::cache::Snapshot;
use super::rbac::{self, Attributes, UserInfo};
use crate::server::Gateway;
use crate::status::Failure;

/// Paths anyone may read.
pub(crate) fn is_public(path: &str) -> bool {
    matches!(path, "/livez" | "/healthz" | "/readyz")
}

/// Seconds since the Unix epoch (token lifetimes are wall-clock times, shared between gateways).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// 401, as kube-apiserver answers it (the message says nothing about why, on purpose).
pub(crate) fn unauthorized() -> ApiError {
    ApiError::new(Reason::Unauthorized, "Unauthorized")
}

/// Authenticates and authorizes the request; the user rides along in the request's extensions for handlers that
/// need it (reviews, TokenRequest, audit in logs).
pub(crate) async fn check(State(gw): State<Gateway>, mut request: Request, next: Next) -> Response {
    if is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let identity = match gw.config.authentication.authenticate(header, unix_now()) {
        Ok(identity) => identity,
        Err(e) => {
            tracing::debug!(error = %e, path = request.uri().path(), "unauthenticated request");
            return Failure(unauthorized()).into_response();
        }
    };
    let mut user = identity.user();
    if let Some(wanted) = impersonation(request.headers()) {
        match impersonate(&gw, &user, wanted).await {
            Ok(as_user) => user = as_user,
            Err(e) => return Failure(e).into_response(),
        }
    }
    let masters = user.groups.iter().any(|g| g == MASTERS);
    let needs_cache = !masters || matches!(identity, Identity::ServiceAccount(_));
    if needs_cache {
        let snapshot = match gw.auth_cache.ready().await {
            Ok(snapshot) => snapshot,
            Err(e) => return Failure(e).into_response(),
        };
        if let Identity::ServiceAccount(claims) = &identity {
            if !account_exists(&gw, &snapshot, claims).await {
                tracing::debug!(
                    account = %user.name,
                    "token of a service account that no longer exists (or was recreated)"
                );
                return Failure(unauthorized()).into_response();
            }
        }
        // Parsed only here: the admin's requests (system:masters) skip it.
        let attributes = rbac::attributes(
            request.method().as_str(),
            request.uri().path(),
            request.uri().query(),
        );
        let decision = snapshot.policy.authorize(&user, &attributes);
        if !decision.allowed {
            tracing::debug!(user = %user.name, reason = %decision.reason, "forbidden");
            return Failure(forbidden(&user, &attributes)).into_response();
        }
    }
    request.extensions_mut().insert(user);
    next.run(request).await
}

/// Who a request asks to act as (`Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`: `kubectl --as`,
/// `--as-group`).
struct Impersonation {
    user: String,
    groups: Vec<String>,
    uid: String,
}

fn impersonation(headers: &axum::http::HeaderMap) -> Option<Impersonation> {
    let text = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect::<Vec<_>>()
    };
    let users = text("impersonate-user");
    let groups = text("impersonate-group");
    let uid = text("impersonate-uid");
    if users.is_empty() && groups.is_empty() && uid.is_empty() {
        return None;
    }
    Some(Impersonation {
        user: users.into_iter().next().unwrap_or_default(),
        groups,
        uid: uid.into_iter().next().unwrap_or_default(),
    })
}

/// The user `user` acts as, if RBAC lets it impersonate that user (or service account), each group and the uid
/// (kube-apiserver's impersonation filter: verb `impersonate` on `users`, `serviceaccounts`, `groups`, `uids`).
async fn impersonate(
    gw: &Gateway,
    user: &UserInfo,
    wanted: Impersonation,
) -> Result<UserInfo, ApiError> {
    if wanted.user.is_empty() {
        return Err(ApiError::bad_request(
            "requested impersonation of groups or a uid without a user",
        ));
    }
    let account = wanted
        .user
        .strip_prefix(super::rbac::SERVICE_ACCOUNT_PREFIX)
        .and_then(|rest| rest.split_once(':'));
    let mut checks = Vec::new();
    match account {
        Some((namespace, name)) => checks.push(("", "serviceaccounts", namespace, name)),
        None => checks.push(("", "users", "", wanted.user.as_str())),
    }
    for group in &wanted.groups {
        checks.push(("", "groups", "", group.as_str()));
    }
    if !wanted.uid.is_empty() {
        checks.push(("authentication.k8s.io", "uids", "", wanted.uid.as_str()));
    }
    let masters = user.groups.iter().any(|g| g == MASTERS);
    let snapshot = if masters {
        None
    } else {
        Some(gw.auth_cache.ready().await?)
    };
    for (group, resource, namespace, name) in checks {
        let attributes = Attributes::Resource(rbac::ResourceRequest {
            verb: "impersonate".into(),
            api_group: group.into(),
            api_version: String::new(),
            resource: resource.into(),
            subresource: String::new(),
            namespace: namespace.into(),
            name: name.into(),
        });
        if let Some(snapshot) = &snapshot {
            if !snapshot.policy.authorize(user, &attributes).allowed {
                return Err(forbidden(user, &attributes));
            }
        }
    }
    let mut groups = wanted.groups.clone();
    if let Some((namespace, _)) = account {
        groups.push("system:serviceaccounts".into());
        groups.push(format!("system:serviceaccounts:{namespace}"));
    }
    if !groups.iter().any(|g| g == super::authn::AUTHENTICATED) {
        groups.push(super::authn::AUTHENTICATED.into());
    }
    tracing::debug!(user = %user.name, as_user = %wanted.user, "impersonating");
    Ok(UserInfo {
        name: wanted.user.clone(),
        uid: wanted.uid.clone(),
        groups,
    })
}

/// Whether the token's service account still exists with the uid it was issued for. The cache answers when it
/// knows the account; otherwise (an account created a moment ago) the store does.
async fn account_exists(gw: &Gateway, snapshot: &Snapshot, claims: &ServiceAccountClaims) -> bool {
    let key = (claims.namespace.clone(), claims.name.clone());
    snapshot.service_accounts.get(&key) == Some(&claims.uid)
        || stored_uid(gw, claims).await.as_deref() == Some(claims.uid.as_str())
}

/// The uid of the token's service account as the store has it (None: no such account).
pub(crate) async fn stored_uid(gw: &Gateway, claims: &ServiceAccountClaims) -> Option<String> {
    let info = resource::by_kind("v1", "ServiceAccount")?;
    let account = gw
        .objects
        .get(info, Some(&claims.namespace), &claims.name)
        .await
        .ok()?;
    account["metadata"]["uid"].as_str().map(str::to_string)
}

/// 403 with kube-apiserver's message and details.
pub(crate) fn forbidden(user: &UserInfo, attributes: &Attributes) -> ApiError {
    let message = rbac::forbidden_message(user, attributes);
    let details = match attributes {
        Attributes::Resource(r) => Details {
            name: (!r.name.is_empty()).then(|| r.name.clone()),
            group: Some(r.api_group.clone()),
            kind: Some(if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            }),
            ..Details::default()
        },
        Attributes::NonResource { .. } => Details::default(),
    };
    ApiError::with_details(Reason::Forbidden, message, details)
}
