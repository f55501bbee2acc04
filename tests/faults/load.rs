//! Clients under load: each loops over random keys doing puts, compare-and-swap transactions, linearizable gets
//! and deletes through `StoreClient`, recording every call (invocation and completion time, outcome, revision)
//! for the checker. A call that failed ambiguously is recorded as of unknown effect.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use navarch_bus::store::{
    Compare, CompareResult, CompareTarget, DeleteRequest, Error, PutRequest, RangeRequest,
    StoreClient, StoreError, TxnOp, TxnOpResponse, TxnRequest,
};
use navarch_lincheck::{Completion, Op, Operation, Outcome};
use tokio::task::JoinHandle;

use super::Rng;

/// The prefix of every key the load touches (one change stream: `faults`).
pub const PREFIX: &str = "/registry/faults/";

/// The key with index `i`.
pub fn key(i: u64) -> String {
    format!("{PREFIX}k{i:03}")
}

/// Every recorded call, on one clock.
pub struct Recorder {
    origin: Instant,
    ops: Mutex<Vec<Operation>>,
    /// Answered calls that wrote.
    writes: AtomicU64,
    /// Errors no fault explains (a refusal of a well-formed request): a harness or store bug.
    pub unexpected: Mutex<Vec<String>>,
}

impl Recorder {
    /// An empty history whose clock starts now.
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            origin: Instant::now(),
            ops: Mutex::new(Vec::new()),
            writes: AtomicU64::new(0),
            unexpected: Mutex::new(Vec::new()),
        })
    }

    /// Nanoseconds since the history began.
    pub fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn record(&self, op: Operation) {
        if op.outcome().is_some_and(Outcome::wrote) {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        self.ops.lock().expect("history").push(op);
    }

    /// Acknowledged writes so far.
    pub fn acknowledged_writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// The history so far.
    pub fn history(&self) -> Vec<Operation> {
        self.ops.lock().expect("history").clone()
    }

    /// Calls `op` on `key` as client `client` and records it; returns the outcome when there was one.
    pub async fn call(
        &self,
        store: &StoreClient,
        client: usize,
        key: &str,
        op: Op,
    ) -> Option<Outcome> {
        self.call_and_read(store, client, key, op)
            .await
            .map(|(o, _)| o)
    }

    /// As [`Recorder::call`], also answering the key's value when the call read it (a failed compare-and-swap
    /// reads the current value).
    pub async fn call_and_read(
        &self,
        store: &StoreClient,
        client: usize,
        key: &str,
        op: Op,
    ) -> Option<(Outcome, Option<Option<String>>)> {
        let invoked = self.now();
        let result = execute(store, key, &op).await;
        let completed = self.now();
        let mut current = None;
        let completion = match result {
            Ok((outcome, revision, read)) => {
                current = read;
                Completion::Ok { outcome, revision }
            }
            Err(e) => {
                let completion = classify(&e);
                if completion == Completion::Failed
                    && !matches!(
                        e,
                        Error::Store(StoreError::NotLeader { .. })
                            | Error::Bus(navarch_bus::Error::NoResponders { .. })
                    )
                {
                    self.unexpected
                        .lock()
                        .expect("unexpected")
                        .push(format!("client {client} {key} {op:?}: {e}"));
                }
                completion
            }
        };
        let outcome = match &completion {
            Completion::Ok { outcome, .. } => Some((outcome.clone(), current)),
            _ => None,
        };
        self.record(Operation {
            client,
            key: key.to_string(),
            op,
            invoked,
            completed,
            completion,
        });
        outcome
    }
}

/// Whether a failed call may have taken effect: refusals before execution had none; timeouts, lost connections
/// and "unavailable" answers (a write not committed in time may still commit) may have.
pub fn classify(e: &Error) -> Completion {
    match e {
        Error::Store(
            StoreError::NotLeader { .. }
            | StoreError::InvalidArgument(_)
            | StoreError::RequestTooLarge { .. }
            | StoreError::Compacted { .. }
            | StoreError::FutureRevision { .. }
            | StoreError::NoSpace
            | StoreError::LeaseNotFound { .. }
            | StoreError::LeaseExists { .. }
            | StoreError::MemberNotFound { .. }
            | StoreError::MemberExists { .. },
        ) => Completion::Failed,
        Error::Bus(
            navarch_bus::Error::NoResponders { .. }
            | navarch_bus::Error::PayloadTooLarge { .. }
            | navarch_bus::Error::InvalidSubject(_),
        ) => Completion::Failed,
        _ => Completion::Unknown,
    }
}

/// What a call answered: its outcome, the revision in the answer, and the key's value when it read it.
type Answer = (Outcome, i64, Option<Option<String>>);

