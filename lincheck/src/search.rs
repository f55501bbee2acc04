//! The search for one partition of a history: Wing & Gong's algorithm with Lowe's memoization of (linearized set,
//! state), as Porcupine runs it. Operations without a completion time may take effect at any point after they were
//! invoked, including after everything else (which is the same as never, when nothing observes the store later).

use std::collections::{BTreeSet, HashSet};
use std::hash::Hash;

/// A sequential specification: a state and how each operation, with the outcome it recorded, changes it.
pub trait Model {
    /// The state (for a key-value partition: the key's value).
    type State: Clone + Eq + Hash;
    /// An operation with its recorded outcome.
    type Operation;
    /// The state before any operation.
    fn init(&self) -> Self::State;
    /// The state after `op` takes effect in `state`, or `None` if `op` could not have answered what it recorded
    /// there.
    fn step(&self, state: &Self::State, op: &Self::Operation) -> Option<Self::State>;
    /// Whether `op` never changes the state, wherever it takes effect (an answered read). The search places such
    /// an operation as soon as it matches, without trying alternatives: that keeps busy histories tractable.
    fn is_read(&self, op: &Self::Operation) -> bool {
        let _ = op;
        false
    }
}

/// One operation to place: when it was invoked and, if it answered, when.
#[derive(Debug, Clone)]
pub struct Timed<O> {
    /// The operation.
    pub op: O,
    /// Invocation time.
    pub invoked: u64,
    /// Completion time; `None`: it may take effect at any time after `invoked`.
    pub completed: Option<u64>,
}

/// What the search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A sequential order exists; these are the operations' indices in that order.
    Linearizable(Vec<usize>),
    /// No order exists. `longest` is the longest order found that respects real time and the model: the
    /// operation after it in real time is where the history stops making sense.
    Violation {
        /// Indices of the longest valid prefix.
        longest: Vec<usize>,
    },
    /// The search took more than the budget of steps; nothing is known.
    GaveUp,
}

/// A set of operation indices.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize, on: bool) {
        if let Some(word) = self.0.get_mut(i / 64) {
            let bit = 1u64 << (i % 64);
            if on {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }
}

/// The operations not placed yet, by invocation and by completion.
struct Pending {
    by_invocation: BTreeSet<(u64, usize)>,
    by_completion: BTreeSet<(u64, usize)>,
}

impl Pending {
    fn new<O>(ops: &[Timed<O>]) -> Self {
        let mut pending = Pending {
            by_invocation: BTreeSet::new(),
            by_completion: BTreeSet::new(),
        };
        for i in 0..ops.len() {
            pending.insert(ops, i);
        }
        pending
    }

    fn insert<O>(&mut self, ops: &[Timed<O>], i: usize) {
        if let Some(t) = ops.get(i) {
            self.by_invocation.insert((t.invoked, i));
            if let Some(c) = t.completed {
                self.by_completion.insert((c, i));
            }
        }
    }

    fn remove<O>(&mut self, ops: &[Timed<O>], i: usize) {
        if let Some(t) = ops.get(i) {
            self.by_invocation.remove(&(t.invoked, i));
            if let Some(c) = t.completed {
                self.by_completion.remove(&(c, i));
            }
        }
    }

    /// The operations that may take effect next: those invoked before the earliest pending completion (touching
    /// intervals count as concurrent). Answered ones come first, earliest completion first, then those of
    /// unknown effect: placing an unknown write only when something needs it keeps the search small.
    fn candidates<O>(&self, ops: &[Timed<O>]) -> Vec<usize> {
        let horizon = self.by_completion.first().map_or(u64::MAX, |(c, _)| *c);
        let mut answered: Vec<(u64, usize)> = Vec::new();
        let mut unknown: Vec<usize> = Vec::new();
        for (invoked, i) in &self.by_invocation {
            if *invoked > horizon {
                break;
            }
            match ops.get(*i).and_then(|t| t.completed) {
                Some(c) => answered.push((c, *i)),
                None => unknown.push(*i),
            }
        }
        answered.sort_unstable();
        answered
            .into_iter()
            .map(|(_, i)| i)
            .chain(unknown)
            .collect()
    }
}

