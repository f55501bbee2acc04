//! The gateway against the real store on one embedded bus, driven over HTTP and with the real `kubectl`:
//! discovery, apply (created, configured, unchanged), get (tables, yaml, wide), scale, watch, delete, and bad
//! input refused with the right `Status` while nothing is written.

mod util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use base64::Engine as _;
use navarch_bus::store::StoreClient;
use navarch_bus::Bus;
use navarch_gateway::{GatewayConfig, RunningGateway};
use navarch_store::{Shutdown, StoreConfig, StoreMember};
use serde_json::{json, Value};
use util::run_in_system as run;

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// A store member and a gateway on one embedded bus, with a kubeconfig and a kubectl cache of their own.
struct Cluster {
    dir: tempfile::TempDir,
    store: actix::Addr<StoreMember>,
    gateway: RunningGateway,
    client: StoreClient,
    bus: Bus,
    http: reqwest::Client,
    base: String,
}

/// The bearer token of the in-process gateway's one user, a member of `system:masters`.
const ADMIN_TOKEN: &str = "gateway-api-test-admin";

fn admin_authentication() -> navarch_gateway::auth::Authentication {
    navarch_gateway::auth::Authentication::default().with_token(
        ADMIN_TOKEN,
        "admin",
        &["system:masters"],
    )
}

fn admin_client(ca_pem: &[u8]) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_static("Bearer gateway-api-test-admin"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem).expect("CA PEM")])
        .build()
        .expect("a reqwest client")
}

impl Cluster {
    async fn start() -> Result<Self> {
        // reqwest needs a crypto provider to build (see src/main.rs).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("gateway-test").await?;
        // Served over TLS as every binary role serves it: kubectl sends its bearer token only over HTTPS.
        let pki = navarch_gateway::tls::ensure_pki(&dir.path().join("pki"), &[])?;
        let store = StoreMember::start(
            bus.clone(),
            StoreConfig {
                id: 1,
                data_dir: dir.path().join("store"),
                members: vec![1],
                progress_interval: Duration::from_millis(100),
                heartbeat_interval: Duration::from_millis(50),
                election_timeout: Duration::from_millis(300),
                ..Default::default()
            },
        )
        .await?;
        let gateway = navarch_gateway::start(
            bus.clone(),
            GatewayConfig {
                listen: "127.0.0.1:0".parse()?,
                bootstrap_retry: Duration::from_millis(100),
                authentication: admin_authentication(),
                tls: Some(pki.serving.clone()),
                ..Default::default()
            },
        )
        .await?;
        let base = format!("https://{}", gateway.addr());
        let ca = base64::engine::general_purpose::STANDARD.encode(&pki.ca_pem);
        std::fs::write(
            dir.path().join("kubeconfig"),
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {base}\n    certificate-authority-data: {ca}\n\
                 contexts:\n- name: t\n  context:\n    cluster: t\n    user: t\ncurrent-context: t\n\
                 users:\n- name: t\n  user:\n    token: {ADMIN_TOKEN}\n"
            ),
        )?;
        let cluster = Self {
            dir,
            store,
            gateway,
            client: StoreClient::new(bus.clone()),
            bus,
            http: admin_client(&pki.ca_pem),
            base,
        };
        cluster
            .eventually("the built-in namespaces", || async {
                cluster
                    .status("GET", "/api/v1/namespaces/kube-node-lease", None)
                    .await
                    == Ok(200)
            })
            .await?;
        Ok(cluster)
    }

    async fn stop(self) -> Result<()> {
        self.gateway.shutdown().await?;
        self.store.send(Shutdown).await??;
        Ok(())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs kubectl with this cluster's kubeconfig and an isolated discovery cache.
    async fn kubectl(&self, args: &[&str]) -> Result<(bool, String, String)> {
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new("kubectl")
                .args(args)
                .env("KUBECONFIG", self.path("kubeconfig"))
                .env("KUBECACHEDIR", self.path("kube-cache"))
                .kill_on_drop(true)
                .output(),
        )
        .await
        .with_context(|| format!("kubectl {args:?} timed out"))??;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// kubectl that must succeed; its stdout.
    async fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        let (ok, out, err) = self.kubectl(args).await?;
        if !ok {
            bail!("kubectl {args:?} failed:\n{out}\n{err}");
        }
        Ok(out)
    }

    fn request(&self, method: &str, path: &str) -> Result<reqwest::RequestBuilder> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        Ok(self.http.request(method, format!("{}{path}", self.base)))
    }

    /// Sends a JSON body (or none); the status code and the decoded answer.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let mut request = self.request(method, path)?;
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let code = response.status().as_u16();
        let bytes = response.bytes().await?;
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
        Ok((code, value))
    }

    /// Sends raw bytes with a content type.
    async fn send_raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Value)> {
        let response = self
            .request(method, path)?
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await?;
        let code = response.status().as_u16();
        let value = response.json().await.unwrap_or(Value::Null);
        Ok((code, value))
    }

    async fn status(&self, method: &str, path: &str, body: Option<Value>) -> Result<u16, String> {
        self.call(method, path, body)
            .await
            .map(|(c, _)| c)
            .map_err(|e| e.to_string())
    }

    async fn get(&self, path: &str) -> Result<Value> {
        let (code, v) = self.call("GET", path, None).await?;
        if code != 200 {
            bail!("GET {path}: {code} {v}");
        }
        Ok(v)
    }

    /// The store's revision: it moves with every write, so an unchanged revision means nothing was written.
    async fn revision(&self) -> Result<i64> {
        Ok(self.client.status().await?.header.revision)
    }

    async fn eventually<F, Fut>(&self, what: &str, mut check: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while tokio::time::Instant::now() < deadline {
            if check().await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("gave up waiting: {what}")
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    Ok(std::fs::write(path, text)?)
}

fn manifest(image: &str, replicas: i64) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: demo\n  labels: {{app: web}}\n\
         spec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      \
         labels: {{app: web}}\n    spec:\n      containers:\n      - name: nginx\n        image: {image}\n        \
         ports:\n        - containerPort: 80\n        env:\n        - {{name: A, value: \"1\"}}\n"
    )
}

/// The words of each line of a kubectl table.
fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn pod(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "labels": labels},
           "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}})
}

