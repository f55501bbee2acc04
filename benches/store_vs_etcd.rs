//! `cargo bench --bench store_vs_etcd`: a 3-member etcd 3.4 cluster against a 3-member Navarch store cluster (release
//! `navarch store` processes on one nats-server), both on loopback on this machine, one after the other, each with
//! fresh data directories and default durability, driven through the etcd v3 gRPC API by the same client code.
//!
//! For each cluster: 1, 16 and 256 concurrent clients (tokio tasks sharing up to 8 gRPC channels spread over the 3
//! members) doing puts (`/bench/<client>/<i % 64>`, 256-byte values), read-then-compare-and-swap transactions (the
//! linearizable read and the txn count as one op) and linearizable gets, each for a fixed time after a 1 s warm-up;
//! then `etcdctl check perf --load=l` (60 s). Prints a markdown table of ops/s and p50/p99 latencies, the check-perf
//! verdicts, the machine, and the warnings and errors the members logged. Figures are printed, never asserted: the
//! machine may be shared and noisy.
//!
//! Needs `etcd`, `etcdctl` and `nats-server` on the PATH (`apt-get install -y etcd-server etcd-client nats-server`).
//! `NAVARCH_BENCH_SECS=N` measures each step for N seconds (default 5); `NAVARCH_BENCH_SKIP_CHECK_PERF=1` skips
//! `etcdctl check perf`; `NAVARCH_BENCH_STEPS=put:1,get:256` measures only the steps named.

#![allow(clippy::disallowed_methods)] // a benchmark reads the wall clock

#[path = "../tests/util/mod.rs"]
mod util;

#[path = "store_vs_etcd/check_perf.rs"]
mod check_perf;
#[path = "store_vs_etcd/cluster.rs"]
mod cluster;

use std::process::Command;
use std::time::{Duration, Instant};

use navarch_store::etcd::proto::etcdserverpb::{
    self as pb, compare, kv_client::KvClient, request_op,
};
use tonic::transport::Channel;

use check_perf::{check_perf, CheckPerf};
use cluster::Cluster;

/// Concurrent clients per step.
const CLIENTS: [usize; 3] = [1, 16, 256];
/// gRPC channels (HTTP/2 connections) the clients share round-robin, at most one per client.
const CHANNELS_COUNT: usize = 8;
/// Keys each client cycles through.
const KEYS_PER_CLIENT_COUNT: usize = 64;
const VALUE_BYTES: usize = 256;
const WARM_UP: Duration = Duration::from_secs(1);
/// The longest one request may take before it counts as an error, so a stuck member cannot stall the sweep.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
enum Op {
    Put,
    Txn,
    Get,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Txn => "txn",
            Op::Get => "get",
        }
    }
}

/// What one (op, clients) step measured.
#[derive(Default)]
struct Figures {
    /// Latencies of the ops that finished inside the measured window, sorted.
    latencies: Vec<Duration>,
    window: Duration,
    /// Failed ops over the whole step, warm-up included, and the first failure.
    errors: usize,
    first_error: Option<String>,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.window.as_secs_f64()
    }

    fn percentile(&self, p: usize) -> Option<Duration> {
        let n = self.latencies.len();
        (n > 0).then(|| self.latencies[(n * p / 100).min(n - 1)])
    }
}

/// One op as a client does it; `Err` carries the gRPC status.
async fn run_op(kv: &mut KvClient<Channel>, op: Op, key: Vec<u8>) -> Result<(), String> {
    let put = |key: Vec<u8>| pb::PutRequest {
        key,
        value: vec![b'x'; VALUE_BYTES],
        ..Default::default()
    };
    let failed = |e: tonic::Status| format!("{:?}: {}", e.code(), e.message());
    // A default range request is linearizable (`serializable: false`), like etcdctl's default.
    let get = |key: Vec<u8>| pb::RangeRequest {
        key,
        ..Default::default()
    };
    match op {
        Op::Put => {
            kv.put(put(key)).await.map_err(failed)?;
        }
        Op::Get => {
            kv.range(get(key)).await.map_err(failed)?;
        }
        Op::Txn => {
            let current = kv
                .range(get(key.clone()))
                .await
                .map_err(failed)?
                .into_inner()
                .kvs
                .first()
                .map_or(0, |kv| kv.mod_revision);
            let txn = pb::TxnRequest {
                compare: vec![pb::Compare {
                    result: compare::CompareResult::Equal as i32,
                    target: compare::CompareTarget::Mod as i32,
                    key: key.clone(),
                    target_union: Some(compare::TargetUnion::ModRevision(current)),
                    range_end: Vec::new(),
                }],
                success: vec![pb::RequestOp {
                    request: Some(request_op::Request::RequestPut(put(key))),
                }],
                failure: Vec::new(),
            };
            // Each client owns its keys, so the compare can only fail if the store lost or reordered a write.
            if !kv.txn(txn).await.map_err(failed)?.into_inner().succeeded {
                return Err("txn compare failed on a key only this client writes".into());
            }
        }
    }
    Ok(())
}

