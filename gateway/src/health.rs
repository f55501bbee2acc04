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

/// The gateway can serve: the store answers a Status request.
pub(crate) async fn readyz(State(gw): State<Gateway>, RawQuery(query): RawQuery) -> Response {
    let store = gw.objects.store().clone().with_timeout(READY_TIMEOUT);
    let check = match store.status().await {
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    match (check, verbose(&query)) {
        (Ok(()), false) => (StatusCode::OK, "ok".to_string()).into_response(),
        (Ok(()), true) => (
            StatusCode::OK,
            "[+]ping ok\n[+]store ok\nreadyz check passed\n".to_string(),
        )
            .into_response(),
        (Err(e), _) => {
            tracing::debug!(error = %e, "not ready");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("[+]ping ok\n[-]store failed: {e}\nreadyz check failed\n"),
            )
                .into_response()
        }
    }
}
