//! `cargo bench --bench api`: the Kubernetes API of a release `navarch up` (embedded bus, one store member, TLS,
//! admin token, rate limit off) driven over HTTPS by an open-loop client on the same machine.
//!
//! - Latency at rising request rates, until saturation, for `get` (one ConfigMap), `list` (1,000 ConfigMaps in
//!   one namespace), `create` (a ConfigMap) and `update` (PUT of an existing ConfigMap). Requests are sent on a
//!   fixed schedule whether or not earlier ones have been answered, and each latency counts from its scheduled
//!   time, so queueing at saturation shows (no coordinated omission). A rate is "kept" when the answers per second
//!   reach 90% of it and the p99 stays under 1 s (Kubernetes' SLO for single-object calls); the sweep of a verb
//!   stops at the first rate not kept.
//! - Watch fan-out: 1,000 and then 10,000 concurrent watchers of one namespace's ConfigMaps (HTTP/2, 100 streams
//!   per connection), then 20 writes; for each write, the time from sending it to its delivery at each watcher
//!   (p50, p99, last), and the gateway's memory (RSS of the `navarch up` process) per watcher.
//!
//! Figures are printed, never asserted (the machine may be shared and noisy). `NAVARCH_BENCH_SECS=N` runs each
//! rate for N seconds (default 5); `NAVARCH_BENCH_WATCHERS=1000,10000` sets the fan-out sizes.

#![allow(clippy::disallowed_methods)] // a benchmark reads the wall clock

#[path = "../tests/util/mod.rs"]
mod util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Mutex;

/// Rates tried per verb, requests per second.
const RATES: [(&str, &[u64]); 4] = [
    ("get", &[100, 250, 500, 1000, 2000, 4000, 8000]),
    ("list", &[5, 10, 25, 50, 100, 200]),
    ("create", &[50, 100, 250, 500, 1000, 2000]),
    ("update", &[50, 100, 250, 500, 1000, 2000]),
];
const LIST_SIZE: usize = 1000;
const SLO: Duration = Duration::from_secs(1);
const STREAMS_PER_CONNECTION: usize = 100;
const WATCH_WRITES: usize = 20;

struct Api {
    base: String,
    clients: Vec<reqwest::Client>,
}

impl Api {
    fn client(credentials: &util::Credentials) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = &credentials.token {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}").parse().expect("header"),
            );
        }
        reqwest::Client::builder()
            .default_headers(headers)
            .tls_certs_only([reqwest::Certificate::from_pem(&credentials.ca_pem).expect("CA")])
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
    }

    fn new(base: &str, clients: usize) -> Self {
        let credentials = util::credentials(base).expect("an https API");
        Self {
            base: base.to_string(),
            clients: (0..clients).map(|_| Self::client(&credentials)).collect(),
        }
    }

    fn pick(&self, i: usize) -> &reqwest::Client {
        &self.clients[i % self.clients.len()]
    }
}

fn configmap(name: &str, i: usize) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"i": i.to_string(), "payload": "x".repeat(200)}})
}

async fn create_namespace(api: &Api, name: &str) {
    let response = api
        .pick(0)
        .post(format!("{}/api/v1/namespaces", api.base))
        .json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
        .send()
        .await
        .expect("create namespace");
    assert!(response.status().is_success(), "namespace {name}");
}

