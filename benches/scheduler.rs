//! `cargo bench --bench scheduler`: issue 5's scale figures, against release `navarch` role processes on one
//! nats-server (store, scheduler, node agents), each started fresh per run.
//!
//! - Scheduler throughput: N hollow nodes (`navarch agent --simulate N`) and P bare pods created by this process
//!   straight through the API layer the gateway uses (`Objects::create` over NATS: the same admission and encoding,
//!   without HTTPS and the gateway's rate limit, so the scheduler is what is measured), 128 creates in flight.
//!   A watch started before the first create times each pod: create -> bound (`spec.nodeName` seen) and create ->
//!   Running (reported by its hollow node). Throughput is P / (last bound - first create).
//! - Pod startup latency with the process runtime: A real agents (`navarch agent`, pods as host processes running
//!   `sleep 3600`), pods created at R per second; create -> Running as the watch sees it, p50/p99; then each agent's
//!   resident memory with the pods it runs.
//!   With `NAVARCH_BENCH_BACKLOG=1`, every pod is created before the scheduler starts (as Kubernetes'
//!   scheduler_perf measures), so the store's write rate for creates does not cap the figure: throughput is
//!   P / (last bound - scheduler start), and create -> bound latencies include the wait for the scheduler.
//! - Memory (VmRSS) of the hollow-node, scheduler and store processes after each throughput run.
//!
//! Figures are printed, never asserted. Environment: `NAVARCH_BENCH_SCHED=1000x10000,5000x50000` (nodes x pods,
//! default `1000x10000`), `NAVARCH_BENCH_STARTUP_PODS` (default 1100; 0 skips), `NAVARCH_BENCH_AGENTS` (default 10:
//! 110 pods each at most, the kubelet's max-pods), `NAVARCH_BENCH_STARTUP_RATE` (pods/s, default 100),
//! `NAVARCH_BENCH_TIMEOUT` (seconds per run, default 300). Role processes log at `warn` (their per-pod `info` lines
//! would otherwise be most of the work).

#![allow(clippy::disallowed_methods)] // a benchmark reads the wall clock

#[path = "../tests/util/mod.rs"]
mod util;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use navarch_bus::api::admission::FieldValidation;
use navarch_bus::api::{resource, Objects, Reason, ResourceInfo, WatchType};
use navarch_bus::store::StoreClient;
use serde_json::{json, Value};
use util::Proc;

const CLUSTER: &str = "bench-sched";
const NAMESPACE: &str = "bench";
const CREATES_IN_FLIGHT: usize = 128;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Starts `navarch <args>` on the bench's NATS, logging at `warn` into `<dir>/<name>.log`.
fn role(dir: &Path, nats: &str, name: &str, args: &[&str]) -> Proc {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file");
    let child = util::navarch()
        .args(args)
        .args(["--nats", nats, "--cluster", CLUSTER])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start navarch {name}: {e}"));
    Proc {
        child,
        name: name.to_string(),
    }
}

fn pods_info() -> &'static ResourceInfo {
    resource::by_kind("v1", "Pod").expect("pods are served")
}

async fn connect(nats: &str) -> Objects {
    let bus = navarch_bus::Bus::nats(nats, CLUSTER, "navarch-bench")
        .await
        .expect("connect to NATS");
    Objects::new(StoreClient::new(bus))
}

