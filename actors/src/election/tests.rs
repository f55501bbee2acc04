//! Tests of the election state machine: exact actions and transitions for each read, on a clock moved by hand.

use std::time::Duration;

use k8s_openapi::chrono::{DateTime, Utc};
use navarch_bus::api::meta::parse_time;
use tokio::time::Instant;

use super::*;

fn config(identity: &str) -> ElectionConfig {
    ElectionConfig {
        lease_name: CONTROLLERS_LEASE.into(),
        identity: identity.into(),
        ..Default::default()
    }
}

fn wall(seconds: i64) -> DateTime<Utc> {
    parse_time("2026-11-27T12:00:00Z").unwrap() + k8s_openapi::chrono::Duration::seconds(seconds)
}

fn held_by(holder: &str, renewed: i64, transitions: i32) -> LeaderRecord {
    LeaderRecord {
        holder: holder.into(),
        lease_duration_seconds: 15,
        acquire_time: Some(wall(0)),
        renew_time: Some(wall(renewed)),
        transitions,
    }
}

fn found(record: LeaderRecord, resource_version: i64) -> Observed {
    Observed::Found {
        record,
        resource_version,
    }
}

#[test]
fn defaults_are_kubernetes_and_validation_follows_client_go() {
    let c = ElectionConfig::default();
    assert_eq!(c.lease_namespace, "kube-system");
    assert_eq!(c.lease_duration, Duration::from_secs(15));
    assert_eq!(c.renew_deadline, Duration::from_secs(10));
    assert_eq!(c.retry_period, Duration::from_secs(2));
    assert!(config("a").validate().is_ok());
    let field = |c: ElectionConfig| match c.validate() {
        Err(Error::InvalidConfig { field, .. }) => field,
        other => panic!("expected an invalid config, got {other:?}"),
    };
    assert_eq!(field(ElectionConfig::default()), "lease_name");
    assert_eq!(field(config("")), "identity");
    let bad = ElectionConfig {
        renew_deadline: Duration::from_secs(15),
        ..config("a")
    };
    assert_eq!(field(bad), "lease_duration");
    let bad = ElectionConfig {
        renew_deadline: Duration::from_millis(2400),
        ..config("a")
    };
    assert_eq!(field(bad), "renew_deadline");
    let bad = ElectionConfig {
        lease_duration: Duration::from_millis(15500),
        ..config("a")
    };
    assert_eq!(field(bad), "lease_duration");
    assert!(default_identity().ends_with(&format!("_{}", std::process::id())));
}

#[test]
fn the_first_candidate_creates_the_lease_and_leads_once_it_is_stored() {
    let t0 = Instant::now();
    let mut e = Election::new(config("a"));
    let (action, transition) = e.decide(&Observed::Missing, t0, wall(0));
    assert_eq!(transition, None);
    let record = held_by("a", 0, 0);
    assert_eq!(action, Action::Create(record.clone()));
    assert!(!e.is_leader());
    assert_eq!(
        e.written(&action, Outcome::Written(7), t0),
        Some(Transition::Started { revision: 7 })
    );
    assert!(e.is_leader());
    // The next read renews (same acquire time and transitions, a new renew time), without a transition.
    let (action, transition) = e.decide(&found(record, 7), t0 + Duration::from_secs(2), wall(2));
    assert_eq!(transition, None);
    assert_eq!(
        action,
        Action::Renew {
            record: held_by("a", 2, 0),
            resource_version: 7
        }
    );
    assert_eq!(
        e.written(&action, Outcome::Written(9), t0 + Duration::from_secs(2)),
        None
    );
}

#[test]
fn a_lost_race_to_create_is_not_leadership() {
    let t0 = Instant::now();
    let mut e = Election::new(config("b"));
    let (action, _) = e.decide(&Observed::Missing, t0, wall(0));
    assert_eq!(e.written(&action, Outcome::Conflict, t0), None);
    assert!(!e.is_leader());
}

#[test]
fn a_standby_waits_a_lease_duration_from_the_last_change_it_saw_then_takes_over() {
    let t0 = Instant::now();
    let mut b = Election::new(config("b"));
    // The leader's renew time is far in the past by the standby's clock: that alone does not make it expired (clock
    // skew); only the standby's own observation counts.
    let stale = held_by("a", -3600, 3);
    assert_eq!(
        b.decide(&found(stale.clone(), 10), t0, wall(0)).0,
        Action::Wait
    );
    let at = |s: u64| t0 + Duration::from_secs(s);
    assert_eq!(
        b.decide(&found(stale.clone(), 10), at(14), wall(14)).0,
        Action::Wait
    );
    // A renewal seen at 10 s moves the wait.
    let renewed = held_by("a", 10, 3);
    assert_eq!(
        b.decide(&found(renewed.clone(), 11), at(10), wall(10)).0,
        Action::Wait
    );
    assert_eq!(
        b.decide(&found(renewed.clone(), 11), at(24), wall(24)).0,
        Action::Wait
    );
    let (action, transition) = b.decide(&found(renewed, 11), at(25), wall(25));
    assert_eq!(transition, None);
    let taken = LeaderRecord {
        holder: "b".into(),
        lease_duration_seconds: 15,
        acquire_time: Some(wall(25)),
        renew_time: Some(wall(25)),
        transitions: 4,
    };
    assert_eq!(
        action,
        Action::Acquire {
            record: taken,
            resource_version: 11
        }
    );
    assert_eq!(
        b.written(&action, Outcome::Written(12), at(25)),
        Some(Transition::Started { revision: 12 })
    );
}

