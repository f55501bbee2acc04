//! The checks after a fault: the history is linearizable (per key, with the lincheck crate) and its revisions follow
//! real time; every acknowledged write is in the committed history at its revision, and nothing is there that no
//! client wrote; every watch delivered exactly the committed sequence.

use std::collections::{HashMap, HashSet};

use navarch_bus::store::{prefix_end, ChangeBatch, EventKind, HistoryRequest, StoreClient};
use navarch_lincheck::{Completion, Op, Operation, Outcome};

use super::load::{Recorder, PREFIX};
use super::watchers::Watcher;

/// Every committed change under [`PREFIX`], ascending, read (linearizably) page by page; and the revision read at.
pub async fn committed(store: &StoreClient) -> (Vec<ChangeBatch>, i64) {
    let mut batches: Vec<ChangeBatch> = Vec::new();
    let mut start = 1;
    loop {
        let response = store
            .history(HistoryRequest {
                key: PREFIX.as_bytes().to_vec(),
                range_end: prefix_end(PREFIX.as_bytes()),
                start_revision: start,
                limit: 0,
            })
            .await
            .expect("read the committed history");
        let last = response.batches.last().map(|b| b.revision);
        batches.extend(response.batches);
        match (response.more, last) {
            (true, Some(last)) => start = last + 1,
            _ => return (batches, response.header.revision),
        }
    }
}

/// Acknowledged writes missing from the committed history (or there with another value or at another revision).
pub fn lost_writes(history: &[Operation], committed: &[ChangeBatch]) -> Vec<String> {
    let at: HashMap<i64, &ChangeBatch> = committed.iter().map(|b| (b.revision, b)).collect();
    let mut lost = Vec::new();
    for op in history {
        let Completion::Ok { outcome, revision } = &op.completion else {
            continue;
        };
        if !outcome.wrote() {
            continue;
        }
        let want_value = match &op.op {
            Op::Put { value } | Op::Cas { new: value, .. } => Some(value.as_bytes()),
            _ => None,
        };
        let found = at.get(revision).is_some_and(|batch| {
            batch.events.iter().any(|e| {
                e.kv.key == op.key.as_bytes()
                    && match want_value {
                        Some(v) => e.kind == EventKind::Put && e.kv.value == v,
                        None => e.kind == EventKind::Delete,
                    }
            })
        });
        if !found {
            lost.push(format!("{op}"));
        }
    }
    lost
}

/// Values in the committed history that no recorded call wrote.
pub fn phantom_writes(history: &[Operation], committed: &[ChangeBatch]) -> Vec<String> {
    let written: HashSet<&[u8]> = history
        .iter()
        .filter_map(|op| match &op.op {
            Op::Put { value } | Op::Cas { new: value, .. } => Some(value.as_bytes()),
            _ => None,
        })
        .collect();
    committed
        .iter()
        .flat_map(|b| b.events.iter().map(move |e| (b.revision, e)))
        .filter(|(_, e)| e.kind == EventKind::Put && !written.contains(e.kv.value.as_slice()))
        .map(|(revision, e)| {
            format!(
                "revision {revision}: {} = {}",
                String::from_utf8_lossy(&e.kv.key),
                String::from_utf8_lossy(&e.kv.value)
            )
        })
        .collect()
}

/// Runs every check; answers what failed, and prints a summary.
pub async fn problems(
    store: &StoreClient,
    recorder: &Recorder,
    watchers: Vec<Watcher>,
) -> Vec<String> {
    let history = recorder.history();
    let (committed, revision) = committed(store).await;
    let mut problems = Vec::new();

    let unexpected = recorder.unexpected.lock().expect("unexpected").clone();
    if !unexpected.is_empty() {
        problems.push(format!("errors no fault explains: {unexpected:#?}"));
    }
    let lost = lost_writes(&history, &committed);
    if !lost.is_empty() {
        problems.push(format!(
            "{} acknowledged writes lost: {:#?}",
            lost.len(),
            &lost[..lost.len().min(20)]
        ));
    }
    let phantoms = phantom_writes(&history, &committed);
    if !phantoms.is_empty() {
        problems.push(format!("values nobody wrote: {phantoms:#?}"));
    }
    let order = navarch_lincheck::check_revisions(&history);
    if !order.is_empty() {
        problems.push(format!("revisions against real time: {order:#?}"));
    }
    let started = std::time::Instant::now();
    let report = navarch_lincheck::check(&history, navarch_lincheck::DEFAULT_BUDGET);
    let checked_in = started.elapsed();
    for (key, why) in &report.violations {
        problems.push(format!("key {key} is not linearizable:\n{why}"));
    }
    if !report.gave_up.is_empty() {
        problems.push(format!("the checker gave up on keys {:?}", report.gave_up));
    }
    let mut delivered = Vec::new();
    for watcher in watchers {
        let name = watcher.name.clone();
        if let Some(why) = watcher.ended() {
            problems.push(format!("watch {name} ended: {why}"));
            continue;
        }
        match watcher.check(&committed, revision) {
            Ok(n) => delivered.push(format!("{name}: {n}")),
            Err(why) => problems.push(why),
        }
    }

    let count = |f: &dyn Fn(&Operation) -> bool| history.iter().filter(|op| f(op)).count();
    println!(
        "history: {} calls ({} acknowledged writes, {} reads answered, {} of unknown effect, {} refused); \
         {} committed revisions under the prefix, store at revision {revision}; \
         {} of {} keys not linearizable (checked in {checked_in:.2?}); watches delivered {}",
        history.len(),
        count(&|op| op.outcome().is_some_and(Outcome::wrote)),
        count(&|op| matches!(op.outcome(), Some(Outcome::Get(_)))),
        count(&|op| op.completion == Completion::Unknown),
        count(&|op| op.completion == Completion::Failed),
        committed.len(),
        report.violations.len(),
        report.keys,
        delivered.join(", "),
    );
    problems
}
