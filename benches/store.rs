//! `cargo bench --bench store`: one store member (openraft + fjall, fsync before every acknowledgement) on the
//! embedded bus or on a real nats-server, driven through `StoreClient` by 1, 16 and 256 concurrent clients doing
//! puts, compare-and-swap transactions and linearizable gets. Figures are printed, never asserted.
//!
//! The etcd comparison on the same machine is the next store issue's; this gives the skeleton's baseline.

#![allow(clippy::disallowed_methods)]

#[path = "../tests/util/mod.rs"]
mod util;

use std::time::Duration;

use navarch_bus::store::{Compare, PutRequest, StoreClient, TxnOp, TxnRequest};
use navarch_bus::Bus;
use navarch_store::{Shutdown, StoreConfig, StoreMember};

const OPS_PER_CLIENT_COUNT: usize = 2000;

#[derive(Clone, Copy)]
enum Op {
    Put,
    Txn,
    Get,
}

async fn drive(client: &StoreClient, op: Op, clients: usize) -> (f64, Duration, Duration) {
    let per_client = (OPS_PER_CLIENT_COUNT / clients).max(20);
    let started = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let key = format!("/bench/{c}/{}", i % 64);
                    let t = tokio::time::Instant::now();
                    match op {
                        Op::Put => {
                            client
                                .put(PutRequest {
                                    key: key.into_bytes(),
                                    value: vec![b'x'; 256],
                                    ..Default::default()
                                })
                                .await
                                .expect("put");
                        }
                        Op::Txn => {
                            let current = client
                                .get(key.as_bytes())
                                .await
                                .expect("get")
                                .map_or(0, |kv| kv.mod_revision);
                            client
                                .txn(TxnRequest {
                                    compare: vec![Compare::mod_revision(key.clone(), current)],
                                    success: vec![TxnOp::Put(PutRequest {
                                        key: key.into_bytes(),
                                        value: vec![b'y'; 256],
                                        ..Default::default()
                                    })],
                                    failure: vec![],
                                })
                                .await
                                .expect("txn");
                        }
                        Op::Get => {
                            client.get(key.as_bytes()).await.expect("get");
                        }
                    }
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    let elapsed = started.elapsed();
    all.sort();
    let rate = all.len() as f64 / elapsed.as_secs_f64();
    (rate, all[all.len() / 2], all[all.len() * 99 / 100])
}

async fn bench(label: &str, bus: Bus) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = StoreConfig {
        data_dir: dir.path().join("store"),
        ..Default::default()
    };
    let member = StoreMember::start(bus.clone(), config)
        .await
        .expect("store member");
    let client = StoreClient::new(bus);
    println!("store, 1 member, {label} bus (fsync before ack):");
    println!(
        "  {:<5} {:>7} {:>10} {:>9} {:>9}",
        "op", "clients", "ops/s", "p50", "p99"
    );
    for (name, op) in [("put", Op::Put), ("txn", Op::Txn), ("get", Op::Get)] {
        for clients in [1, 16, 256] {
            let (rate, p50, p99) = drive(&client, op, clients).await;
            println!(
                "  {name:<5} {clients:>7} {rate:>10.0} {:>7.2}ms {:>7.2}ms",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            );
        }
    }
    member
        .send(Shutdown)
        .await
        .expect("mailbox")
        .expect("shutdown");
}

fn main() {
    util::run_in_system(async {
        bench("embedded", Bus::embedded("bench").await.expect("bus")).await;
        let (_nats, url) = util::start_nats();
        bench(
            "NATS",
            Bus::nats(&url, "bench", "bench").await.expect("nats"),
        )
        .await;
    });
}
