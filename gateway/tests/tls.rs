//! The gateway over TLS with a generated CA: clients trusting the CA are served over HTTP/1.1 and HTTP/2 (chosen by
//! ALPN), others are refused, plain HTTP gets no API answer, and broken or silent clients block no one.

use std::time::Duration;

use navarch_bus::Bus;
use navarch_gateway::{ensure_pki, GatewayConfig, Pki, RunningGateway};
use tokio::io::AsyncWriteExt as _;

fn install_ring() {
    // reqwest is built without a provider of its own (no aws-lc-rs); the binary installs ring the same way.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
}

async fn start(
    pki: &Pki,
    rate_limit: Option<navarch_gateway::RateLimit>,
) -> anyhow::Result<RunningGateway> {
    let config = GatewayConfig {
        listen: "127.0.0.1:0".parse()?,
        bootstrap_retry: Duration::from_millis(50),
        rate_limit,
        tls: Some(pki.serving.clone()),
        authentication: navarch_gateway::auth::Authentication::default().with_token(
            "admin",
            "admin",
            &["system:masters"],
        ),
        ..Default::default()
    };
    Ok(navarch_gateway::start(Bus::embedded("tls").await?, config).await?)
}

/// A client trusting `ca_pem` and authenticating as the gateway's admin.
fn trusting(ca_pem: &[u8]) -> anyhow::Result<reqwest::ClientBuilder> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_static("Bearer admin"),
    );
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(10))
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem)?]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_over_http1_and_http2_to_clients_trusting_the_ca() -> anyhow::Result<()> {
    install_ring();
    let dir = tempfile::tempdir()?;
    let pki = ensure_pki(dir.path(), &[])?;
    let gateway = start(&pki, None).await?;
    let port = gateway.addr().port();

    // Names and addresses the generated certificate covers.
    for base in [
        format!("https://localhost:{port}"),
        format!("https://127.0.0.1:{port}"),
    ] {
        let http1 = trusting(&pki.ca_pem)?.http1_only().build()?;
        let response = http1.get(format!("{base}/version")).send().await?;
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), reqwest::Version::HTTP_11);
        let version: serde_json::Value = response.json().await?;
        assert_eq!(version["minor"], "32");
    }

    // A client offering both gets HTTP/2 through ALPN, as client-go does.
    let both = trusting(&pki.ca_pem)?.build()?;
    let response = both
        .get(format!("https://localhost:{port}/livez"))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.text().await?, "ok");

    // A client trusting another CA refuses the server.
    let other = tempfile::tempdir()?;
    let stranger = trusting(&ensure_pki(other.path(), &[])?.ca_pem)?.build()?;
    let refused = stranger
        .get(format!("https://localhost:{port}/version"))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");

    // Plain HTTP to the TLS port gets no API answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let answer = plain
        .get(format!("http://127.0.0.1:{port}/version"))
        .send()
        .await;
    match answer {
        Err(_) => {}
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            assert!(!body.contains("gitVersion"), "{status} {body}");
        }
    }

    // A silent client (no ClientHello yet) and a garbage one block nobody, and the server survives both.
    let silent = tokio::net::TcpStream::connect(gateway.addr()).await?;
    let mut garbage = tokio::net::TcpStream::connect(gateway.addr()).await?;
    garbage
        .write_all(b"\x16\x03\x01\x00\x05\x01\x00\xff\xff\xffnot a hello at all")
        .await?;
    let mut truncated = tokio::net::TcpStream::connect(gateway.addr()).await?;
    truncated.write_all(b"\x16\x03\x01\x02\x00\x01").await?;
    drop(truncated);
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        both.get(format!("https://localhost:{port}/version")).send(),
    )
    .await??;
    assert_eq!(response.status(), 200);
    drop((silent, garbage));

    tokio::time::timeout(Duration::from_secs(15), gateway.shutdown()).await??;
    let after = both
        .get(format!("https://localhost:{port}/version"))
        .send()
        .await;
    assert!(after.is_err(), "the port is closed after shutdown");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_sees_the_client_address_over_tls() -> anyhow::Result<()> {
    install_ring();
    let dir = tempfile::tempdir()?;
    let pki = ensure_pki(dir.path(), &[])?;
    let gateway = start(&pki, Some(navarch_gateway::RateLimit { qps: 1, burst: 2 })).await?;
    let client = trusting(&pki.ca_pem)?.build()?;
    let url = format!("https://localhost:{}/version", gateway.addr().port());
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(client.get(&url).send().await?.status().as_u16());
    }
    assert!(codes.contains(&429), "{codes:?}");
    tokio::time::timeout(Duration::from_secs(15), gateway.shutdown()).await??;
    Ok(())
}

/// Replaces `to` with a copy of `from`, atomically (as an operator's `mv` or a cert manager would).
fn replace(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    let temp = to.with_extension("new");
    std::fs::copy(from, &temp)?;
    std::fs::rename(&temp, to)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_serving_certificate_is_served_without_a_restart() -> anyhow::Result<()> {
    install_ring();
    let (first_dir, second_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let first = ensure_pki(first_dir.path(), &[])?;
    let second = ensure_pki(second_dir.path(), &[])?;
    let gateway = start(&first, None).await?;
    let url = format!("https://localhost:{}/version", gateway.addr().port());
    let works = |ca: &[u8]| {
        let client = trusting(ca).and_then(|b| Ok(b.build()?));
        let url = url.clone();
        async move {
            match client {
                Ok(client) => client
                    .get(url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200),
                Err(_) => false,
            }
        }
    };
    assert!(works(&first.ca_pem).await);
    assert!(!works(&second.ca_pem).await);

    // The operator puts the second certificate (another CA's) in place of the first: key, then certificate.
    for name in ["apiserver.key", "apiserver.crt"] {
        replace(&second_dir.path().join(name), &first_dir.path().join(name))?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !works(&second.ca_pem).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!works(&first.ca_pem).await, "the old certificate is gone");

    // A broken replacement keeps the last good certificate in service.
    std::fs::write(
        first_dir.path().join("apiserver.crt.new"),
        b"not a certificate",
    )?;
    std::fs::rename(
        first_dir.path().join("apiserver.crt.new"),
        first_dir.path().join("apiserver.crt"),
    )?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        works(&second.ca_pem).await,
        "a broken file must not stop TLS"
    );
    tokio::time::timeout(Duration::from_secs(15), gateway.shutdown()).await??;
    Ok(())
}