#[test]
fn discovery_serves_kubectl() -> Result<()> {
    run(async {
        let c = Cluster::start().await?;
        let version = c.get("/version").await?;
        assert_eq!(
            (version["major"].as_str(), version["minor"].as_str()),
            (Some("1"), Some("32"))
        );
        assert_eq!(c.get("/api").await?["versions"], json!(["v1"]));
        assert_eq!(c.get("/apis").await?["groups"][0]["name"], "apps");
        let apps = c.get("/apis/apps/v1").await?;
        let names: Vec<&str> = apps["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(names.contains(&"deployments/scale"), "{names:?}");
        let openapi = c.get("/openapi/v3").await?;
        let url = openapi["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .context("apps/v1 in openapi")?;
        assert!(c.get(url).await?["paths"].is_object());
        let (code, v2) = c.call("GET", "/openapi/v2", None).await?;
        assert_eq!(code, 200);
        assert_eq!(v2["swagger"], "2.0");
        // Ready once the store answers and the defaults are in place (the start-up writes may still be going on
        // on a loaded machine: kube-apiserver's /readyz is 500 meanwhile too).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while c.call("GET", "/readyz", None).await?.0 != 200 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "/readyz never became 200"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(c.call("GET", "/livez", None).await?.0, 200);

        let out = c.kubectl_ok(&["version", "-o", "json"]).await?;
        let v: Value = serde_json::from_str(&out)?;
        assert_eq!(v["serverVersion"]["gitVersion"], "v1.32.0");
        let out = c.kubectl_ok(&["api-resources"]).await?;
        let table = rows(&out);
        for expected in [
            &["deployments", "deploy", "apps/v1", "true", "Deployment"][..],
            &["pods", "po", "v1", "true", "Pod"],
            &["namespaces", "ns", "v1", "false", "Namespace"],
            &["nodes", "no", "v1", "false", "Node"],
        ] {
            assert!(
                table.iter().any(|r| r == expected),
                "{expected:?} missing from\n{out}"
            );
        }
        let out = c.kubectl_ok(&["get", "namespaces"]).await?;
        assert!(
            rows(&out)
                .iter()
                .any(|r| r.len() == 3 && r[0] == "default" && r[1] == "Active"),
            "{out}"
        );
        c.stop().await
    })
}

#[test]
fn kubectl_apply_get_scale_delete() -> Result<()> {
    run(async {
        let c = Cluster::start().await?;
        let file = c.path("web.yaml");
        let file = file.to_str().context("utf-8 path")?;

        write(Path::new(file), &manifest("nginx:1.25", 2))?;
        let out = c.kubectl_ok(&["apply", "-f", file]).await?;
        assert!(
            out.contains("namespace/demo created") && out.contains("deployment.apps/web created"),
            "{out}"
        );
        write(Path::new(file), &manifest("nginx:1.26", 2))?;
        let out = c.kubectl_ok(&["apply", "-f", file]).await?;
        assert!(out.contains("deployment.apps/web configured"), "{out}");
        let out = c.kubectl_ok(&["apply", "-f", file]).await?;
        assert!(
            out.contains("deployment.apps/web unchanged")
                && out.contains("namespace/demo unchanged"),
            "{out}"
        );

        let web = c
            .get("/apis/apps/v1/namespaces/demo/deployments/web")
            .await?;
        let containers = &web["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers.as_array().map(Vec::len), Some(1), "{web}");
        assert_eq!(containers[0]["image"], "nginx:1.26");
        assert_eq!(containers[0]["ports"][0]["containerPort"], 80);
        assert_eq!(containers[0]["env"], json!([{"name": "A", "value": "1"}]));
        assert_eq!(web["metadata"]["generation"], 2);
        let applied = web["metadata"]["annotations"]
            ["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .context("last-applied annotation")?;
        assert!(
            applied.ends_with('\n'),
            "kept verbatim, trailing newline included: {applied:?}"
        );
        let applied: Value = serde_json::from_str(applied)?;
        assert_eq!(
            applied["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.26"
        );

        // A pod of the deployment, as the controllers would make it.
        let mut p = pod("web-1", json!({"app": "web"}));
        p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
            "uid": web["metadata"]["uid"], "controller": true}]);
        assert_eq!(
            c.call("POST", "/api/v1/namespaces/demo/pods", Some(p))
                .await?
                .0,
            201
        );

        let out = c.kubectl_ok(&["get", "deploy,pods", "-n", "demo"]).await?;
        let table = rows(&out);
        assert!(
            table
                .iter()
                .any(|r| r == &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]),
            "{out}"
        );
        assert!(
            table
                .iter()
                .any(|r| r.len() == 5 && r[0] == "deployment.apps/web" && r[1] == "0/2"),
            "{out}"
        );
        assert!(
            table
                .iter()
                .any(|r| r == &["NAME", "READY", "STATUS", "RESTARTS", "AGE"]),
            "{out}"
        );
        assert!(
            table
                .iter()
                .any(|r| r.len() == 5 && r[0] == "pod/web-1" && r[2] == "Pending"),
            "{out}"
        );

        let out = c
            .kubectl_ok(&["get", "deploy", "web", "-n", "demo", "-o", "yaml"])
            .await?;
        assert!(
            out.contains("kind: Deployment") && out.contains("image: nginx:1.26"),
            "{out}"
        );
        let out = c
            .kubectl_ok(&["get", "pods", "-n", "demo", "-o", "yaml"])
            .await?;
        assert!(
            out.contains("kind: List") && out.contains("name: web-1"),
            "{out}"
        );
        let out = c
            .kubectl_ok(&["get", "deploy", "-n", "demo", "-o", "wide"])
            .await?;
        let table = rows(&out);
        assert_eq!(table[0][5..], ["CONTAINERS", "IMAGES", "SELECTOR"], "{out}");
        assert_eq!(table[1][5..], ["nginx", "nginx:1.26", "app=web"], "{out}");
        let out = c
            .kubectl_ok(&["get", "pods", "-A", "--show-labels"])
            .await?;
        let table = rows(&out);
        assert_eq!(
            table[0].first().map(String::as_str),
            Some("NAMESPACE"),
            "{out}"
        );
        assert!(
            table
                .iter()
                .any(|r| r.first().map(String::as_str) == Some("demo")
                    && r.last().map(String::as_str) == Some("app=web")),
            "{out}"
        );
        let out = c
            .kubectl_ok(&["get", "pods", "-n", "demo", "-o", "wide"])
            .await?;
        assert!(
            out.contains("NOMINATED NODE") && out.contains("READINESS GATES"),
            "{out}"
        );

        let out = c
            .kubectl_ok(&["scale", "deployment", "web", "-n", "demo", "--replicas=5"])
            .await?;
        assert!(out.contains("deployment.apps/web scaled"), "{out}");
        let web = c
            .get("/apis/apps/v1/namespaces/demo/deployments/web")
            .await?;
        assert_eq!(web["spec"]["replicas"], 5);
        let scale = c
            .get("/apis/apps/v1/namespaces/demo/deployments/web/scale")
            .await?;
        assert_eq!(
            (scale["kind"].as_str(), scale["apiVersion"].as_str()),
            (Some("Scale"), Some("autoscaling/v1"))
        );
        assert_eq!(
            (
                scale["spec"]["replicas"].as_i64(),
                scale["status"]["selector"].as_str()
            ),
            (Some(5), Some("app=web"))
        );

        let (ok, _, err) = c.kubectl(&["get", "pod", "nope", "-n", "demo"]).await?;
        assert!(
            !ok && err.contains("Error from server (NotFound): pods \"nope\" not found"),
            "{err}"
        );
        let (ok, _, err) = c.kubectl(&["create", "-f", file]).await?;
        assert!(!ok && err.contains("AlreadyExists"), "{err}");

        let out = c
            .kubectl_ok(&["delete", "deployment", "web", "-n", "demo"])
            .await?;
        assert!(out.contains("deployment.apps \"web\" deleted"), "{out}");
        assert_eq!(
            c.call("GET", "/apis/apps/v1/namespaces/demo/deployments/web", None)
                .await?
                .0,
            404
        );
        c.stop().await
    })
}

#[test]
fn lists_at_the_latest_revision_come_from_the_watch_cache() -> Result<()> {
    run(async {
        let c = Cluster::start().await?;
        // The first list starts the kind's cache.
        c.get("/api/v1/namespaces/default/configmaps").await?;
        for i in 0..30 {
            let (code, _) = c
                .call(
                    "POST",
                    "/api/v1/namespaces/default/configmaps",
                    Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i:02}"), "labels": {"parity": if i % 2 == 0 { "even" } else { "odd" }}}})),
                )
                .await?;
            assert_eq!(code, 201);
        }
        // Read-your-writes: a list right after the last create sees all 30, and it reads no object from the store
        // (its one store read is the count-only read of the current revision). Creates read too (the namespace):
        // the spy starts after them.
        let mut spy = c.bus.subscribe(&c.bus.subjects().store_rpc()).await?;
        let list = c
            .get("/api/v1/namespaces/default/configmaps?labelSelector=parity%3Deven")
            .await?;
        let names: Vec<&str> = list["items"]
            .as_array()
            .context("items")?
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str())
            .collect();
        assert_eq!(names.len(), 15, "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("cm-")), "{names:?}");
        let mut object_reads = 0;
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), spy.next()).await {
            let request: navarch_bus::store::StoreRequest = navarch_bus::codec::decode(&m.payload)?;
            if let navarch_bus::store::StoreRequest::Range(range) = request {
                if !range.count_only {
                    object_reads += 1;
                }
            }
        }
        assert_eq!(
            object_reads, 0,
            "store ranges read for a list the cache could serve"
        );
        // A paged list: the first page from the cache, the next from the store at the page's revision; together
        // every object once, in key order.
        let first = c
            .get("/api/v1/namespaces/default/configmaps?limit=20")
            .await?;
        let token = first["metadata"]["continue"]
            .as_str()
            .context("continue token")?
            .to_string();
        assert_eq!(first["metadata"]["remainingItemCount"], json!(10));
        let second = c
            .get(&format!(
                "/api/v1/namespaces/default/configmaps?limit=20&continue={token}"
            ))
            .await?;
        assert_eq!(
            first["metadata"]["resourceVersion"],
            second["metadata"]["resourceVersion"]
        );
        let all: Vec<String> = [&first, &second]
            .iter()
            .flat_map(|page| page["items"].as_array().cloned().unwrap_or_default())
            .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        let expected: Vec<String> = (0..30).map(|i| format!("cm-{i:02}")).collect();
        assert_eq!(
            all.iter()
                .filter(|n| n.starts_with("cm-"))
                .cloned()
                .collect::<Vec<_>>(),
            expected
        );
        c.stop().await
    })
}

