//! The API's per-client rate limit: a client over its budget gets 429 TooManyRequests with `Retry-After`, other
//! clients and health probes are served meanwhile, and the budget refills.

#![allow(clippy::disallowed_methods)]

mod util;

use std::net::IpAddr;
use std::time::Duration;

use util::*;

/// A client of the API at `base` (trusting its CA) connecting from `address`.
fn client_from(base: &str, address: &str) -> reqwest::Client {
    // reqwest brings no crypto provider of its own (see src/main.rs).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let credentials = credentials(base).expect("an https API");
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = &credentials.token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header"),
        );
    }
    let ca = credentials.ca_pem;
    reqwest::Client::builder()
        .default_headers(headers)
        .local_address(address.parse::<IpAddr>().expect("address"))
        .timeout(Duration::from_secs(10))
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).expect("CA PEM")])
        .build()
        .expect("http client")
}

#[test]
fn a_client_over_its_budget_gets_429_and_others_are_served() {
    let up = start_up(&["--api-rate-limit-qps", "2", "--api-rate-limit-burst", "5"]);
    let base = up.api.clone();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let greedy = client_from(&base, "127.0.0.1");
        let polite = client_from(&base, "127.0.0.2");
        let url = format!("{base}/api/v1/namespaces");
        let mut codes = Vec::new();
        let mut refused = None;
        for _ in 0..20 {
            let response = greedy.get(&url).send().await.expect("request");
            codes.push(response.status().as_u16());
            if response.status() == 429 && refused.is_none() {
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                let status: serde_json::Value = response.json().await.expect("a Status body");
                refused = Some((retry_after, status));
            }
        }
        let ok = codes.iter().filter(|c| **c == 200).count();
        assert!(
            (5..=7).contains(&ok),
            "a burst of 5 (plus what 2/s refills meanwhile) is served: {codes:?}"
        );
        assert!(codes.iter().all(|c| *c == 200 || *c == 429), "{codes:?}");
        let (retry_after, status) = refused.expect("some requests were refused");
        assert!(
            retry_after.is_some_and(|s| s >= 1),
            "Retry-After: {retry_after:?}"
        );
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "TooManyRequests");
        assert_eq!(status["code"], 429);
        assert!(status["details"]["retryAfterSeconds"]
            .as_u64()
            .is_some_and(|s| s >= 1));

        // Health probes are never limited, and another client has its own budget.
        let probe = greedy
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("probe");
        assert_eq!(probe.status(), 200);
        let other = polite.get(&url).send().await.expect("request");
        assert_eq!(
            other.status(),
            200,
            "a second client is served while the first is limited"
        );

        // The budget refills at 2 per second.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let again = greedy.get(&url).send().await.expect("request");
        assert_eq!(again.status(), 200);
    });
}

#[test]
fn a_zero_rate_turns_the_limit_off() {
    let up = start_up(&["--api-rate-limit-qps", "0"]);
    let base = up.api.clone();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let client = client_from(&base, "127.0.0.1");
        for _ in 0..50 {
            let response = client
                .get(format!("{base}/api/v1/namespaces"))
                .send()
                .await
                .expect("request");
            assert_eq!(response.status(), 200);
        }
    });
}
