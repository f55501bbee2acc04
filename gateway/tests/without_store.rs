//! The gateway on a bus with no store: it starts, answers what needs no store (version, discovery, liveness),
//! reports itself not ready, refuses bad requests before asking the store, and stops promptly.

use std::time::Duration;

use navarch_bus::Bus;
use navarch_gateway::{ConfigError, Error, GatewayConfig};
use serde_json::Value;

async fn get(client: &reqwest::Client, url: String) -> anyhow::Result<(u16, String)> {
    let response = client.get(url).send().await?;
    Ok((response.status().as_u16(), response.text().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_what_needs_no_store_and_stops() -> anyhow::Result<()> {
    // reqwest has TLS without a provider of its own (tests/tls.rs); a client cannot be built before one is set.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let bus = Bus::embedded("no-store").await?;
    let config = GatewayConfig {
        listen: "127.0.0.1:0".parse()?,
        bootstrap_retry: Duration::from_millis(50),
        authentication: navarch_gateway::auth::Authentication::default().with_token(
            "admin",
            "admin",
            &["system:masters"],
        ),
        ..Default::default()
    };
    let gateway = navarch_gateway::start(bus, config).await?;
    assert_ne!(gateway.addr().port(), 0);
    let base = format!("http://{}", gateway.addr());
    // Anonymous callers get 401 without a store; an admin (system:masters) needs no authorization cache.
    let anonymous = reqwest::Client::new();
    let (code, body) = get(&anonymous, format!("{base}/version")).await?;
    assert_eq!(code, 401, "{body}");
    assert_eq!(get(&anonymous, format!("{base}/livez")).await?.0, 200);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_static("Bearer admin"),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()?;

    let (code, body) = get(&client, format!("{base}/version")).await?;
    assert_eq!(code, 200);
    let version: Value = serde_json::from_str(&body)?;
    assert_eq!(version["minor"], "32");
    assert_eq!(get(&client, format!("{base}/apis/apps/v1")).await?.0, 200);
    assert_eq!(
        get(&client, format!("{base}/livez")).await?,
        (200, "ok".into())
    );
    assert_eq!(get(&client, format!("{base}/healthz")).await?.0, 200);
    let (code, body) = get(&client, format!("{base}/readyz")).await?;
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("[-]store failed"), "{body}");
    assert!(body.contains("[-]authorization-cache failed"), "{body}");

    // Refused from the request alone: no store round trip needed.
    let (code, body) = get(
        &client,
        format!("{base}/api/v1/namespaces/demo/pods?fieldSelector=nope%3D1"),
    )
    .await?;
    assert_eq!(code, 400, "{body}");
    let (code, body) = get(
        &client,
        format!("{base}/apis/apps/v1/namespaces/demo/gadgets"),
    )
    .await?;
    assert_eq!(code, 404, "{body}");
    let status: Value = serde_json::from_str(&body)?;
    assert_eq!(status["kind"], "Status");

    // The bootstrap is still retrying; shutdown must not wait for it.
    tokio::time::timeout(Duration::from_secs(5), gateway.shutdown()).await??;
    Ok(())
}

#[tokio::test]
async fn a_bad_configuration_is_refused_before_binding() -> anyhow::Result<()> {
    let bus = Bus::embedded("no-store").await?;
    let config = GatewayConfig {
        max_body_bytes: 0,
        ..Default::default()
    };
    let e = navarch_gateway::start(bus, config).await.unwrap_err();
    assert!(matches!(e, Error::Config(ConfigError::NoBody)), "{e}");
    Ok(())
}