/// Reads watch events from `response` until `n` have arrived (10 s at most).
async fn watch_events(response: &mut reqwest::Response, n: usize) -> Result<Vec<Value>> {
    let mut buffer = Vec::new();
    let mut events = Vec::new();
    while events.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .with_context(|| format!("{} of {n} watch events in time", events.len()))??
            .context("the watch ended")?;
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            events.push(serde_json::from_slice(&line)?);
        }
    }
    Ok(events)
}

#[test]
fn watches_stream_initial_events_ending_with_a_bookmark() -> Result<()> {
    run(async {
        let c = Cluster::start().await?;
        for name in ["a", "b"] {
            let (code, _) = c
                .call(
                    "POST",
                    "/api/v1/namespaces/default/configmaps",
                    Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})),
                )
                .await?;
            assert_eq!(code, 201);
        }
        const CMS: &str = "/api/v1/namespaces/default/configmaps";
        // A streaming list: the objects as ADDED, then a bookmark at their revision marking the end, then changes.
        let mut stream = c
            .request(
                "GET",
                &format!("{CMS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"),
            )?
            .send()
            .await?;
        assert_eq!(stream.status().as_u16(), 200);
        let initial = watch_events(&mut stream, 3).await?;
        let names: Vec<&str> = initial[..2]
            .iter()
            .map(|e| {
                assert_eq!(e["type"], "ADDED", "{e}");
                e["object"]["metadata"]["name"].as_str().unwrap_or_default()
            })
            .collect();
        assert_eq!(names, ["a", "b"]);
        let end = &initial[2];
        assert_eq!(end["type"], "BOOKMARK", "{end}");
        assert_eq!(
            end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
            "true"
        );
        let at: i64 = end["object"]["metadata"]["resourceVersion"]
            .as_str()
            .context("bookmark resourceVersion")?
            .parse()?;
        let b_rv: i64 = initial[1]["object"]["metadata"]["resourceVersion"]
            .as_str()
            .context("rv")?
            .parse()?;
        assert!(
            at >= b_rv,
            "the bookmark ({at}) is at or after the objects ({b_rv})"
        );
        // Without initial events: only what happens from now on.
        let mut quiet = c
            .request(
                "GET",
                &format!(
                    "{CMS}?watch=true&sendInitialEvents=false&resourceVersionMatch=NotOlderThan"
                ),
            )?
            .send()
            .await?;
        assert_eq!(quiet.status().as_u16(), 200);
        let (code, _) = c
            .call(
                "POST",
                CMS,
                Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})),
            )
            .await?;
        assert_eq!(code, 201);
        // The streaming list allowed bookmarks: the store's periodic progress may come first.
        let next_change = |events: Vec<Value>| events.into_iter().find(|e| e["type"] != "BOOKMARK");
        let mut seen = None;
        for _ in 0..50 {
            seen = next_change(watch_events(&mut stream, 1).await?);
            if seen.is_some() {
                break;
            }
        }
        let quiet_first = watch_events(&mut quiet, 1).await?;
        for event in [seen.unwrap_or_default(), quiet_first[0].clone()] {
            assert_eq!(event["type"], "ADDED", "{event}");
            assert_eq!(event["object"]["metadata"]["name"], "c");
        }
        // kube-apiserver's checks of the options.
        for (query, field) in [
            (
                "watch=true&sendInitialEvents=true&allowWatchBookmarks=true",
                "resourceVersionMatch",
            ),
            (
                "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan",
                "allowWatchBookmarks",
            ),
            (
                "watch=true&resourceVersion=1&resourceVersionMatch=NotOlderThan",
                "resourceVersionMatch",
            ),
            ("sendInitialEvents=true", "sendInitialEvents"),
        ] {
            let (code, status) = c.call("GET", &format!("{CMS}?{query}"), None).await?;
            assert_eq!(code, 422, "{query}: {status}");
            assert_eq!(status["reason"], "Invalid", "{query}");
            assert_eq!(
                status["details"]["causes"][0]["field"], field,
                "{query}: {status}"
            );
        }
        c.stop().await
    })
}

