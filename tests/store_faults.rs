//! The store's guarantees under faults: three `navarch store` processes on a real nats-server, clients doing puts,
//! compare-and-swap transactions, linearizable gets and deletes, and watchers, while members are killed with
//! SIGKILL, cut off the network, or kept down while many writes land. After each fault: no acknowledged write is
//! lost, the recorded history is linearizable (calls that timed out count as possibly applied, at any time after
//! their invocation), revisions follow real time, and every watch delivered exactly the committed sequence.
//!
//! The harness is in `tests/faults/`; the seed is printed at the start of each test, `NAVARCH_FAULT_SEED` replays
//! it, `NAVARCH_FAULT_ROUNDS` repeats each fault for a soak.

#![allow(clippy::disallowed_methods)]

mod faults;
mod util;

use std::time::Duration;

use faults::cluster::{Cluster, PATIENCE};
use faults::load::{Load, Mix, PREFIX};
use faults::scene::{retry, Scene, CLIENTS, KEYS};
use faults::watchers::Watcher;
use faults::{eventually, rounds, verify};
use navarch_bus::store::{MemberAddRequest, StoreClient};

/// etcd's promise that the issue names: kill -9 all three members in the middle of a write load, restart them:
/// every acknowledged write is there and the revision never goes backwards.
#[test]
fn kill_9_all_members_mid_load_then_restart() {
    faults::run(
        "kill_9_all_members_mid_load_then_restart",
        |mut rng| async move {
            let mut scene = Scene::start(&mut rng, Mix::MIXED).await;
            for round in 0..rounds() {
                scene.writes(rng.between(200, 600)).await;
                if round == 0 {
                    // A watch resuming from a past revision, started under load.
                    let from = rng.between(1, scene.highest_revision().max(1) as u64) as i64;
                    let watcher = Watcher::start(&scene.store, "from-past", PREFIX, from).await;
                    scene.watchers.push(watcher);
                }
                let acknowledged = scene.highest_revision();
                scene.cluster.kill_all();
                // The clients keep calling into the void for a while.
                tokio::time::sleep(Duration::from_millis(rng.between(100, 1000))).await;
                for id in scene.cluster.ids() {
                    scene.cluster.start_member(id);
                }
                let leader = scene.cluster.leader().await;
                let revision = scene.revision().await;
                println!("round {round}: killed all at revision >= {acknowledged}, restarted at {revision}, leader {leader}");
                assert!(
                    revision >= acknowledged,
                    "the revision went back from {acknowledged} to {revision} across kill -9"
                );
                scene.writes(200).await;
            }
            scene.finish().await;
        },
    );
}

/// The leader is killed with SIGKILL under load: the others elect a new leader and go on; the old one restarts
/// on its data directory and catches up.
#[test]
fn leader_killed_under_load() {
    faults::run("leader_killed_under_load", |mut rng| async move {
        let mut scene = Scene::start(&mut rng, Mix::MIXED).await;
        for round in 0..rounds() {
            scene.writes(rng.between(200, 500)).await;
            let old = scene.cluster.leader().await;
            scene.cluster.kill(old);
            scene.writes(200).await;
            let new = scene.cluster.leader().await;
            assert_ne!(new, old, "a killed member cannot lead");
            tokio::time::sleep(Duration::from_millis(rng.between(0, 1000))).await;
            scene.cluster.start_member(old);
            let revision = scene.cluster.caught_up(old).await;
            println!("round {round}: killed leader {old}; {new} took over; {old} back and caught up to {revision}");
            scene.writes(100).await;
        }
        scene.finish().await;
    });
}