/// Creates the bench namespace once the store answers.
async fn create_namespace(objects: &Objects, deadline: Instant) {
    let info = resource::by_kind("v1", "Namespace").expect("namespaces are served");
    loop {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
        match objects
            .create(info, None, ns, FieldValidation::Strict)
            .await
        {
            Ok(_) => return,
            Err(e) if e.reason == Reason::AlreadyExists => return,
            Err(e) if Instant::now() > deadline => panic!("the store never answered: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Waits until `count` Nodes are Ready.
async fn wait_for_nodes(objects: &Objects, count: usize, deadline: Instant) -> Duration {
    let began = Instant::now();
    let info = resource::by_kind("v1", "Node").expect("nodes are served");
    loop {
        let ready = match objects.list(info, None).await {
            Ok((nodes, _)) => nodes
                .iter()
                .filter(|n| {
                    n["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
                .count(),
            Err(_) => 0,
        };
        if ready >= count {
            return began.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "only {ready} of {count} nodes Ready"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}})
}

/// When each pod was first seen bound and Running, and on which node.
#[derive(Default)]
struct Seen {
    bound: HashMap<String, (Instant, String)>,
    running: HashMap<String, Instant>,
}

/// Watches the bench namespace's pods into `seen` until the task is aborted.
async fn watch_pods(objects: Objects, seen: Arc<Mutex<Seen>>) {
    let mut watch = objects
        .watch(pods_info(), Some(NAMESPACE), 0)
        .await
        .expect("watch pods");
    while let Some(event) = watch.next().await {
        let Ok(event) = event else {
            panic!("the pod watch ended: {event:?}");
        };
        if !matches!(event.kind, WatchType::Added | WatchType::Modified) {
            continue;
        }
        let now = Instant::now();
        let o = &event.object;
        let Some(name) = o["metadata"]["name"].as_str() else {
            continue;
        };
        let mut seen = seen.lock().expect("seen");
        if let Some(node) = o["spec"]["nodeName"].as_str() {
            if !seen.bound.contains_key(name) {
                seen.bound.insert(name.to_string(), (now, node.to_string()));
            }
        }
        if o["status"]["phase"] == "Running" && !seen.running.contains_key(name) {
            seen.running.insert(name.to_string(), now);
        }
    }
}

/// Creates `count` pods, `rate` per second (None: as fast as `CREATES_IN_FLIGHT` allows); when each was sent.
async fn create_pods(
    objects: &Objects,
    count: usize,
    rate: Option<f64>,
) -> HashMap<String, Instant> {
    let start = Instant::now();
    let created: Vec<(String, Instant)> = futures::stream::iter(0..count)
        .map(|i| {
            let objects = objects.clone();
            async move {
                if let Some(rate) = rate {
                    tokio::time::sleep_until(
                        (start + Duration::from_secs_f64(i as f64 / rate)).into(),
                    )
                    .await;
                }
                let name = format!("p-{i:05}");
                let sent = Instant::now();
                let mut tries = 0;
                loop {
                    match objects
                        .create(
                            pods_info(),
                            Some(NAMESPACE),
                            pod(&name),
                            FieldValidation::Ignore,
                        )
                        .await
                    {
                        Ok(_) => break,
                        Err(e) if tries < 5 => {
                            tries += 1;
                            eprintln!("create {name}: {e}; retrying");
                        }
                        Err(e) => panic!("create {name}: {e}"),
                    }
                }
                (name, sent)
            }
        })
        .buffer_unordered(if rate.is_some() {
            4096
        } else {
            CREATES_IN_FLIGHT
        })
        .collect()
        .await;
    created.into_iter().collect()
}

/// Waits until every pod was seen bound and Running, or the deadline passes.
async fn wait_for_pods(seen: &Mutex<Seen>, count: usize, deadline: Instant) -> bool {
    loop {
        {
            let seen = seen.lock().expect("seen");
            if seen.bound.len() >= count && seen.running.len() >= count {
                return true;
            }
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn latencies<'a>(
    created: &HashMap<String, Instant>,
    seen: impl Iterator<Item = (&'a String, &'a Instant)>,
) -> Vec<Duration> {
    let mut all: Vec<Duration> = seen
        .filter_map(|(name, at)| created.get(name).map(|c| at.saturating_duration_since(*c)))
        .collect();
    all.sort();
    all
}

fn describe(what: &str, all: &[Duration]) {
    println!(
        "  {what}: {} pods, p50 {}, p99 {}, max {}",
        all.len(),
        ms(percentile(all, 0.5)),
        ms(percentile(all, 0.99)),
        ms(all.last().copied().unwrap_or_default()),
    );
}

async fn throughput(nats: &str, nodes: usize, pods: usize, backlog: bool, timeout: Duration) {
    let mode = if backlog {
        "backlog: every pod created before the scheduler starts"
    } else {
        "pods created while the scheduler runs"
    };
    println!("\n== scheduler throughput: {nodes} hollow nodes, {pods} pods ({mode}) ==");
    let dir = tempfile::tempdir().expect("temp dir");
    let deadline = Instant::now() + timeout;
    let store_dir = dir.path().join("store");
    let mut store = role(
        dir.path(),
        nats,
        "store",
        &[
            "store",
            "--id",
            "1",
            "--data-dir",
            store_dir.to_str().expect("utf-8"),
        ],
    );
    let start_scheduler = || role(dir.path(), nats, "scheduler", &["scheduler"]);
    let scheduler = (!backlog).then(start_scheduler);
    let count = nodes.to_string();
    let mut hollow = role(dir.path(), nats, "hollow", &["agent", "--simulate", &count]);
    let objects = connect(nats).await;
    create_namespace(&objects, deadline).await;
    let registered = wait_for_nodes(&objects, nodes, deadline).await;
    println!(
        "  {nodes} hollow nodes Ready after {} (hollow process: {})",
        ms(registered),
        mib(rss_kib(hollow.pid()))
    );

    let seen = Arc::new(Mutex::new(Seen::default()));
    let watcher = tokio::spawn(watch_pods(connect(nats).await, seen.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await; // the watch is registered
    let began = Instant::now();
    let created = create_pods(&objects, pods, None).await;
    let create_time = began.elapsed();
    let scheduler_started = Instant::now();
    let mut scheduler = scheduler.unwrap_or_else(start_scheduler);
    let done = wait_for_pods(&seen, pods, deadline).await;
    watcher.abort();
    let seen = seen.lock().expect("seen");
    // With a backlog, throughput counts from the scheduler's start (its first list included).
    let first = if backlog {
        scheduler_started
    } else {
        created.values().min().copied().unwrap_or(began)
    };
    let last_bound = seen.bound.values().map(|(t, _)| *t).max().unwrap_or(first);
    let last_running = seen.running.values().max().copied().unwrap_or(first);
    println!(
        "  created {pods} pods in {} ({:.0}/s, {CREATES_IN_FLIGHT} in flight){}",
        ms(create_time),
        pods as f64 / create_time.as_secs_f64(),
        if done {
            ""
        } else {
            "; TIMED OUT before every pod was bound and Running"
        }
    );
    let span = last_bound.saturating_duration_since(first).as_secs_f64();
    println!(
        "  throughput create -> bound: {} pods bound in {span:.1} s = {:.0} pods/s",
        seen.bound.len(),
        seen.bound.len() as f64 / span.max(1e-9)
    );
    let span = last_running.saturating_duration_since(first).as_secs_f64();
    println!(
        "  create -> Running (hollow): {} pods in {span:.1} s = {:.0} pods/s",
        seen.running.len(),
        seen.running.len() as f64 / span.max(1e-9)
    );
    describe(
        "create -> bound",
        &latencies(&created, seen.bound.iter().map(|(n, (t, _))| (n, t))),
    );
    describe(
        "create -> Running",
        &latencies(&created, seen.running.iter()),
    );
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for (_, node) in seen.bound.values() {
        *per_node.entry(node.as_str()).or_default() += 1;
    }
    println!(
        "  spread: {} nodes used, {}..{} pods per node",
        per_node.len(),
        per_node.values().min().unwrap_or(&0),
        per_node.values().max().unwrap_or(&0)
    );
    println!(
        "  memory (VmRSS): hollow nodes {}, scheduler {}, store {}",
        mib(rss_kib(hollow.pid())),
        mib(rss_kib(scheduler.pid())),
        mib(rss_kib(store.pid()))
    );
    drop(seen);
    hollow.terminate();
    scheduler.terminate();
    store.terminate();
}

async fn startup(nats: &str, agents: usize, pods: usize, rate: f64, timeout: Duration) {
    println!(
        "\n== pod startup latency: {agents} agents (process runtime), {pods} pods at {rate}/s =="
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let deadline = Instant::now() + timeout;
    let path = |p: &str| dir.path().join(p).to_str().expect("utf-8").to_string();
    let mut store = role(
        dir.path(),
        nats,
        "store",
        &["store", "--id", "1", "--data-dir", &path("store")],
    );
    let mut scheduler = role(dir.path(), nats, "scheduler", &["scheduler"]);
    let mut nodes: Vec<(String, Proc)> = (0..agents)
        .map(|i| {
            let name = format!("real-{i}");
            let data = path(&format!("agent-{i}"));
            let proc = role(
                dir.path(),
                nats,
                &name,
                &["agent", "--data-dir", &data, "--node-name", &name],
            );
            (name, proc)
        })
        .collect();
    let objects = connect(nats).await;
    create_namespace(&objects, deadline).await;
    wait_for_nodes(&objects, agents, deadline).await;
    let idle: Vec<u64> = nodes.iter().map(|(_, p)| rss_kib(p.pid())).collect();

    let seen = Arc::new(Mutex::new(Seen::default()));
    let watcher = tokio::spawn(watch_pods(connect(nats).await, seen.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let created = create_pods(&objects, pods, Some(rate)).await;
    let done = wait_for_pods(&seen, pods, deadline).await;
    watcher.abort();
    if !done {
        println!("  TIMED OUT before every pod was Running");
    }
    let seen = seen.lock().expect("seen");
    describe(
        "create -> Running",
        &latencies(&created, seen.running.iter()),
    );
    describe(
        "create -> bound",
        &latencies(&created, seen.bound.iter().map(|(n, (t, _))| (n, t))),
    );
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, node) in seen.bound.values() {
        *per_node.entry(node.as_str()).or_default() += 1;
    }
    for ((name, proc), idle) in nodes.iter().zip(idle) {
        println!(
            "  agent {name}: {} pods, VmRSS {} (idle {})",
            per_node.get(name.as_str()).unwrap_or(&0),
            mib(rss_kib(proc.pid())),
            mib(idle)
        );
    }
    drop(seen);
    for (_, proc) in &mut nodes {
        proc.terminate();
    }
    scheduler.terminate();
    store.terminate();
}

#[tokio::main]
async fn main() {
    let (_nats, nats) = util::start_nats();
    let timeout = Duration::from_secs(env_or("NAVARCH_BENCH_TIMEOUT", 300));
    println!(
        "machine: {} CPUs; {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let backlog = std::env::var("NAVARCH_BENCH_BACKLOG").is_ok_and(|v| v == "1");
    let sizes = std::env::var("NAVARCH_BENCH_SCHED").unwrap_or_else(|_| "1000x10000".into());
    for size in sizes.split(',').filter(|s| !s.trim().is_empty()) {
        let Some((nodes, pods)) = size
            .trim()
            .split_once('x')
            .and_then(|(n, p)| Some((n.parse().ok()?, p.parse().ok()?)))
        else {
            panic!("NAVARCH_BENCH_SCHED: {size:?} is not NODESxPODS");
        };
        throughput(&nats, nodes, pods, backlog, timeout).await;
    }
    let pods = env_or("NAVARCH_BENCH_STARTUP_PODS", 1100usize);
    if pods > 0 {
        let agents = env_or("NAVARCH_BENCH_AGENTS", 10usize);
        let rate = env_or("NAVARCH_BENCH_STARTUP_RATE", 100.0f64);
        startup(&nats, agents, pods, rate, timeout).await;
    }
}