/// The store reads (ranges and history reads: what lists and watches cost) seen by `spy` until it is quiet for
/// `quiet`. Writes are not counted: the gateway's start-up writes (the default roles) may still be going on.
async fn store_reads(spy: &mut navarch_bus::Subscription, quiet: Duration) -> Result<usize> {
    let mut reads = 0;
    while let Ok(Some(m)) = tokio::time::timeout(quiet, spy.next()).await {
        let request: navarch_bus::store::StoreRequest = navarch_bus::codec::decode(&m.payload)?;
        if matches!(
            request,
            navarch_bus::store::StoreRequest::History(_)
                | navarch_bus::store::StoreRequest::Range(_)
        ) {
            reads += 1;
        }
    }
    Ok(reads)
}

#[test]
fn watchers_share_one_store_watch_per_kind() -> Result<()> {
    run(async {
        let c = Cluster::start().await?;
        // A first watch starts the kind's cache (a watch from a revision older than the cache's start is served
        // by a store watch of its own); then a list and 400 watchers from its revision, as informers do. Count
        // every store request those watchers cause.
        let mut first = c
            .request("GET", "/api/v1/namespaces/default/configmaps?watch=true")?
            .send()
            .await?;
        assert_eq!(first.status().as_u16(), 200);
        let list = c.get("/api/v1/namespaces/default/configmaps").await?;
        let rv = list["metadata"]["resourceVersion"]
            .as_str()
            .context("list resourceVersion")?
            .to_string();
        let mut spy = c.bus.subscribe(&c.bus.subjects().store_rpc()).await?;
        let mut watchers = Vec::new();
        // 400 watchers and the first, multiplexed on one HTTP/2 connection: more than hyper's default of 200
        // concurrent streams, within the API port's 1,000 (a 201st stream would wait, and this test time out).
        for i in 0..400 {
            let namespace = if i % 2 == 0 { "default" } else { "kube-system" };
            let request = c.request(
                "GET",
                &format!(
                    "/api/v1/namespaces/{namespace}/configmaps?watch=true&resourceVersion={rv}"
                ),
            )?;
            let response = tokio::time::timeout(Duration::from_secs(30), request.send())
                .await
                .with_context(|| format!("watcher {i} got no answer: out of HTTP/2 streams?"))??;
            assert_eq!(response.status().as_u16(), 200);
            watchers.push((namespace, response));
        }
        let store_requests = store_reads(&mut spy, Duration::from_millis(200)).await?;
        // Without the cache each watcher reads the store's history when it starts: 400 requests at least.
        assert!(
            store_requests < 10,
            "{store_requests} store reads for 400 watchers"
        );
        let (code, _) = c
            .call(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}})),
            )
            .await?;
        assert_eq!(code, 201);
        let line = tokio::time::timeout(Duration::from_secs(10), first.chunk())
            .await
            .context("the first watcher's event in time")??
            .context("an event")?;
        assert!(String::from_utf8_lossy(&line).contains("\"shared\""));
        // Every watcher of default sees it, exactly as the first; watchers of kube-system see nothing.
        for (_, response) in watchers.iter_mut().filter(|(ns, _)| *ns == "default") {
            let next = tokio::time::timeout(Duration::from_secs(5), response.chunk()).await;
            let chunk = next.context("an event in time")??.context("an event")?;
            assert_eq!(chunk, line);
        }
        // A list at resourceVersion=0 ("any") is answered by the cache too.
        store_reads(&mut spy, Duration::from_millis(100)).await?;
        let any = c
            .get("/api/v1/namespaces/default/configmaps?resourceVersion=0&limit=1")
            .await?;
        let names: Vec<&str> = any["items"]
            .as_array()
            .context("items")?
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str())
            .collect();
        assert!(names.contains(&"shared"), "{names:?}");
        assert_eq!(
            store_reads(&mut spy, Duration::from_millis(100)).await?,
            0,
            "a list at resourceVersion=0 reads no store"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        for (_, response) in watchers.iter_mut().filter(|(ns, _)| *ns == "kube-system") {
            let next = tokio::time::timeout(Duration::from_millis(5), response.chunk()).await;
            assert!(next.is_err(), "kube-system watchers see nothing of default");
        }
        c.stop().await
    })
}