/// Runs `op` from `clients` concurrent clients for the warm-up and then `window`.
async fn drive(channels: &[Channel], op: Op, clients: usize, window: Duration) -> Figures {
    let begin = Instant::now() + WARM_UP;
    let end = begin + window;
    let shared = clients.min(channels.len());
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let mut kv = KvClient::new(channels[c % shared].clone());
            tokio::spawn(async move {
                let mut figures = Figures::default();
                let mut i = 0;
                while Instant::now() < end {
                    let key = format!("/bench/{c}/{}", i % KEYS_PER_CLIENT_COUNT).into_bytes();
                    i += 1;
                    let started = Instant::now();
                    match run_op(&mut kv, op, key).await {
                        Ok(()) => {
                            let done = Instant::now();
                            if started >= begin && done <= end {
                                figures.latencies.push(done - started);
                            }
                        }
                        Err(e) => {
                            figures.errors += 1;
                            figures.first_error.get_or_insert(e);
                            // A member that refuses (say, during an election) should not be hammered.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                figures
            })
        })
        .collect();
    let mut all = Figures {
        window,
        ..Default::default()
    };
    for task in tasks {
        let figures = task.await.expect("client task");
        all.latencies.extend(figures.latencies);
        all.errors += figures.errors;
        if all.first_error.is_none() {
            all.first_error = figures.first_error;
        }
    }
    all.latencies.sort_unstable();
    all
}

/// Everything measured on one cluster.
struct Run {
    steps: Vec<(Op, usize, Figures)>,
    check: Option<CheckPerf>,
    problems: Vec<String>,
    /// The 1-minute load average before the cluster started and after it stopped: how busy the machine was.
    load: (String, String),
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

/// Whether `NAVARCH_BENCH_STEPS` (a comma-separated list such as `put:1,get:256`; unset means every step) names
/// this step.
fn step_selected(op: Op, clients: usize) -> bool {
    std::env::var("NAVARCH_BENCH_STEPS").map_or(true, |steps| {
        steps
            .split(',')
            .any(|step| step.trim() == format!("{}:{clients}", op.name()))
    })
}

fn measure(
    rt: &tokio::runtime::Runtime,
    start: fn() -> Cluster,
    window: Duration,
    with_check: bool,
) -> Run {
    let load_before = load_average();
    let mut cluster = start();
    let label = cluster.label;
    eprintln!("{label}: waiting for a leader");
    let leader = rt.block_on(cluster.wait_ready());
    let channels = rt.block_on(cluster.channels(leader));
    let mut steps = Vec::new();
    for op in [Op::Put, Op::Txn, Op::Get] {
        for clients in CLIENTS {
            if !step_selected(op, clients) {
                continue;
            }
            eprintln!("{label}: {} x {clients}", op.name());
            let figures = rt.block_on(drive(&channels, op, clients, window));
            steps.push((op, clients, figures));
        }
    }
    drop(channels);
    let check = with_check.then(|| {
        eprintln!("{label}: etcdctl check perf --load=l (about 60 s)");
        check_perf(&cluster.endpoints)
    });
    eprintln!("{label}: stopping");
    let problems = cluster.stop();
    Run {
        steps,
        check,
        problems,
        load: (load_before, load_average()),
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2} ms", d.as_secs_f64() * 1e3))
}

fn ops(f: &Figures) -> String {
    match f.errors {
        0 => format!("{:.0}", f.rate()),
        n => format!("{:.0} ({n} errors)", f.rate()),
    }
}

fn print_machine() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("unknown", |m| m.trim_start_matches([' ', '\t', ':']));
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let etcd = Command::new("etcd")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_else(|e| format!("etcd not runnable: {e}"));
    println!("## Machine\n");
    println!("- CPUs (nproc): {cpus}, model: {model}");
    println!("- load average at start: {}", load.trim());
    println!("- {etcd}; Navarch: {}", env!("CARGO_BIN_EXE_navarch"));
}

fn print_report(etcd: &Run, navarch: &Run, window: Duration) {
    println!(
        "\n## 3 members on loopback, etcd v3 gRPC API, {} s per step after {} s warm-up\n",
        window.as_secs(),
        WARM_UP.as_secs()
    );
    println!("Clients share up to {CHANNELS_COUNT} gRPC channels spread over the members; a txn is a linearizable read plus a compare-and-put.\n");
    println!("| op | clients | etcd ops/s | etcd p50 | etcd p99 | Navarch ops/s | Navarch p50 | Navarch p99 | Navarch/etcd |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for ((op, clients, e), (_, _, n)) in etcd.steps.iter().zip(&navarch.steps) {
        let ratio = if e.rate() > 0.0 {
            format!("{:.2}", n.rate() / e.rate())
        } else {
            "-".into()
        };
        println!(
            "| {} | {clients} | {} | {} | {} | {} | {} | {} | {ratio} |",
            op.name(),
            ops(e),
            ms(e.percentile(50)),
            ms(e.percentile(99)),
            ops(n),
            ms(n.percentile(50)),
            ms(n.percentile(99)),
        );
    }
    for (label, run) in [("etcd", etcd), ("Navarch", navarch)] {
        for (op, clients, f) in &run.steps {
            if let Some(e) = &f.first_error {
                println!(
                    "\n{label} {} x {clients}: {} errors, the first: {e}",
                    op.name(),
                    f.errors
                );
            }
        }
    }
    if let (Some(e), Some(n)) = (&etcd.check, &navarch.check) {
        println!(
            "\n## etcdctl check perf --load=l (8000 writes/s offered by 500 clients for 60 s)\n"
        );
        println!("| | etcd | Navarch |\n|---|---|---|");
        let num = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
        let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        println!("| verdict | {} | {} |", e.verdict, n.verdict);
        println!(
            "| throughput (writes/s) | {} | {} |",
            num(e.throughput),
            num(n.throughput)
        );
        println!(
            "| slowest request | {} | {} |",
            text(&e.slowest),
            text(&n.slowest)
        );
        println!("| stddev | {} | {} |", text(&e.stddev), text(&n.stddev));
        println!(
            "| wall time | {:.0} s | {:.0} s |",
            e.took.as_secs_f64(),
            n.took.as_secs_f64()
        );
        for (label, check) in [("etcd", e), ("Navarch", n)] {
            println!(
                "\n{label}'s check perf output:\n```\n{}\n```",
                check.lines.join("\n")
            );
        }
    }
    println!(
        "\n1-minute load average (before start -> after stop): etcd {} -> {}, Navarch {} -> {}",
        etcd.load.0, etcd.load.1, navarch.load.0, navarch.load.1
    );
    for (label, run) in [("etcd", etcd), ("Navarch", navarch)] {
        if run.problems.is_empty() {
            println!("\n{label} members: clean stop, no warnings logged.");
        } else {
            println!("\n{label} members:\n```\n{}\n```", run.problems.join("\n"));
        }
    }
}

fn main() {
    let window = Duration::from_secs(
        std::env::var("NAVARCH_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|s| *s > 0)
            .unwrap_or(5),
    );
    let with_check = std::env::var("NAVARCH_BENCH_SKIP_CHECK_PERF").as_deref() != Ok("1");
    print_machine();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let etcd = measure(&rt, Cluster::etcd, window, with_check);
    let navarch = measure(&rt, Cluster::navarch, window, with_check);
    print_report(&etcd, &navarch, window);
}