/// A point of the search: the operations that could go next there, and how many were tried.
struct Frame {
    candidates: Vec<usize>,
    tried: usize,
}

/// Looks for an order of `ops` that respects real time (an operation that completed before another was invoked
/// comes first) and in which every operation answers what it recorded, taking at most `budget` steps.
pub fn check<M: Model>(model: &M, ops: &[Timed<M::Operation>], budget: u64) -> Verdict {
    let mut pending = Pending::new(ops);
    let mut placed = Bits::new(ops.len());
    let mut seen: HashSet<(Bits, M::State)> = HashSet::new();
    let mut state = model.init();
    // The placed operations, in order, each with the state before it.
    let mut path: Vec<(usize, M::State)> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut frames = vec![Frame {
        candidates: pending.candidates(ops),
        tried: 0,
    }];
    let mut steps = 0u64;
    while let Some(frame) = frames.last_mut() {
        if path.len() == ops.len() {
            return Verdict::Linearizable(path.into_iter().map(|(i, _)| i).collect());
        }
        steps += 1;
        if steps > budget {
            return Verdict::GaveUp;
        }
        let Some(&i) = frame.candidates.get(frame.tried) else {
            // Nothing can go next here: undo the last placement.
            frames.pop();
            let Some((i, before)) = path.pop() else { break };
            placed.set(i, false);
            pending.insert(ops, i);
            state = before;
            continue;
        };
        frame.tried += 1;
        let Some(next) = ops.get(i).and_then(|t| model.step(&state, &t.op)) else {
            continue;
        };
        if next == state && ops.get(i).is_some_and(|t| model.is_read(&t.op)) {
            // A read that may go next and matches the state can always go next: moving it to the front of any
            // order that works from here keeps that order valid. So if going on from here fails, trying the other
            // candidates of this frame would fail too.
            frame.tried = frame.candidates.len();
        }
        placed.set(i, true);
        if !seen.insert((placed.clone(), next.clone())) {
            // This set of operations has led to this state before, and nothing worked from there.
            placed.set(i, false);
            continue;
        }
        pending.remove(ops, i);
        path.push((i, std::mem::replace(&mut state, next)));
        if path.len() > longest.len() {
            longest = path.iter().map(|(i, _)| *i).collect();
        }
        frames.push(Frame {
            candidates: pending.candidates(ops),
            tried: 0,
        });
    }
    Verdict::Violation { longest }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register: write(v) or read() == v.
    struct Register;

    #[derive(Debug)]
    enum RegOp {
        Write(u8),
        Read(u8),
    }

    impl Model for Register {
        type State = u8;
        type Operation = RegOp;
        fn init(&self) -> u8 {
            0
        }
        fn step(&self, state: &u8, op: &RegOp) -> Option<u8> {
            match op {
                RegOp::Write(v) => Some(*v),
                RegOp::Read(v) => (v == state).then_some(*state),
            }
        }
        fn is_read(&self, op: &RegOp) -> bool {
            matches!(op, RegOp::Read(_))
        }
    }

    fn t(op: RegOp, invoked: u64, completed: u64) -> Timed<RegOp> {
        Timed {
            op,
            invoked,
            completed: Some(completed),
        }
    }

    #[test]
    fn an_empty_history_is_linearizable() {
        assert_eq!(check(&Register, &[], 100), Verdict::Linearizable(vec![]));
    }

    #[test]
    fn sequential_history_follows_real_time() {
        let ops = [t(RegOp::Write(1), 0, 1), t(RegOp::Read(1), 2, 3)];
        assert_eq!(
            check(&Register, &ops, 100),
            Verdict::Linearizable(vec![0, 1])
        );
        // A read that completed before the write began cannot see it.
        let ops = [t(RegOp::Read(1), 0, 1), t(RegOp::Write(1), 2, 3)];
        assert!(matches!(
            check(&Register, &ops, 100),
            Verdict::Violation { .. }
        ));
    }

    #[test]
    fn concurrent_operations_may_take_either_order() {
        // The read overlaps the write: it may see the old or the new value.
        for seen in [0, 1] {
            let ops = [t(RegOp::Write(1), 0, 10), t(RegOp::Read(seen), 5, 6)];
            assert!(matches!(
                check(&Register, &ops, 100),
                Verdict::Linearizable(_)
            ));
        }
    }

    #[test]
    fn a_stale_read_after_a_newer_read_is_a_violation() {
        // Write 1 runs long; one reader sees 1, a later reader (invoked after the first returned) sees 0 again.
        let ops = [
            t(RegOp::Write(1), 0, 100),
            t(RegOp::Read(1), 10, 20),
            t(RegOp::Read(0), 30, 40),
        ];
        let Verdict::Violation { longest } = check(&Register, &ops, 1000) else {
            panic!("expected a violation")
        };
        // The best the search could do: place the write and the first read, then the stale read fails.
        assert_eq!(longest.len(), 2);
    }

    #[test]
    fn an_operation_without_completion_may_apply_late_or_never() {
        let unknown = |v| Timed {
            op: RegOp::Write(v),
            invoked: 0,
            completed: None,
        };
        // Seen long after: it applied late.
        let ops = [
            unknown(7),
            t(RegOp::Read(0), 10, 20),
            t(RegOp::Read(7), 30, 40),
        ];
        assert!(matches!(
            check(&Register, &ops, 1000),
            Verdict::Linearizable(_)
        ));
        // Never seen: it may never have applied.
        let ops = [
            unknown(7),
            t(RegOp::Read(0), 10, 20),
            t(RegOp::Read(0), 30, 40),
        ];
        assert!(matches!(
            check(&Register, &ops, 1000),
            Verdict::Linearizable(_)
        ));
        // But once seen, it cannot be unseen.
        let ops = [
            unknown(7),
            t(RegOp::Read(7), 10, 20),
            t(RegOp::Read(0), 30, 40),
        ];
        assert!(matches!(
            check(&Register, &ops, 1000),
            Verdict::Violation { .. }
        ));
        // Nor applied before it was invoked.
        let late = Timed {
            op: RegOp::Write(7),
            invoked: 50,
            completed: None,
        };
        let ops = [t(RegOp::Read(7), 10, 20), late];
        assert!(matches!(
            check(&Register, &ops, 1000),
            Verdict::Violation { .. }
        ));
    }

    #[test]
    fn backtracking_finds_the_one_order_that_works() {
        // Three concurrent writes, then reads that force the order 3, 1, 2 (last write wins: 2).
        let ops = [
            t(RegOp::Write(1), 0, 50),
            t(RegOp::Write(2), 0, 50),
            t(RegOp::Write(3), 0, 50),
            t(RegOp::Read(3), 1, 2),
            t(RegOp::Read(1), 3, 4),
            t(RegOp::Read(2), 60, 70),
        ];
        let Verdict::Linearizable(order) = check(&Register, &ops, 10_000) else {
            panic!("expected an order")
        };
        assert_eq!(order, vec![2, 3, 0, 4, 1, 5]);
    }

    #[test]
    fn the_budget_bounds_the_search() {
        // Many concurrent writes and an impossible read: the search must try many orders before it knows.
        let mut ops: Vec<Timed<RegOp>> = (1..=12).map(|v| t(RegOp::Write(v), 0, 100)).collect();
        ops.push(t(RegOp::Read(99), 200, 300));
        assert_eq!(check(&Register, &ops, 50), Verdict::GaveUp);
        assert!(matches!(
            check(&Register, &ops, 10_000_000),
            Verdict::Violation { .. }
        ));
    }
}