#[test]
fn a_released_lease_is_taken_at_once() {
    let t0 = Instant::now();
    let mut b = Election::new(config("b"));
    let released = LeaderRecord {
        holder: String::new(),
        lease_duration_seconds: 1,
        ..held_by("", 5, 2)
    };
    let (action, _) = b.decide(&found(released, 20), t0, wall(6));
    assert!(
        matches!(action, Action::Acquire { ref record, resource_version: 20 } if record.transitions == 3 && record.holder == "b")
    );
}

#[test]
fn a_leader_that_cannot_renew_stops_at_the_renew_deadline_before_the_lease_runs_out() {
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let mut a = Election::new(config("a"));
    let (action, _) = a.decide(&Observed::Missing, t0, wall(0));
    a.written(&action, Outcome::Written(3), t0);
    let (action, _) = a.decide(&found(held_by("a", 0, 0), 3), at(2), wall(2));
    assert_eq!(a.written(&action, Outcome::Failed, at(2)), None);
    assert_eq!(a.expire(at(9)), None);
    assert!(a.is_leader());
    assert_eq!(
        a.expire(at(10)),
        Some(Transition::Stopped(StopReason::RenewDeadline))
    );
    assert!(!a.is_leader());
    assert_eq!(a.expire(at(11)), None);
    // Still the holder on record: the next read acquires again (same transitions: it is ours), with a new fence.
    let (action, transition) = a.decide(&found(held_by("a", 0, 0), 3), at(12), wall(12));
    assert_eq!(transition, None);
    assert!(matches!(action, Action::Acquire { ref record, .. } if record.transitions == 0));
    assert_eq!(
        a.written(&action, Outcome::Written(30), at(12)),
        Some(Transition::Started { revision: 30 })
    );
}

#[test]
fn a_leader_that_sees_another_holder_stops_at_once() {
    let t0 = Instant::now();
    let mut a = Election::new(config("a"));
    let (action, _) = a.decide(&Observed::Missing, t0, wall(0));
    a.written(&action, Outcome::Written(3), t0);
    let (action, transition) = a.decide(
        &found(held_by("b", 1, 1), 5),
        t0 + Duration::from_secs(2),
        wall(2),
    );
    assert_eq!(action, Action::Wait);
    assert_eq!(
        transition,
        Some(Transition::Stopped(StopReason::TakenBy("b".into())))
    );
    assert!(!a.is_leader());
}

#[test]
fn a_deleted_lease_is_created_again_with_a_new_term() {
    let t0 = Instant::now();
    let mut a = Election::new(config("a"));
    let (action, _) = a.decide(&Observed::Missing, t0, wall(0));
    a.written(&action, Outcome::Written(3), t0);
    let (action, transition) = a.decide(&Observed::Missing, t0 + Duration::from_secs(2), wall(2));
    assert_eq!(
        transition,
        Some(Transition::Stopped(StopReason::LeaseChanged))
    );
    assert!(matches!(action, Action::Create(_)));
    assert_eq!(
        a.written(&action, Outcome::Written(8), t0 + Duration::from_secs(2)),
        Some(Transition::Started { revision: 8 })
    );
}

#[test]
fn standbys_jitter_their_reads_and_the_leader_does_not() {
    let t0 = Instant::now();
    let mut e = Election::new(config("a"));
    assert_eq!(e.next_wait(0.0), Duration::from_secs(2));
    assert_eq!(e.next_wait(0.5), Duration::from_millis(2200));
    let (action, _) = e.decide(&Observed::Missing, t0, wall(0));
    e.written(&action, Outcome::Written(1), t0);
    assert_eq!(e.next_wait(0.5), Duration::from_secs(2));
}

#[test]
fn an_orderly_stop_releases_the_lease() {
    let t0 = Instant::now();
    let mut e = Election::new(config("a"));
    assert_eq!(e.release(wall(0)), None);
    let (action, _) = e.decide(&Observed::Missing, t0, wall(0));
    e.written(&action, Outcome::Written(1), t0);
    let released = e.release(wall(5)).expect("a leader releases");
    assert_eq!(released.holder, "");
    assert_eq!(released.lease_duration_seconds, 1);
    assert_eq!(released.transitions, 0);
    assert!(!e.is_leader());
}

#[test]
fn records_round_trip_through_the_lease() {
    let record = held_by("a", 3, 2);
    let lease = record.new_lease("kube-system", "navarch-scheduler");
    assert_eq!(LeaderRecord::of(&lease), record);
    let mut stored = serde_json::to_value(&lease).unwrap();
    stored["metadata"]["resourceVersion"] = "42".into();
    let next = held_by("b", 9, 3).apply_to(&stored).unwrap();
    assert_eq!(next["metadata"]["resourceVersion"], "42");
    assert_eq!(next["spec"]["holderIdentity"], "b");
    assert_eq!(next["spec"]["leaseTransitions"], 3);
    assert_eq!(next["spec"]["leaseDurationSeconds"], 15);
    assert_eq!(next["spec"]["renewTime"], "2026-11-27T12:00:09.000000Z");
}