/// The leader is cut off from the others (moved to a NATS server of its own, where two clients still reach it):
/// the majority elects a new leader and commits; nothing sent to the old leader is acknowledged, no read is served
/// there; after the partition heals the old leader follows the new one.
#[test]
fn leader_partitioned_from_the_others() {
    faults::run("leader_partitioned_from_the_others", |mut rng| async move {
        let mut scene = Scene::start(&mut rng, Mix::MIXED).await;
        for round in 0..rounds() {
            scene.writes(rng.between(200, 500)).await;
            let old = scene.cluster.leader().await;
            let old_term = scene
                .cluster
                .status(old)
                .await
                .map_or(0, |s| s.header.raft_term);
            scene.cluster.partition(old);
            let url = scene.cluster.minority_url().expect("minority server");
            let minority_bus = navarch_bus::Bus::nats(&url, faults::cluster::CLUSTER, "minority")
                .await
                .expect("minority bus");
            let minority =
                StoreClient::new(minority_bus.clone()).with_timeout(Duration::from_secs(6));
            let first = 100 + 10 * round as usize;
            let minority_load = Load::start(
                &minority,
                &scene.recorder,
                &mut rng,
                (first, 2),
                KEYS,
                Mix::MIXED,
            );

            scene.writes(300).await;
            let new = scene.cluster.leader().await;
            assert_ne!(new, old, "the majority elected a leader of its own");
            let cut_off = Cluster::status_on(&minority_bus, old).await;
            minority_load.stop().await;
            let answered: Vec<String> = scene
                .recorder
                .history()
                .iter()
                .filter(|op| (first..first + 2).contains(&op.client) && op.outcome().is_some())
                .map(|op| op.to_string())
                .collect();
            assert!(
                answered.is_empty(),
                "the cut-off leader answered {} calls: {answered:#?}",
                answered.len()
            );
            let tried = scene
                .recorder
                .history()
                .iter()
                .filter(|op| (first..first + 2).contains(&op.client))
                .count();

            scene.cluster.heal(old);
            let rejoined = eventually(
                &format!("member {old} to follow {new}"),
                PATIENCE,
                || async {
                    let status = scene.cluster.status(old).await?;
                    (status.leader != old && status.leader != 0).then_some(status)
                },
            )
            .await;
            println!(
                "round {round}: leader {old} (term {old_term}) cut off; there it saw itself as {}; the majority \
                 elected {new}; {tried} calls on the cut-off side, none answered; healed, {old} follows {} in term {}",
                cut_off.map_or("unreachable".to_string(), |s| format!("leader {} in term {}", s.leader, s.header.raft_term)),
                rejoined.leader,
                rejoined.header.raft_term
            );
            scene.writes(200).await;
        }
        scene.finish().await;
    });
}

