//! `navarch secrets reencrypt`: rewrites every Secret through the API so it is stored under the current write key.
//!
//! It goes through the API rather than the store, as Kubernetes' own rotation does (`kubectl get secrets -A -o json
//! | kubectl replace -f -`): the gateway seals each write with the first key of its key file, so the tool needs no
//! key, and it works with `navarch up` on its embedded bus. Each write is a PUT carrying the resourceVersion that
//! was read, so a Secret changed meanwhile gets 409 and is read again instead of overwritten.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use reqwest::StatusCode;
use serde_json::Value;

use crate::cli::SecretsTool;
use crate::kubeconfig;

/// Rewrites of one Secret tried before giving up on it while other writers keep changing it.
const MAX_ATTEMPTS: usize = 10;
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a `navarch secrets` tool.
pub async fn run(tool: SecretsTool) -> Result<()> {
    match tool {
        SecretsTool::Reencrypt { kubeconfig } => reencrypt(kubeconfig).await,
    }
}

/// What happened to the Secrets.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    /// Rewritten under the current write key.
    rewritten: usize,
    /// Deleted between the list and their rewrite.
    gone: usize,
}

async fn reencrypt(kubeconfig: Option<PathBuf>) -> Result<()> {
    let Some(path) = kubeconfig else {
        bail!("--kubeconfig PATH (or KUBECONFIG) is required: the Secrets are rewritten through the API it names")
    };
    let access = kubeconfig::read(&path)?;
    let server = access.server.clone();
    let client = client(&access)?;
    let api = Api {
        client,
        server: server.clone(),
    };
    let (code, list) = api
        .send(api.client.get(format!("{server}/api/v1/secrets")))
        .await?;
    if code != StatusCode::OK {
        bail!("listing the Secrets: {}", message(code, &list))
    }
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let total = items.len();
    let mut tally = Tally::default();
    for item in items {
        api.rewrite(item, &mut tally).await?;
    }
    println!(
        "re-encrypted {} of {total} secrets with the API's current write key ({} deleted meanwhile)",
        tally.rewritten, tally.gone
    );
    Ok(())
}

/// An HTTP client for the API the kubeconfig names: trusting only its CA (none else: a cluster CA is private),
/// and sending its bearer token on every request when it has one.
fn client(access: &kubeconfig::Access) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
    if let Some(ca_pem) = &access.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(ca_pem)
            .context("the kubeconfig's certificate authority is not PEM")?;
        builder = builder.tls_certs_only(certs);
    }
    if let Some(token) = &access.token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the kubeconfig's token cannot be sent in a header")?;
        value.set_sensitive(true);
        builder = builder.default_headers(
            [(reqwest::header::AUTHORIZATION, value)]
                .into_iter()
                .collect(),
        );
    }
    builder.build().context("building the HTTP client")
}

struct Api {
    client: reqwest::Client,
    server: String,
}

impl Api {
    /// Sends a request; the status and the JSON body (Null when the body is not JSON).
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(StatusCode, Value)> {
        let response = request
            .header("Accept", "application/json")
            .send()
            .await
            .with_context(|| format!("reaching the API at {}", self.server))?;
        let code = response.status();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("reading an answer of the API at {}", self.server))?;
        Ok((code, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }

    /// Writes `secret` back as it was read; on a conflict reads it again and retries.
    async fn rewrite(&self, mut secret: Value, tally: &mut Tally) -> Result<()> {
        let namespace = secret["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = secret["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if namespace.is_empty() || name.is_empty() {
            bail!("the API listed a Secret without a namespace or name: {secret}")
        }
        let url = format!(
            "{}/api/v1/namespaces/{namespace}/secrets/{name}",
            self.server
        );
        for _ in 0..MAX_ATTEMPTS {
            // List items may come without their kind; a PUT body needs it.
            secret["kind"] = "Secret".into();
            secret["apiVersion"] = "v1".into();
            let (code, answer) = self.send(self.client.put(&url).json(&secret)).await?;
            match code {
                StatusCode::OK => {
                    tally.rewritten += 1;
                    return Ok(());
                }
                StatusCode::NOT_FOUND => {
                    tally.gone += 1;
                    return Ok(());
                }
                StatusCode::CONFLICT => {
                    let (code, fresh) = self.send(self.client.get(&url)).await?;
                    match code {
                        StatusCode::OK => secret = fresh,
                        StatusCode::NOT_FOUND => {
                            tally.gone += 1;
                            return Ok(());
                        }
                        _ => bail!(
                            "reading secret {namespace}/{name}: {}",
                            message(code, &fresh)
                        ),
                    }
                }
                _ => bail!(
                    "rewriting secret {namespace}/{name}: {}",
                    message(code, &answer)
                ),
            }
        }
        bail!("secret {namespace}/{name} kept changing; {MAX_ATTEMPTS} rewrites conflicted (run the command again)")
    }
}

/// A failed answer on one line: the Status message, or the HTTP status.
fn message(code: StatusCode, body: &Value) -> String {
    match body["message"].as_str() {
        Some(m) => format!("{m} ({code})"),
        None => code.to_string(),
    }
}
