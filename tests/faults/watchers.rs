//! Watchers that record every revision a watch delivers, to compare with the committed history afterwards.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use navarch_bus::store::{prefix_end, ChangeBatch, Event, StoreClient, WatchEvent};
use tokio::task::JoinHandle;

/// What a watch delivered: each revision with its changes, in delivery order.
pub type Delivered = Vec<(i64, Vec<Event>)>;

/// One watch on the load's prefix and what it delivered.
pub struct Watcher {
    /// For messages.
    pub name: String,
    /// The watch delivers every change after this revision.
    pub after: i64,
    seen: Arc<Mutex<Delivered>>,
    /// Every revision up to this one has been delivered (a change or a progress bookmark).
    reached: Arc<AtomicI64>,
    /// Why the watch ended, if it did.
    ended: Arc<Mutex<Option<String>>>,
    task: JoinHandle<()>,
}

impl Watcher {
    /// Watches `prefix` from `from` (0: from now on).
    pub async fn start(store: &StoreClient, name: &str, prefix: &str, from: i64) -> Watcher {
        let mut stream = store
            .watch(prefix.as_bytes(), &prefix_end(prefix.as_bytes()), from)
            .await
            .unwrap_or_else(|e| panic!("watch {name}: {e}"));
        let after = stream.start_revision();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reached = Arc::new(AtomicI64::new(after));
        let ended = Arc::new(Mutex::new(None));
        let (s, r, e) = (seen.clone(), reached.clone(), ended.clone());
        let task = tokio::spawn(async move {
            loop {
                match stream.next().await {
                    Some(Ok(WatchEvent::Changes { revision, events })) => {
                        s.lock().expect("seen").push((revision, events));
                        r.fetch_max(revision, Ordering::Relaxed);
                    }
                    Some(Ok(WatchEvent::Progress { revision })) => {
                        r.fetch_max(revision, Ordering::Relaxed);
                    }
                    Some(Err(error)) => {
                        *e.lock().expect("ended") = Some(error.to_string());
                        return;
                    }
                    None => {
                        *e.lock().expect("ended") = Some("the watch stopped".into());
                        return;
                    }
                }
            }
        });
        Watcher {
            name: name.to_string(),
            after,
            seen,
            reached,
            ended,
            task,
        }
    }

    /// The highest revision up to which everything was delivered.
    pub fn reached(&self) -> i64 {
        self.reached.load(Ordering::Relaxed)
    }

    /// Why the watch ended early, if it did.
    pub fn ended(&self) -> Option<String> {
        self.ended.lock().expect("ended").clone()
    }

    /// The last revision delivered with changes (or where the watch began).
    pub fn last_change(&self) -> i64 {
        self.seen
            .lock()
            .expect("seen")
            .last()
            .map_or(self.after, |(r, _)| *r)
    }

    /// Stops the watch; returns what it delivered.
    pub fn stop(self) -> Delivered {
        self.task.abort();
        self.seen.lock().expect("seen").clone()
    }

    /// Compares what the watch delivered with `history` (see [`compare`]).
    pub fn check(self, history: &[ChangeBatch], upto: i64) -> Result<usize, String> {
        let (name, after) = (self.name.clone(), self.after);
        compare(&name, after, &self.stop(), history, upto)
    }
}

/// Compares what a watch `name` delivered after revision `after` with `history` (every committed change of its
/// range, ascending): it must be exactly the part after `after`, up to `upto`, revision by revision and event by
/// event. Answers how many revisions matched.
pub fn compare(
    name: &str,
    after: i64,
    seen: &[(i64, Vec<Event>)],
    history: &[ChangeBatch],
    upto: i64,
) -> Result<usize, String> {
    let expected: Vec<(i64, &Vec<Event>)> = history
        .iter()
        .filter(|b| b.revision > after && b.revision <= upto)
        .map(|b| (b.revision, &b.events))
        .collect();
    for (i, want) in expected.iter().enumerate() {
        match seen.get(i) {
                None => {
                    return Err(format!(
                        "watch {name} (after {after}) stopped at its change #{i}; revision {} and {} more never came",
                        want.0,
                        expected.len() - i - 1
                    ))
                }
                Some((revision, _)) if *revision != want.0 => {
                    let order = if *revision < want.0 { "a revision twice or out of order" } else { "a gap" };
                    return Err(format!(
                        "watch {name}: change #{i} is revision {revision}, the history has {}: {order}",
                        want.0
                    ));
                }
                Some((revision, events)) if events != want.1 => {
                    return Err(format!(
                        "watch {name}: revision {revision} delivered {events:?}, the history has {:?}",
                        want.1
                    ))
                }
                Some(_) => {}
            }
    }
    match seen.get(expected.len()) {
            Some((revision, _)) if *revision <= upto => Err(format!(
                "watch {name}: delivered revision {revision}, which the history does not have in its range"
            )),
            _ => Ok(expected.len()),
        }
}