#[test]
fn watch_streams_changes() -> Result<()> {
    run(async {
        let c = Cluster::start().await?;
        let list = c.get("/api/v1/namespaces/default/pods").await?;
        assert_eq!(list["kind"], "PodList");
        let rv = list["metadata"]["resourceVersion"]
            .as_str()
            .context("list resourceVersion")?
            .to_string();
        let mut plain = c
            .request("GET", &format!("/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&labelSelector=app%3Dweb"))?
            .send()
            .await?;
        assert_eq!(plain.status().as_u16(), 200);
        let mut table = c
            .request(
                "GET",
                "/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=30",
            )?
            .header("Accept", TABLE)
            .send()
            .await?;
        assert_eq!(
            c.call(
                "POST",
                "/api/v1/namespaces/default/pods",
                Some(pod("a", json!({"app": "db"})))
            )
            .await?
            .0,
            201
        );
        assert_eq!(
            c.call(
                "POST",
                "/api/v1/namespaces/default/pods",
                Some(pod("b", json!({"app": "web"})))
            )
            .await?
            .0,
            201
        );
        let relabel = json!({"metadata": {"labels": {"app": "web"}}});
        let (code, _) = c
            .send_raw(
                "PATCH",
                "/api/v1/namespaces/default/pods/a",
                "application/merge-patch+json",
                relabel.to_string().into_bytes(),
            )
            .await?;
        assert_eq!(code, 200);
        c.kubectl_ok(&["delete", "pod", "b", "-n", "default", "--wait=false"])
            .await?;

        let mut events = Vec::new();
        let mut buffer = Vec::new();
        while events.len() < 3 {
            let chunk = tokio::time::timeout(Duration::from_secs(10), plain.chunk())
                .await
                .context("watch event")??;
            buffer.extend_from_slice(&chunk.context("watch ended early")?);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let event: Value = serde_json::from_slice(&line)?;
                events.push((
                    event["type"].as_str().unwrap_or_default().to_string(),
                    event["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ));
            }
        }
        // `a` starts as app=db (not selected), then is relabelled into the selection: ADDED then.
        assert_eq!(
            events,
            vec![
                ("ADDED".into(), "b".into()),
                ("ADDED".into(), "a".into()),
                ("DELETED".into(), "b".into())
            ]
        );

        let chunk = tokio::time::timeout(Duration::from_secs(10), table.chunk())
            .await
            .context("table event")??;
        let line = chunk.context("table watch ended early")?;
        let first: Value =
            serde_json::from_slice(line.split(|b| *b == b'\n').next().unwrap_or_default())?;
        assert_eq!(first["object"]["kind"], "Table");
        assert_eq!(first["object"]["rows"][0]["cells"][0], "a");

        // A compacted resourceVersion is refused with 410 before anything streams.
        let now = c.revision().await?;
        c.client.compact(now).await?;
        let (code, status) = c
            .call(
                "GET",
                "/api/v1/namespaces/default/pods?watch=true&resourceVersion=2",
                None,
            )
            .await?;
        assert_eq!(
            (code, status["reason"].as_str()),
            (410, Some("Expired")),
            "{status}"
        );

        // timeoutSeconds ends the stream cleanly.
        let mut short = c
            .request("GET", "/api/v1/pods?watch=true&timeoutSeconds=1")?
            .send()
            .await?;
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            while short.chunk().await?.is_some() {}
            Ok::<_, reqwest::Error>(())
        })
        .await;
        assert!(matches!(ended, Ok(Ok(()))), "{ended:?}");
        // Shutting down ends the open watches instead of waiting out their timeouts.
        tokio::time::timeout(Duration::from_secs(5), c.stop())
            .await
            .context("shutdown with open watches")??;
        drop((plain, table));
        Ok(())
    })
}

