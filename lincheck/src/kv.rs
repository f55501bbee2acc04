//! The key-value model (put, get, compare-and-swap, delete on one key) and the check of a whole history: one
//! search per key (a key-value store is linearizable iff each key is: Herlihy & Wing's locality).

use std::collections::{BTreeMap, HashSet};

use crate::history::{Completion, Op, Operation, Outcome};
use crate::search::{self, Model, Timed, Verdict};

/// One key: its value, `None` when absent.
pub struct Key;

impl Model for Key {
    type State = Option<String>;
    type Operation = Operation;

    fn init(&self) -> Option<String> {
        None
    }

    fn step(&self, state: &Option<String>, op: &Operation) -> Option<Option<String>> {
        let answered = op.outcome();
        match (&op.op, answered) {
            (Op::Put { value }, None | Some(Outcome::Put)) => Some(Some(value.clone())),
            (Op::Get, Some(Outcome::Get(seen))) => (seen == state).then(|| state.clone()),
            (Op::Cas { expected, new }, None) => Some(if state == expected {
                Some(new.clone())
            } else {
                state.clone()
            }),
            (Op::Cas { expected, new }, Some(Outcome::Cas(true))) => {
                (state == expected).then(|| Some(new.clone()))
            }
            (Op::Cas { expected, .. }, Some(Outcome::Cas(false))) => {
                (state != expected).then(|| state.clone())
            }
            (Op::Delete, None) => Some(None),
            (Op::Delete, Some(Outcome::Delete(deleted))) => {
                (*deleted == state.is_some()).then_some(None)
            }
            // A read with no answer has no effect and was dropped; an answer of the wrong kind is a recording bug.
            _ => None,
        }
    }

    fn is_read(&self, op: &Operation) -> bool {
        matches!(
            op.outcome(),
            Some(Outcome::Get(_) | Outcome::Cas(false) | Outcome::Delete(false))
        )
    }
}

/// The check of a history, key by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Keys checked.
    pub keys: usize,
    /// Operations that took part (answered ones, and writes of unknown effect).
    pub operations: usize,
    /// Operations of unknown effect among them.
    pub unknown: usize,
    /// Keys whose history is not linearizable, each with an explanation.
    pub violations: Vec<(String, String)>,
    /// Keys whose search ran out of budget.
    pub gave_up: Vec<String>,
}

impl Report {
    /// Whether every key was checked and found linearizable.
    pub fn is_linearizable(&self) -> bool {
        self.violations.is_empty() && self.gave_up.is_empty()
    }
}

/// Steps allowed per key before the search gives up (a few seconds of work).
pub const DEFAULT_BUDGET: u64 = 20_000_000;

/// Checks every key of `history`. Refused operations had no effect and are left out, and so are reads without an
/// answer; writes without an answer may take effect at any time after their invocation, or never.
pub fn check(history: &[Operation], budget: u64) -> Report {
    let mut keys: BTreeMap<&str, Vec<Timed<Operation>>> = BTreeMap::new();
    let mut report = Report {
        keys: 0,
        operations: 0,
        unknown: 0,
        violations: Vec::new(),
        gave_up: Vec::new(),
    };
    for op in history {
        let completed = match &op.completion {
            Completion::Ok { .. } => Some(op.completed),
            Completion::Failed => continue,
            Completion::Unknown if op.op == Op::Get => continue,
            Completion::Unknown => {
                report.unknown += 1;
                None
            }
        };
        report.operations += 1;
        keys.entry(&op.key).or_default().push(Timed {
            op: op.clone(),
            invoked: op.invoked,
            completed,
        });
    }
    report.keys = keys.len();
    for (key, ops) in keys {
        // Writes of unknown effect whose value nobody saw may well never have applied: try without them first.
        // Success proves the whole history linearizable (they go last, where they change nothing anyone saw);
        // only failure needs the much larger search that places them anywhere.
        let seen = observed(&ops);
        let likely: Vec<Timed<Operation>> = ops
            .iter()
            .filter(|t| t.completed.is_some() || written(&t.op.op).is_none_or(|v| seen.contains(v)))
            .cloned()
            .collect();
        let quick = (likely.len() < ops.len()).then(|| search::check(&Key, &likely, budget));
        let verdict = match quick {
            Some(Verdict::Linearizable(_)) => continue,
            _ => search::check(&Key, &ops, budget),
        };
        match verdict {
            Verdict::Linearizable(_) => {}
            Verdict::GaveUp => report.gave_up.push(key.to_string()),
            Verdict::Violation { longest } => report
                .violations
                .push((key.to_string(), explain(&ops, &longest))),
        }
    }
    report
}

