//! Health: `/livez` and `/healthz` (the process answers), `/readyz` (the store answers too).

use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::server::Gateway;

/// How long `/readyz` waits for the store (probes usually allow 1 s or more).
const READY_TIMEOUT: Duration = Duration::from_millis(900);

fn verbose(query: &Option<String>) -> bool {
    query.as_deref().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "verbose" || p.starts_with("verbose="))
    })
}

/// The process is alive.
pub(crate) async fn livez(RawQuery(query): RawQuery) -> Response {
    if verbose(&query) {
        (StatusCode::OK, "[+]ping ok\nlivez check passed\n").into_response()
    } else {
        (StatusCode::OK, "ok").into_response()
    }
}

/// The gateway can serve: the store answers a Status request, the default namespaces and RBAC roles exist
/// (kube-apiserver's `poststarthook/rbac/bootstrap-roles`), and the authorization cache has its first view.
pub(crate) async fn readyz(State(gw): State<Gateway>, RawQuery(query): RawQuery) -> Response {
    let store = gw.objects.store().clone().with_timeout(READY_TIMEOUT);
    let checks = [
        (
            "store",
            store.status().await.map(|_| ()).map_err(|e| e.to_string()),
        ),
        (
            "bootstrap-defaults",
            if gw.bootstrapped.load(std::sync::atomic::Ordering::Acquire) {
                Ok(())
            } else {
                Err("the default namespaces and roles are not created yet".to_string())
            },
        ),
        (
            "authorization-cache",
            if gw.auth_cache.is_synced() {
                Ok(())
            } else {
                Err("the RBAC objects are not loaded yet".to_string())
            },
        ),
    ];
    let mut report = String::from("[+]ping ok\n");
    let mut ready = true;
    for (name, check) in &checks {
        match check {
            Ok(()) => report.push_str(&format!("[+]{name} ok\n")),
            Err(e) => {
                ready = false;
                tracing::debug!(check = name, error = %e, "not ready");
                report.push_str(&format!("[-]{name} failed: {e}\n"));
            }
        }
    }
    match (ready, verbose(&query)) {
        (true, false) => (StatusCode::OK, "ok".to_string()).into_response(),
        (true, true) => {
            report.push_str("readyz check passed\n");
            (StatusCode::OK, report).into_response()
        }
        (false, _) => {
            report.push_str("readyz check failed\n");
            (StatusCode::INTERNAL_SERVER_ERROR, report).into_response()
        }
    }
}