#[test]
fn selector_watch_resumed_at_a_revision_sees_objects_leave() -> Result<()> {
    run(async {
        let c = Cluster::start().await?;
        for (name, app) in [("a", "web"), ("b", "web")] {
            let (code, _) = c
                .call(
                    "POST",
                    "/api/v1/namespaces/default/pods",
                    Some(pod(name, json!({"app": app}))),
                )
                .await?;
            assert_eq!(code, 201);
        }
        // Resume after both exist, as an informer does after a list: the gateway never saw them match.
        let rv = c.revision().await?;
        let mut watch = c
            .request(
                "GET",
                &format!("/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&labelSelector=app%3Dweb"),
            )?
            .send()
            .await?;
        assert_eq!(watch.status().as_u16(), 200);
        for (name, patch) in [
            ("a", json!({"metadata": {"labels": {"app": "other"}}})),
            (
                "b",
                json!({"metadata": {"annotations": {"touched": "yes"}}}),
            ),
        ] {
            let (code, _) = c
                .send_raw(
                    "PATCH",
                    &format!("/api/v1/namespaces/default/pods/{name}"),
                    "application/merge-patch+json",
                    patch.to_string().into_bytes(),
                )
                .await?;
            assert_eq!(code, 200);
        }
        let mut events = Vec::new();
        let mut buffer = Vec::new();
        while events.len() < 2 {
            let chunk = tokio::time::timeout(Duration::from_secs(10), watch.chunk())
                .await
                .context("watch event")??;
            buffer.extend_from_slice(&chunk.context("watch ended early")?);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let event: Value = serde_json::from_slice(&line)?;
                events.push(format!(
                    "{} {}",
                    event["type"].as_str().unwrap_or_default(),
                    event["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                ));
            }
        }
        assert_eq!(
            events,
            vec!["DELETED a".to_string(), "MODIFIED b".to_string()]
        );
        c.stop().await
    })
}

#[test]
fn bad_input_is_refused_and_writes_nothing() -> Result<()> {
    run(async {
        let c = Cluster::start().await?;
        let file = c.path("web.yaml");
        let file = file.to_str().context("utf-8 path")?;
        write(Path::new(file), &manifest("nginx:1.25", 2))?;
        c.kubectl_ok(&["apply", "-f", file]).await?;
        let before = c.revision().await?;
        let pods = "/api/v1/namespaces/demo/pods";

        let (code, s) = c
            .send_raw(
                "POST",
                pods,
                "application/json",
                b"{\"apiVersion\": ".to_vec(),
            )
            .await?;
        assert_eq!(
            (code, s["reason"].as_str(), s["kind"].as_str()),
            (400, Some("BadRequest"), Some("Status")),
            "{s}"
        );
        let (code, s) = c
            .send_raw(
                "POST",
                pods,
                "application/yaml",
                b"kind: [Pod\nmetadata: {".to_vec(),
            )
            .await?;
        assert_eq!(
            (code, s["reason"].as_str()),
            (400, Some("BadRequest")),
            "{s}"
        );
        let yaml = b"apiVersion: v1\nkind: Pod\nmetadata: {name: from-yaml}\nspec:\n  containers: [{name: c, image: busybox, bogus: 1}]\n";
        let (code, s) = c
            .send_raw(
                "POST",
                &format!("{pods}?fieldValidation=Strict"),
                "application/yaml",
                yaml.to_vec(),
            )
            .await?;
        assert_eq!(
            (code, s["reason"].as_str()),
            (400, Some("BadRequest")),
            "{s}"
        );
        let (code, s) = c
            .call(
                "POST",
                "/apis/apps/v1/namespaces/demo/widgets",
                Some(json!({"kind": "Widget"})),
            )
            .await?;
        assert_eq!(
            (code, s["message"].as_str()),
            (
                404,
                Some("the server could not find the requested resource")
            ),
            "{s}"
        );
        let (code, s) = c
            .call(
                "POST",
                pods,
                Some(json!({"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}})),
            )
            .await?;
        assert_eq!(code, 400, "{s}");
        let mut nameless = pod("x", json!({}));
        nameless["metadata"] = json!({});
        let (code, s) = c.call("POST", pods, Some(nameless)).await?;
        assert_eq!((code, s["reason"].as_str()), (422, Some("Invalid")), "{s}");
        assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
        let (code, s) = c
            .send_raw(
                "PATCH",
                "/apis/apps/v1/namespaces/demo/deployments/web/scale",
                "application/merge-patch+json",
                br#"{"spec":{"replicas":-1}}"#.to_vec(),
            )
            .await?;
        assert_eq!((code, s["reason"].as_str()), (422, Some("Invalid")), "{s}");
        assert_eq!(s["details"]["causes"][0]["field"], "spec.replicas");
        let (code, s) = c
            .call("PUT", "/apis/apps/v1/namespaces/demo/deployments/web/scale", Some(json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"}, "spec": {"replicas": -1}})))
            .await?;
        assert_eq!((code, s["reason"].as_str()), (422, Some("Invalid")), "{s}");
        let (code, s) = c
            .send_raw(
                "POST",
                pods,
                "application/vnd.kubernetes.protobuf",
                b"k8s\0".to_vec(),
            )
            .await?;
        // An envelope naming no kind.
        assert_eq!(
            (code, s["reason"].as_str()),
            (400, Some("BadRequest")),
            "{s}"
        );
        let (code, _) = c
            .send_raw(
                "POST",
                pods,
                "application/json",
                vec![b' '; 3 * 1024 * 1024 + 1],
            )
            .await?;
        assert_eq!(code, 413);
        let (code, s) = c.call("DELETE", "/version", None).await?;
        assert_eq!(
            (code, s["reason"].as_str()),
            (405, Some("MethodNotAllowed")),
            "{s}"
        );
        let (code, s) = c
            .call("POST", "/api/v1/pods", Some(pod("y", json!({}))))
            .await?;
        assert_eq!(code, 405, "{s}");
        let (code, s) = c
            .call(
                "GET",
                "/api/v1/namespaces/demo/pods?fieldSelector=spec.foo%3Dx",
                None,
            )
            .await?;
        assert_eq!(code, 400, "{s}");
        let (code, s) = c
            .call(
                "GET",
                "/api/v1/namespaces/demo/pods?labelSelector=a%20in%20(",
                None,
            )
            .await?;
        assert_eq!(code, 400, "{s}");
        let stale = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "resourceVersion": "1"}});
        let (code, s) = c
            .call(
                "PUT",
                "/apis/apps/v1/namespaces/demo/deployments/web",
                Some(stale),
            )
            .await?;
        assert_eq!((code, s["reason"].as_str()), (409, Some("Conflict")), "{s}");

        write(Path::new(file), &manifest("nginx:1.25", -1))?;
        let (ok, _, err) = c.kubectl(&["apply", "-f", file]).await?;
        assert!(
            !ok && err.contains("spec.replicas: Invalid value: -1"),
            "{err}"
        );

        assert_eq!(
            c.revision().await?,
            before,
            "a refused request wrote something"
        );
        let web = c
            .get("/apis/apps/v1/namespaces/demo/deployments/web")
            .await?;
        assert_eq!(web["spec"]["replicas"], 2);
        c.stop().await
    })
}

#[test]
fn lists_filter_tables_and_orphaning_deletes() -> Result<()> {
    run(async {
        let c = Cluster::start().await?;
        let pods = "/api/v1/namespaces/default/pods";
        for (name, labels) in [
            ("p1", json!({"app": "web", "tier": "a"})),
            ("p2", json!({"app": "web", "tier": "b"})),
            ("p3", json!({"app": "db"})),
        ] {
            let (code, s) = c.call("POST", pods, Some(pod(name, labels))).await?;
            assert_eq!(code, 201, "{s}");
        }
        let names = |list: &Value| -> Vec<String> {
            list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        };
        assert_eq!(
            names(
                &c.get(&format!(
                    "{pods}?labelSelector=app%3Dweb,tier%20notin%20(b)"
                ))
                .await?
            ),
            vec!["p1"]
        );
        assert_eq!(
            names(&c.get(&format!("{pods}?labelSelector=!tier")).await?),
            vec!["p3"]
        );
        assert_eq!(
            names(
                &c.get(&format!("{pods}?fieldSelector=metadata.name%21%3Dp1"))
                    .await?
            ),
            vec!["p2", "p3"]
        );
        assert_eq!(names(&c.get("/api/v1/pods?fieldSelector=metadata.namespace%3Ddefault,status.phase%3DPending").await?).len(), 3);

        let table: Value = c
            .request("GET", pods)?
            .header("Accept", TABLE)
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(table["kind"], "Table");
        assert_eq!(table["rows"].as_array().map(Vec::len), Some(3));
        assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        let one: Value = c
            .request("GET", &format!("{pods}/p1"))?
            .header("Accept", TABLE)
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(one["rows"][0]["cells"][0], "p1");

        // Orphan: the owner goes, its dependents stay without the reference.
        let (code, owner) = c.call("POST", "/apis/apps/v1/namespaces/default/deployments", Some(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "owner"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}))).await?;
        assert_eq!(code, 201, "{owner}");
        let reference = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "owner", "uid": owner["metadata"]["uid"]}]);
        let patch = json!({"metadata": {"ownerReferences": reference}})
            .to_string()
            .into_bytes();
        let (code, s) = c
            .send_raw(
                "PATCH",
                &format!("{pods}/p1"),
                "application/strategic-merge-patch+json",
                patch,
            )
            .await?;
        assert_eq!(code, 200, "{s}");
        assert_eq!(s["metadata"]["ownerReferences"][0]["name"], "owner");
        // Orphan, as the API does it: the owner stays, marked and holding the `orphan` finalizer, for the garbage
        // collector (not running here) to strip its dependents' references; removing the last finalizer deletes it.
        let deployment = "/apis/apps/v1/namespaces/default/deployments/owner";
        let (code, s) = c
            .call(
                "DELETE",
                deployment,
                Some(json!({"propagationPolicy": "Orphan"})),
            )
            .await?;
        assert_eq!(code, 200, "{s}");
        assert_eq!(s["metadata"]["finalizers"], json!(["orphan"]), "{s}");
        assert!(s["metadata"]["deletionTimestamp"].is_string(), "{s}");
        assert_eq!(s["metadata"]["deletionGracePeriodSeconds"], 0, "{s}");
        let (code, s) = c
            .call(
                "DELETE",
                &format!("{deployment}?propagationPolicy=Sideways"),
                None,
            )
            .await?;
        assert_eq!(code, 422, "{s}");
        assert_eq!(
            s["message"],
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Sideways\": \
             supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
        );
        let p1 = c.get(&format!("{pods}/p1")).await?;
        assert_eq!(p1["metadata"]["ownerReferences"][0]["name"], "owner");
        let (code, s) = c
            .send_raw(
                "PATCH",
                deployment,
                "application/merge-patch+json",
                br#"{"metadata": {"finalizers": null}}"#.to_vec(),
            )
            .await?;
        assert_eq!(code, 200, "{s}");
        assert_eq!(c.status("GET", deployment, None).await, Ok(404));
        // Status subresource: the status changes, nothing else does.
        let mut status = p1.clone();
        status["status"]["phase"] = json!("Running");
        status["metadata"]["labels"]["sneaky"] = json!("yes");
        let (code, s) = c
            .call("PUT", &format!("{pods}/p1/status"), Some(status))
            .await?;
        assert_eq!(code, 200, "{s}");
        assert_eq!(
            (
                s["status"]["phase"].as_str(),
                s["metadata"]["labels"].get("sneaky")
            ),
            (Some("Running"), None)
        );
        let out = c
            .kubectl_ok(&["get", "pods", "--field-selector", "status.phase=Running"])
            .await?;
        assert!(
            rows(&out)
                .iter()
                .any(|r| r.first().map(String::as_str) == Some("p1"))
                && !out.contains("p2"),
            "{out}"
        );
        c.stop().await
    })
}
