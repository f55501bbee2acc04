//! Compare-and-swap contention on one counter: read it with its mod revision, then a transaction that puts value + 1
//! only if the mod revision is unchanged (as Kubernetes updates objects).

use navarch_bus::store::{Compare, PutRequest, StoreClient, TxnOp, TxnRequest};
use navarch_lincheck::Completion;

use super::load::classify;

/// The counter's value (0 when absent).
pub async fn read(store: &StoreClient, key: &str) -> u64 {
    for _ in 0..50 {
        if let Ok(kv) = store.get(key.as_bytes()).await {
            return kv.map_or(0, |kv| {
                String::from_utf8_lossy(&kv.value).parse().unwrap_or(0)
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("cannot read {key}");
}

/// `clients` clients each make `attempts` increments; answers (successful increments, increments of unknown
/// effect).
pub async fn contend(
    store: &StoreClient,
    key: &str,
    clients: usize,
    attempts: usize,
) -> (u64, u64) {
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (store, key) = (store.clone(), key.to_string());
            tokio::spawn(async move {
                let (mut won, mut unknown) = (0u64, 0u64);
                for _ in 0..attempts {
                    let Ok(current) = store.get(key.as_bytes()).await else {
                        continue;
                    };
                    let (value, revision) = current.map_or((0, 0), |kv| {
                        (
                            String::from_utf8_lossy(&kv.value)
                                .parse::<u64>()
                                .unwrap_or(0),
                            kv.mod_revision,
                        )
                    });
                    let txn = TxnRequest {
                        compare: vec![Compare::mod_revision(key.clone(), revision)],
                        success: vec![TxnOp::Put(PutRequest {
                            key: key.clone().into_bytes(),
                            value: (value + 1).to_string().into_bytes(),
                            ..Default::default()
                        })],
                        failure: vec![],
                    };
                    match store.txn(txn).await {
                        Ok(response) if response.succeeded => won += 1,
                        Ok(_) => {}
                        Err(e) if classify(&e) == Completion::Unknown => unknown += 1,
                        Err(_) => {}
                    }
                }
                (won, unknown)
            })
        })
        .collect();
    let mut total = (0, 0);
    for task in tasks {
        let (won, unknown) = task.await.expect("client");
        total.0 += won;
        total.1 += unknown;
    }
    total
}