/// Snapshot catch-up: a follower is down (SIGKILL) while many writes land, more than the leader keeps in its log
/// (the members run with `--snapshot-count 1000 --snapshot-catchup-entries 500`; concurrent writes share log
/// entries), then comes back and catches up by installing the leader's snapshot. `NAVARCH_FAULT_CATCHUP_WRITES` sets the number of writes (default 12,000;
/// the 100,000 is a soak).
#[test]
fn member_down_for_many_writes_catches_up_by_snapshot() {
    faults::run(
        "member_down_for_many_writes_catches_up_by_snapshot",
        |mut rng| async move {
            let many: u64 = std::env::var("NAVARCH_FAULT_CATCHUP_WRITES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(12_000);
            let mut scene = Scene::start(&mut rng, Mix::PUTS).await;
            // More clients: more writes batched per fsync.
            let extra = Load::start(
                &scene.store,
                &scene.recorder,
                &mut rng,
                (CLIENTS, 10),
                KEYS,
                Mix::PUTS,
            );
            scene.writes(100).await;
            let leader = scene.cluster.leader().await;
            let others: Vec<u64> = scene
                .cluster
                .ids()
                .into_iter()
                .filter(|id| *id != leader)
                .collect();
            let down = others[rng.below(others.len() as u64) as usize];
            scene.cluster.kill(down);
            let started = std::time::Instant::now();
            scene.writes(many).await;
            println!(
                "{many} writes with member {down} down in {:.1?}",
                started.elapsed()
            );
            scene.cluster.start_member(down);
            let revision = scene.cluster.caught_up(down).await;
            let log = scene.cluster.log_since_start(down);
            assert!(
            log.contains("install_full_snapshot") || log.contains("finished streaming snapshot"),
            "member {down} caught up to {revision} without installing a snapshot (its log since restart):\n{}",
            &log[log.len().saturating_sub(4000)..]
        );
            println!("member {down} back, installed the leader's snapshot, caught up to revision {revision}");
            scene.writes(100).await;
            extra.stop().await;
            scene.finish().await;
        },
    );
}

/// Compare-and-swap contention: clients increment one counter with read + transaction (compare the mod revision,
/// then put value + 1); the final value equals the number of transactions that succeeded. Then again with the
/// leader killed half-way, where transactions that timed out may or may not have counted.
#[test]
fn compare_and_swap_contention_counts_every_success_once() {
    faults::run(
        "compare_and_swap_contention_counts_every_success_once",
        |mut rng| async move {
            let mut cluster = Cluster::start(3).await;
            let store = StoreClient::new(cluster.bus.clone()).with_timeout(Duration::from_secs(6));
            let counter = "/registry/faults/counter";
            let clients = 16;
            let (won, unknown) = faults::cas::contend(&store, counter, clients, 20).await;
            let value = faults::cas::read(&store, counter).await;
            println!(
                "{clients} clients: {won} increments won, {unknown} unknown; counter = {value}"
            );
            assert_eq!(unknown, 0, "no fault, yet some transactions timed out");
            assert_eq!(
                value, won,
                "the counter must equal the successful transactions"
            );

            let leader = cluster.leader().await;
            let contention = tokio::spawn({
                let store = store.clone();
                async move { faults::cas::contend(&store, counter, clients, 20).await }
            });
            tokio::time::sleep(Duration::from_millis(rng.between(200, 800))).await;
            cluster.kill(leader);
            let (won_more, unknown) = contention.await.expect("contention");
            cluster.start_member(leader);
            let final_value = faults::cas::read(&store, counter).await;
            println!("with leader {leader} killed: {won_more} more won, {unknown} unknown; counter = {final_value}");
            assert!(
            final_value >= value + won_more && final_value <= value + won_more + unknown,
            "counter {final_value}: expected {} successful increments plus at most {unknown} unknown ones",
            value + won_more
        );
        },
    );
}

/// A negative control: a store that loses every member's disk loses acknowledged writes, and the checks say so.
#[test]
fn the_checks_catch_a_store_that_forgets() {
    faults::run(
        "the_checks_catch_a_store_that_forgets",
        |mut rng| async move {
            let mut scene = Scene::start(&mut rng, Mix::MIXED).await;
            scene.writes(200).await;
            scene.cluster.kill_all();
            for id in scene.cluster.ids() {
                scene.cluster.wipe(id);
                scene.cluster.start_member(id);
            }
            scene.cluster.leader().await;
            scene.writes(50).await;
            let (problems, _cluster) = scene.check().await;
            let found = |what: &str| problems.iter().any(|p| p.contains(what));
            assert!(found("acknowledged writes lost"), "{problems:#?}");
            assert!(found("is not linearizable"), "{problems:#?}");
            assert!(found("revisions against real time"), "{problems:#?}");
        },
    );
}

/// The pure checks on small made-up histories: each finds what it must.
#[test]
fn the_checks_find_lost_writes_phantoms_and_broken_watches() {
    use navarch_bus::store::{ChangeBatch, Event, EventKind, KeyValue};
    use navarch_lincheck::{Op, Operation, Outcome};

    let put = |key: &str, value: &str, revision| {
        let op = Op::Put {
            value: value.into(),
        };
        Operation::ok(0, key, op, (0, 1), Outcome::Put, revision)
    };
    let batch = |revision, key: &str, value: &str| ChangeBatch {
        revision,
        prev: 0,
        stream: "faults".into(),
        events: vec![Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.as_bytes().to_vec(),
                value: value.as_bytes().to_vec(),
                mod_revision: revision,
                ..Default::default()
            },
            prev_kv: None,
        }],
    };
    let committed = vec![batch(2, "a", "1"), batch(3, "b", "1"), batch(4, "a", "x")];
    let history = vec![put("a", "1", 2), put("b", "1", 3), put("b", "2", 5)];
    assert_eq!(
        verify::lost_writes(&history, &committed).len(),
        1,
        "b=2 at 5 is lost"
    );
    assert_eq!(
        verify::phantom_writes(&history, &committed).len(),
        1,
        "a=x was written by nobody"
    );

    use faults::watchers::compare;
    let seen = |revisions: &[i64]| -> Vec<(i64, Vec<Event>)> {
        revisions
            .iter()
            .filter_map(|r| committed.iter().find(|b| b.revision == *r))
            .map(|b| (b.revision, b.events.clone()))
            .collect()
    };
    assert_eq!(compare("w", 1, &seen(&[2, 3, 4]), &committed, 4), Ok(3));
    assert_eq!(compare("w", 2, &seen(&[3, 4]), &committed, 4), Ok(2));
    assert!(compare("w", 1, &seen(&[2, 4]), &committed, 4)
        .unwrap_err()
        .contains("a gap"));
    assert!(compare("w", 1, &seen(&[2, 2, 3, 4]), &committed, 4)
        .unwrap_err()
        .contains("twice"));
    assert!(compare("w", 1, &seen(&[2, 3]), &committed, 4)
        .unwrap_err()
        .contains("never came"));
    let mut wrong = seen(&[2, 3, 4]);
    wrong[1].1[0].kv.value = b"other".to_vec();
    assert!(compare("w", 1, &wrong, &committed, 4)
        .unwrap_err()
        .contains("delivered"));
}

