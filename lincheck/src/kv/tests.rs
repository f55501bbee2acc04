//! Tests of the key-value model and the whole-history checks, on small histories whose verdict is known.

use super::*;

fn put(client: usize, key: &str, value: &str, t: (u64, u64), rev: i64) -> Operation {
    let op = Op::Put {
        value: value.into(),
    };
    Operation::ok(client, key, op, t, Outcome::Put, rev)
}

fn get(client: usize, key: &str, seen: Option<&str>, t: (u64, u64), rev: i64) -> Operation {
    let outcome = Outcome::Get(seen.map(str::to_string));
    Operation::ok(client, key, Op::Get, t, outcome, rev)
}

fn cas(
    client: usize,
    key: &str,
    (expected, new): (Option<&str>, &str),
    t: (u64, u64),
    result: Option<(bool, i64)>,
) -> Operation {
    let op = Op::Cas {
        expected: expected.map(str::to_string),
        new: new.into(),
    };
    match result {
        Some((succeeded, rev)) => Operation::ok(client, key, op, t, Outcome::Cas(succeeded), rev),
        None => Operation::unknown(client, key, op, t.0),
    }
}

fn verdict(history: &[Operation]) -> Report {
    check(history, DEFAULT_BUDGET)
}

#[test]
fn keys_are_checked_separately() {
    let history = [
        put(0, "a", "a1", (0, 10), 2),
        put(1, "b", "b1", (0, 10), 3),
        get(2, "a", Some("a1"), (20, 30), 3),
        get(2, "b", Some("b1"), (40, 50), 3),
        get(3, "c", None, (40, 50), 3),
    ];
    let report = verdict(&history);
    assert!(report.is_linearizable(), "{report:?}");
    assert_eq!((report.keys, report.operations, report.unknown), (3, 5, 0));
}

#[test]
fn a_lost_acknowledged_write_is_caught() {
    // The put was acknowledged, yet a read invoked afterwards sees nothing.
    let history = [
        put(0, "a", "a1", (0, 10), 2),
        get(1, "a", None, (20, 30), 2),
    ];
    let report = verdict(&history);
    assert_eq!(report.violations.len(), 1, "{report:?}");
    let (key, explanation) = &report.violations[0];
    assert_eq!(key, "a");
    assert!(explanation.contains("could not place"), "{explanation}");
}

#[test]
fn compare_and_swap_must_agree_with_the_value() {
    // Two CAS from absent: only one may succeed.
    let both_won = [
        cas(0, "k", (None, "x"), (0, 10), Some((true, 2))),
        cas(1, "k", (None, "y"), (0, 10), Some((true, 3))),
    ];
    assert!(!verdict(&both_won).is_linearizable());
    let one_won = [
        cas(0, "k", (None, "x"), (0, 10), Some((true, 2))),
        cas(1, "k", (None, "y"), (0, 10), Some((false, 2))),
        get(2, "k", Some("x"), (20, 30), 2),
    ];
    assert!(verdict(&one_won).is_linearizable());
    // A CAS that failed although the value matched and nobody else wrote.
    let wrongly_failed = [
        put(0, "k", "x", (0, 10), 2),
        cas(1, "k", (Some("x"), "y"), (20, 30), Some((false, 2))),
    ];
    assert!(!verdict(&wrongly_failed).is_linearizable());
}

#[test]
fn a_cas_of_unknown_effect_may_have_applied_or_not() {
    let history = |seen: &str| {
        [
            put(0, "k", "x", (0, 10), 2),
            cas(1, "k", (Some("x"), "y"), (20, 30), None),
            get(2, "k", Some(seen), (100, 110), 3),
        ]
    };
    assert!(verdict(&history("x")).is_linearizable());
    assert!(verdict(&history("y")).is_linearizable());
    assert!(!verdict(&history("z")).is_linearizable());
    let report = verdict(&history("y"));
    assert_eq!(report.unknown, 1);
}

#[test]
fn failed_operations_and_unanswered_reads_have_no_effect() {
    let mut refused = put(0, "k", "x", (0, 10), 0);
    refused.completion = Completion::Failed;
    let mut unanswered = get(1, "k", Some("garbage"), (0, 10), 0);
    unanswered.completion = Completion::Unknown;
    let history = [refused, unanswered, get(2, "k", None, (20, 30), 1)];
    let report = verdict(&history);
    assert!(report.is_linearizable(), "{report:?}");
    assert_eq!(report.operations, 1);
    // A refused write that shows up anyway is a violation.
    let mut refused = put(0, "k", "x", (0, 10), 0);
    refused.completion = Completion::Failed;
    assert!(!verdict(&[refused, get(2, "k", Some("x"), (20, 30), 2)]).is_linearizable());
}

#[test]
fn deletes_report_whether_the_key_existed() {
    let del = |deleted, t, rev| Operation::ok(0, "k", Op::Delete, t, Outcome::Delete(deleted), rev);
    let history = [
        put(0, "k", "x", (0, 10), 2),
        del(true, (20, 30), 3),
        del(false, (40, 50), 3),
        get(1, "k", None, (60, 70), 3),
    ];
    assert!(verdict(&history).is_linearizable());
    let history = [del(true, (0, 10), 2)];
    assert!(!verdict(&history).is_linearizable());
}