/// Runs one call.
async fn execute(store: &StoreClient, key: &str, op: &Op) -> Result<Answer, Error> {
    let key_bytes = key.as_bytes().to_vec();
    match op {
        Op::Put { value } => {
            let put = PutRequest {
                key: key_bytes,
                value: value.clone().into_bytes(),
                ..Default::default()
            };
            let response = store.put(put).await?;
            Ok((Outcome::Put, response.header.revision, None))
        }
        Op::Get => {
            let range = RangeRequest {
                key: key_bytes,
                ..Default::default()
            };
            let response = store.range(range).await?;
            let value = response
                .kvs
                .into_iter()
                .next()
                .map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
            Ok((
                Outcome::Get(value.clone()),
                response.header.revision,
                Some(value),
            ))
        }
        Op::Cas { expected, new } => {
            let compare = match expected {
                None => Compare::absent(key_bytes.clone()),
                Some(v) => Compare {
                    key: key_bytes.clone(),
                    result: CompareResult::Equal,
                    target: CompareTarget::Value(v.clone().into_bytes()),
                },
            };
            let txn = TxnRequest {
                compare: vec![compare],
                success: vec![TxnOp::Put(PutRequest {
                    key: key_bytes.clone(),
                    value: new.clone().into_bytes(),
                    ..Default::default()
                })],
                failure: vec![TxnOp::Range(RangeRequest {
                    key: key_bytes,
                    ..Default::default()
                })],
            };
            let response = store.txn(txn).await?;
            let read = response.responses.iter().find_map(|r| match r {
                TxnOpResponse::Range(range) => Some(
                    range
                        .kvs
                        .first()
                        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
                ),
                _ => None,
            });
            Ok((
                Outcome::Cas(response.succeeded),
                response.header.revision,
                read,
            ))
        }
        Op::Delete => {
            let delete = DeleteRequest {
                key: key_bytes,
                ..Default::default()
            };
            let response = store.delete(delete).await?;
            Ok((
                Outcome::Delete(response.deleted > 0),
                response.header.revision,
                None,
            ))
        }
    }
}

/// What the clients do.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Weight of puts.
    pub put: u64,
    /// Weight of compare-and-swap transactions.
    pub cas: u64,
    /// Weight of linearizable gets.
    pub get: u64,
    /// Weight of deletes.
    pub delete: u64,
}

impl Mix {
    /// Puts, transactions and gets in equal parts, a few deletes.
    pub const MIXED: Mix = Mix {
        put: 30,
        cas: 30,
        get: 35,
        delete: 5,
    };
    /// Only puts (for many writes quickly).
    pub const PUTS: Mix = Mix {
        put: 1,
        cas: 0,
        get: 0,
        delete: 0,
    };
}

/// Clients running until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `clients` clients numbered from `first`, on `keys` keys, each with its own generator from `rng`.
    pub fn start(
        store: &StoreClient,
        recorder: &Arc<Recorder>,
        rng: &mut Rng,
        (first, clients): (usize, usize),
        keys: u64,
        mix: Mix,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (first..first + clients)
            .map(|client| {
                let (store, recorder, stop) = (store.clone(), recorder.clone(), stop.clone());
                let rng = rng.fork();
                tokio::spawn(run_client(store, recorder, stop, rng, client, keys, mix))
            })
            .collect();
        Load { stop, tasks }
    }

    /// Stops the clients and waits for their last calls.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

async fn run_client(
    store: StoreClient,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    mut rng: Rng,
    client: usize,
    keys: u64,
    mix: Mix,
) {
    // What this client last saw of each key: the value its compare-and-swaps expect.
    let mut known: HashMap<String, Option<String>> = HashMap::new();
    let total = mix.put + mix.cas + mix.get + mix.delete;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = key(rng.below(keys));
        seq += 1;
        let value = format!("c{client}-{seq}");
        let roll = rng.below(total);
        let op = if roll < mix.put {
            Op::Put { value }
        } else if roll < mix.put + mix.cas {
            Op::Cas {
                expected: known.get(&key).cloned().flatten(),
                new: value,
            }
        } else if roll < mix.put + mix.cas + mix.get {
            Op::Get
        } else {
            Op::Delete
        };
        let answer = recorder
            .call_and_read(&store, client, &key, op.clone())
            .await;
        match (op, answer) {
            (_, Some((_, Some(current)))) => {
                known.insert(key, current);
            }
            (Op::Put { value } | Op::Cas { new: value, .. }, Some(_)) => {
                known.insert(key, Some(value));
            }
            (Op::Delete, Some(_)) => {
                known.insert(key, None);
            }
            _ => {
                known.remove(&key);
            }
        }
        if known.len() > 64 {
            known.clear();
        }
    }
}

/// Reads every key once more, recorded as client `client`: the history ends with what the store holds.
pub async fn read_all(store: &StoreClient, recorder: &Recorder, client: usize, keys: u64) {
    for i in 0..keys {
        let key = key(i);
        for _ in 0..20 {
            if recorder.call(store, client, &key, Op::Get).await.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