/// Membership under load: a fourth member joins (added as a learner, promoted once caught up), then one of the
/// first three (the leader or a follower, by the seed) is removed and stops by itself.
#[test]
fn member_added_and_another_removed_under_load() {
    faults::run(
        "member_added_and_another_removed_under_load",
        |mut rng| async move {
            let mut scene = Scene::start(&mut rng, Mix::MIXED).await;
            let admin = scene.store.clone().with_timeout(Duration::from_secs(15));
            let mut voters = scene.cluster.ids();
            for round in 0..rounds() {
                scene.writes(rng.between(200, 400)).await;
                let new = 4 + u64::from(round);
                scene.cluster.start_joining(new).await;
                let add = MemberAddRequest {
                    id: new,
                    is_learner: true,
                    ..Default::default()
                };
                retry(&format!("add member {new}"), || {
                    admin.member_add(add.clone())
                })
                .await;
                scene.cluster.caught_up(new).await;
                retry(&format!("promote member {new}"), || {
                    admin.member_promote(new)
                })
                .await;
                voters.push(new);
                scene.cluster.set_voters(&voters);
                scene.writes(200).await;

                let leader = scene.cluster.leader().await;
                let gone = if rng.below(2) == 0 {
                    leader
                } else {
                    let followers: Vec<u64> =
                        voters.iter().copied().filter(|id| *id != leader).collect();
                    followers[rng.below(followers.len() as u64) as usize]
                };
                retry(&format!("remove member {gone}"), || {
                    admin.member_remove(gone)
                })
                .await;
                voters.retain(|id| *id != gone);
                scene.cluster.set_voters(&voters);
                assert!(
                    scene.cluster.exited(gone).await,
                    "removed member {gone} exits cleanly"
                );
                scene.writes(200).await;
                let now = scene.cluster.leader().await;
                let listed = admin.member_list().await.expect("member list");
                let mut ids: Vec<u64> = listed.members.iter().map(|m| m.id).collect();
                ids.sort_unstable();
                let mut want = voters.clone();
                want.sort_unstable();
                assert_eq!(ids, want, "the member list after the changes");
                println!(
                "round {round}: added {new} (learner, then voter); removed {gone} ({}); leader now {now}",
                if gone == leader { "the leader" } else { "a follower" }
            );
            }
            scene.finish().await;
        },
    );
}