/// Sends one request of `verb`; whether it succeeded.
async fn one(api: &Api, verb: &str, i: usize) -> bool {
    let client = api.pick(i);
    let base = &api.base;
    let request = match verb {
        "get" => client.get(format!(
            "{base}/api/v1/namespaces/bench-get/configmaps/cm-{}",
            i % 100
        )),
        "list" => client.get(format!("{base}/api/v1/namespaces/bench-list/configmaps")),
        "create" => client
            .post(format!("{base}/api/v1/namespaces/bench-create/configmaps"))
            .json(&configmap(&format!("cm-{i}-{}", rand_suffix()), i)),
        "update" => client
            .put(format!(
                "{base}/api/v1/namespaces/bench-get/configmaps/cm-{}",
                i % 100
            ))
            .json(&configmap(&format!("cm-{}", i % 100), i)),
        _ => unreachable!("a verb of RATES"),
    };
    match request.send().await {
        Ok(response) => {
            let ok = response.status().is_success();
            ok && response.bytes().await.is_ok()
        }
        Err(_) => false,
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Runs `verb` at `rate` for `secs`: (answered per second, p50, p99, errors).
async fn at_rate(
    api: Arc<Api>,
    verb: &'static str,
    rate: u64,
    secs: u64,
) -> (f64, Duration, Duration, usize) {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let total = (rate * secs) as usize;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let scheduled = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let (api, latencies, errors) = (api.clone(), latencies.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            if one(&api, verb, i).await {
                latencies.lock().await.push(scheduled.elapsed());
            } else {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut latencies = latencies.lock().await.clone();
    latencies.sort();
    let answered = latencies.len() as f64 / elapsed;
    (
        answered,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        errors.load(std::sync::atomic::Ordering::Relaxed),
    )
}

async fn seed(api: &Api) {
    for ns in ["bench-get", "bench-list", "bench-create", "bench-watch"] {
        create_namespace(api, ns).await;
    }
    for i in 0..100 {
        let r = api
            .pick(i)
            .post(format!(
                "{}/api/v1/namespaces/bench-get/configmaps",
                api.base
            ))
            .json(&configmap(&format!("cm-{i}"), i))
            .send()
            .await
            .expect("seed get");
        assert!(r.status().is_success());
    }
    let mut tasks = Vec::new();
    for chunk in 0..10 {
        let base = api.base.clone();
        let client = api.pick(chunk).clone();
        tasks.push(tokio::spawn(async move {
            for i in (chunk * LIST_SIZE / 10)..((chunk + 1) * LIST_SIZE / 10) {
                let r = client
                    .post(format!("{base}/api/v1/namespaces/bench-list/configmaps"))
                    .json(&configmap(&format!("cm-{i}"), i))
                    .send()
                    .await
                    .expect("seed list");
                assert!(r.status().is_success());
            }
        }));
    }
    for t in tasks {
        t.await.expect("seed task");
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Opens `count` watchers, then writes; prints delivery latencies and memory per watcher.
async fn fan_out(base: &str, pid: u32, count: usize) {
    let connections = count.div_ceil(STREAMS_PER_CONNECTION);
    let api = Arc::new(Api::new(base, connections));
    let list: serde_json::Value = api
        .pick(0)
        .get(format!("{base}/api/v1/namespaces/bench-watch/configmaps"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("list json");
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid);
    let opened = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let mut streams = Vec::with_capacity(count);
    for w in 0..count {
        let client = api.pick(w).clone();
        let url = format!("{base}/api/v1/namespaces/bench-watch/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=600");
        let tx = tx.clone();
        streams.push(tokio::spawn(async move {
            let Ok(mut response) = client
                .get(url)
                .timeout(Duration::from_secs(900))
                .send()
                .await
            else {
                return;
            };
            let mut pending = Vec::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                let at = Instant::now();
                pending.extend_from_slice(&chunk);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    if let Ok(event) = serde_json::from_slice::<serde_json::Value>(&line) {
                        if let Some(i) = event["object"]["data"]["i"]
                            .as_str()
                            .and_then(|i| i.parse().ok())
                        {
                            let _ = tx.send((i, at));
                        }
                    }
                }
            }
        }));
    }
    // Watch requests answer their headers once established; give the last ones time, then measure memory.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid);
    println!(
        "watchers {count}: opened in {:.1} s over {connections} HTTP/2 connections; gateway RSS {} MiB -> {} MiB = {:.1} KiB per watcher",
        opened.elapsed().as_secs_f64() - 3.0,
        before / 1024,
        after / 1024,
        (after.saturating_sub(before)) as f64 / count as f64
    );
    let mut sent = Vec::new();
    for i in 0..WATCH_WRITES {
        let at = Instant::now();
        let r = api
            .pick(i)
            .post(format!("{base}/api/v1/namespaces/bench-watch/configmaps"))
            .json(&configmap(&format!("w{count}-{i}"), i))
            .send()
            .await
            .expect("write");
        assert!(r.status().is_success());
        sent.push(at);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut delays = Vec::new();
    let mut last = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(30);
    while delays.len() < count * WATCH_WRITES && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some((i, at))) if i < sent.len() => {
                let d = at.saturating_duration_since(sent[i]);
                last = last.max(d);
                delays.push(d);
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    delays.sort();
    println!(
        "watchers {count}: {} of {} deliveries; write -> delivery p50 {} ms, p99 {} ms, slowest {} ms",
        delays.len(),
        count * WATCH_WRITES,
        ms(percentile(&delays, 0.5)),
        ms(percentile(&delays, 0.99)),
        ms(last)
    );
    for s in streams {
        s.abort();
    }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secs: u64 = std::env::var("NAVARCH_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let watchers: Vec<usize> = std::env::var("NAVARCH_BENCH_WATCHERS")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let up = util::start_up(&["--api-rate-limit-qps", "0"]);
    let pid = up.proc.pid();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let api = Arc::new(Api::new(&up.api, 8));
        seed(&api).await;
        println!("| verb | target/s | answered/s | p50 ms | p99 ms | errors |");
        println!("|---|---|---|---|---|---|");
        for (verb, rates) in RATES {
            for &rate in rates {
                let (answered, p50, p99, errors) = at_rate(api.clone(), verb, rate, secs).await;
                println!(
                    "| {verb} | {rate} | {answered:.0} | {} | {} | {errors} |",
                    ms(p50),
                    ms(p99)
                );
                if answered < rate as f64 * 0.9 || p99 > SLO || errors > 0 {
                    break;
                }
            }
        }
        for count in watchers {
            fan_out(&up.api, pid, count).await;
        }
    });
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "machine: {cpus} CPUs; navarch up pid {pid}, peak RSS now {} MiB",
        rss_kib(pid) / 1024
    );
}
