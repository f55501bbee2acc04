//! The check every request passes before a handler sees it: authenticate (401), then authorize with RBAC (403).
//! The health probes are the only paths open to anonymous callers: they reveal nothing and load balancers probe
//! without credentials (kube-apiserver lets `system:unauthenticated` read them through
//! `system:public-info-viewer`).

use std::time::Duration;

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

/// How long a request waits for the authorization cache's first complete view before 503.
const SYNC_WAIT: Duration = Duration::from_secs(5);

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
    let user = identity.user();
    let attributes = rbac::attributes(
        request.method().as_str(),
        request.uri().path(),
        request.uri().query(),
    );
    let masters = user.groups.iter().any(|g| g == MASTERS);
    let needs_cache = !masters || matches!(identity, Identity::ServiceAccount(_));
    if needs_cache {
        let Some(snapshot) = gw.auth_cache.synced(SYNC_WAIT).await else {
            return Failure(ApiError::new(
                Reason::ServiceUnavailable,
                "the gateway cannot authorize requests yet: the store has not answered",
            ))
            .into_response();
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
        let decision = snapshot.policy.authorize(&user, &attributes);
        if !decision.allowed {
            tracing::debug!(user = %user.name, reason = %decision.reason, "forbidden");
            return Failure(forbidden(&user, &attributes)).into_response();
        }
    }
    request.extensions_mut().insert(user);
    next.run(request).await
}

/// Whether the token's service account still exists with the uid it was issued for. The cache answers when it
/// knows the account; otherwise (an account created a moment ago) the store does.
async fn account_exists(gw: &Gateway, snapshot: &Snapshot, claims: &ServiceAccountClaims) -> bool {
    let key = (claims.namespace.clone(), claims.name.clone());
    if snapshot.service_accounts.get(&key) == Some(&claims.uid) {
        return true;
    }
    let Some(info) = resource::by_kind("v1", "ServiceAccount") else {
        return false;
    };
    match gw
        .objects
        .get(info, Some(&claims.namespace), &claims.name)
        .await
    {
        Ok(account) => account["metadata"]["uid"].as_str() == Some(claims.uid.as_str()),
        Err(_) => false,
    }
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