#[test]
fn revisions_must_follow_real_time() {
    let fine = [
        put(0, "a", "1", (0, 10), 2),
        put(1, "b", "1", (5, 15), 3),
        get(2, "a", Some("1"), (20, 30), 3),
        put(3, "a", "2", (40, 50), 4),
    ];
    assert_eq!(check_revisions(&fine), Vec::<String>::new());
    // A write acknowledged at a revision below one already answered before it began: the order went backwards.
    let backwards = [put(0, "a", "1", (0, 10), 5), put(1, "b", "1", (20, 30), 4)];
    assert_eq!(check_revisions(&backwards).len(), 1);
    // A read that saw revision 5 while a later write commits at 5 too.
    let same = [get(0, "a", None, (0, 10), 5), put(1, "b", "1", (20, 30), 5)];
    assert_eq!(check_revisions(&same).len(), 1);
    // Two writes at one revision.
    let twice = [put(0, "a", "1", (0, 10), 2), put(1, "b", "1", (0, 10), 2)];
    assert!(check_revisions(&twice)[0].contains("two writes"));
    // Reads may share a revision; a later read never sees an older one.
    let stale = [
        get(0, "a", None, (0, 10), 7),
        get(1, "a", None, (20, 30), 6),
    ];
    assert_eq!(check_revisions(&stale).len(), 1);
}

/// A small deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Histories of a simulated linearizable store: each call takes effect at a random point inside its interval, in
/// the order of those points, on a real map. Some writes lose their answer (unknown), some never apply at all.
fn simulated(
    seed: u64,
    clients: usize,
    per_client: usize,
    keys: u64,
    lost_one_in: u64,
) -> Vec<Operation> {
    let mut rng = Rng(seed | 1);
    // (effect time, op index)
    let mut calls: Vec<(u64, Operation, bool)> = Vec::new();
    for client in 0..clients {
        let mut now = rng.below(20);
        for i in 0..per_client {
            let key = format!("k{}", rng.below(keys));
            let invoked = now;
            let completed = invoked + 1 + rng.below(30);
            let op = match rng.below(4) {
                0 => Op::Get,
                1 => Op::Delete,
                2 => Op::Cas {
                    expected: (rng.below(2) == 0)
                        .then(|| format!("v{client}-{}", i.saturating_sub(1))),
                    new: format!("v{client}-{i}"),
                },
                _ => Op::Put {
                    value: format!("v{client}-{i}"),
                },
            };
            let applies = rng.below(lost_one_in) != 0 || op == Op::Get;
            let mut record = Operation::unknown(client, &key, op, invoked);
            record.completed = completed;
            calls.push((
                invoked + rng.below(completed - invoked + 1),
                record,
                applies,
            ));
            now = completed + rng.below(10);
        }
    }
    calls.sort_by_key(|(at, _, _)| *at);
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    let mut revision = 1;
    let mut history = Vec::new();
    for (_, mut record, applies) in calls {
        if !applies {
            history.push(record); // lost on the way: unknown, no effect
            continue;
        }
        let current = map.get(&record.key).cloned();
        let outcome = match &record.op {
            Op::Get => Outcome::Get(current),
            Op::Put { value } => {
                map.insert(record.key.clone(), value.clone());
                Outcome::Put
            }
            Op::Delete => Outcome::Delete(map.remove(&record.key).is_some()),
            Op::Cas { expected, new } => {
                let holds = current == *expected;
                if holds {
                    map.insert(record.key.clone(), new.clone());
                }
                Outcome::Cas(holds)
            }
        };
        if outcome.wrote() {
            revision += 1;
        }
        // Now and then the answer of an applied write is lost too.
        if record.op == Op::Get || rng.below(lost_one_in) != 0 {
            record.completion = Completion::Ok { outcome, revision };
        }
        history.push(record);
    }
    history
}

#[test]
fn simulated_linearizable_histories_pass_and_corrupted_ones_fail() {
    for seed in 1..=40 {
        let history = simulated(seed, 6, 40, 3, 10);
        let report = verdict(&history);
        assert!(report.is_linearizable(), "seed {seed}: {report:?}");
        assert_eq!(
            check_revisions(&history),
            Vec::<String>::new(),
            "seed {seed}"
        );

        // A read that saw a value nobody wrote.
        let mut corrupted = history.clone();
        let read = corrupted
            .iter_mut()
            .find(|op| matches!(op.outcome(), Some(Outcome::Get(_))))
            .expect("a read");
        read.completion = Completion::Ok {
            outcome: Outcome::Get(Some("never written".into())),
            revision: 1,
        };
        assert!(!verdict(&corrupted).is_linearizable(), "seed {seed}");
    }
}

#[test]
fn busy_histories_are_checked_within_the_budget() {
    // Sixteen clients on one key, 100 calls each, a few of unknown effect.
    let history = simulated(7, 16, 100, 1, 200);
    let report = verdict(&history);
    assert!(report.is_linearizable(), "{report:?}");
    assert!(report.unknown > 5, "{report:?}");
    // Many more calls of unknown effect, spread over keys as a fault test spreads them.
    let history = simulated(8, 16, 200, 16, 30);
    let report = verdict(&history);
    assert!(report.is_linearizable(), "{report:?}");
    assert!(report.unknown > 100, "{report:?}");
}