/// The value an operation writes, if it writes one.
fn written(op: &Op) -> Option<&String> {
    match op {
        Op::Put { value } => Some(value),
        Op::Cas { new, .. } => Some(new),
        Op::Get | Op::Delete => None,
    }
}

/// Values some operation depends on: read by a get or expected by a compare-and-swap.
fn observed(ops: &[Timed<Operation>]) -> HashSet<&String> {
    let mut seen = HashSet::new();
    for t in ops {
        match (&t.op.op, t.op.outcome()) {
            (_, Some(Outcome::Get(Some(v)))) => {
                seen.insert(v);
            }
            (
                Op::Cas {
                    expected: Some(v), ..
                },
                _,
            ) => {
                seen.insert(v);
            }
            _ => {}
        }
    }
    seen
}

/// The longest valid order, then the operations that could not follow it, by invocation time.
fn explain(ops: &[Timed<Operation>], longest: &[usize]) -> String {
    let mut text = String::from("longest linearizable prefix:\n");
    for i in longest {
        if let Some(t) = ops.get(*i) {
            text.push_str(&format!("  {}\n", t.op));
        }
    }
    let mut rest: Vec<&Timed<Operation>> = ops
        .iter()
        .enumerate()
        .filter(|(i, _)| !longest.contains(i))
        .map(|(_, t)| t)
        .collect();
    rest.sort_by_key(|t| t.invoked);
    text.push_str("could not place:\n");
    for t in rest.iter().take(20) {
        text.push_str(&format!("  {}\n", t.op));
    }
    if rest.len() > 20 {
        text.push_str(&format!("  ... and {} more\n", rest.len() - 20));
    }
    text
}

/// Checks the store's global revisions against real time, across keys: an operation that completed before another
/// was invoked answered a revision no higher (strictly lower when the later one wrote), and no two writes share a
/// revision. Returns the first few contradictions.
pub fn check_revisions(history: &[Operation]) -> Vec<String> {
    let mut answered: Vec<(&Operation, i64, bool)> = history
        .iter()
        .filter_map(|op| match &op.completion {
            Completion::Ok { outcome, revision } => Some((op, *revision, outcome.wrote())),
            _ => None,
        })
        .collect();
    let mut problems = Vec::new();
    let mut writes: BTreeMap<i64, &Operation> = BTreeMap::new();
    for (op, revision, wrote) in &answered {
        if *wrote {
            if let Some(other) = writes.insert(*revision, op) {
                problems.push(format!(
                    "two writes at revision {revision}: {other} and {op}"
                ));
            }
        }
    }
    // For each operation, the highest revision answered by any operation that completed before it was invoked.
    answered.sort_by_key(|(op, _, _)| op.completed);
    let mut highest_before: Vec<(u64, i64, &Operation)> = Vec::with_capacity(answered.len());
    for (op, revision, _) in &answered {
        let (best, by) = match highest_before.last() {
            Some((_, best, by)) if *best >= *revision => (*best, *by),
            _ => (*revision, *op),
        };
        highest_before.push((op.completed, best, by));
    }
    for (op, revision, wrote) in &answered {
        let earlier = highest_before.partition_point(|(completed, _, _)| *completed < op.invoked);
        let Some((_, best, by)) = earlier.checked_sub(1).and_then(|i| highest_before.get(i)) else {
            continue;
        };
        if *revision < *best || (*wrote && *revision == *best) {
            problems.push(format!(
                "{op} answered revision {revision}, but {by} had answered {best} before it was invoked"
            ));
        }
        if problems.len() >= 10 {
            break;
        }
    }
    problems
}

#[cfg(test)]
mod tests;
