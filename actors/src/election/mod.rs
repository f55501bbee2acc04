//! Leader election: of several copies of a role (`navarch controllers`, `navarch scheduler`) exactly one is active,
//! the holder of a coordination.k8s.io/v1 Lease, as client-go's `leaderelection` package does it.
//!
//! # Layout
//! - this file: [`ElectionConfig`] and [`Election`], the pure state machine (what to write given the Lease read,
//!   when leadership starts and stops), on tokio's clock passed in.
//! - `campaign`: [`campaign`], the task that reads and writes the Lease every retry period, starts the role when
//!   this process becomes leader and stops it when it stops being leader.
//!
//! How it works (client-go's `tryAcquireOrRenew`): every retry period each candidate reads the Lease. A Lease held by
//! another is left alone until its record has not changed for the lease duration, *as measured on this process's
//! clock from when it saw the record change* (never by comparing `renewTime` with this clock, so clock skew between
//! machines does not matter); then it is taken over with `leaseTransitions` + 1. The leader renews every retry
//! period; if no renewal succeeds within the renew deadline, which is shorter than the lease duration, it stops
//! leading before any other candidate may take over. Kubernetes' components exit the process at that point; Navarch
//! stops the role's actors and campaigns again, which gives the same guarantee (nothing of the old term keeps
//! running: its informers and work queues go with the actors) and keeps the process up. A leader that sees another
//! holder in the Lease stops at once.
//!
//! Writes of the role are fenced ([`navarch_bus::api::fence`]): an acquisition moves the Lease's fence key in the
//! same store transaction, so a deposed leader's writes fail from the revision a new leader acquired at, even a
//! write already in flight.

mod campaign;
#[cfg(test)]
mod tests;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use tokio::time::Instant;

pub use campaign::{campaign, Campaign, Role};

use crate::error::{Error, Result};

/// Where the leader Leases live, as kube-controller-manager's and kube-scheduler's.
pub const LEASE_NAMESPACE: &str = "kube-system";
/// The Lease `navarch controllers` elects its leader by.
pub const CONTROLLERS_LEASE: &str = "navarch-controllers";
/// The Lease `navarch scheduler` elects its leader by.
pub const SCHEDULER_LEASE: &str = "navarch-scheduler";

/// How one role elects its leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionConfig {
    /// Namespace of the Lease. Default `kube-system`.
    pub lease_namespace: String,
    /// Name of the Lease, one per role (e.g. [`CONTROLLERS_LEASE`]). Default empty: must be set.
    pub lease_name: String,
    /// This candidate's `holderIdentity`, unique among the candidates. Default empty: must be set
    /// ([`default_identity`] gives `<hostname>_<pid>`).
    pub identity: String,
    /// How long a standby waits, from when it saw the Lease last change, before taking it over. Default 15 s:
    /// Kubernetes' `--leader-elect-lease-duration`. Whole seconds (the Lease stores seconds).
    pub lease_duration: Duration,
    /// How long the leader keeps leading without a successful renewal. Default 10 s: Kubernetes'
    /// `--leader-elect-renew-deadline`. Shorter than the lease duration, so the leader stops before a standby may
    /// start.
    pub renew_deadline: Duration,
    /// How often the Lease is read and renewed (standbys add up to 20% jitter). Default 2 s: Kubernetes'
    /// `--leader-elect-retry-period`.
    pub retry_period: Duration,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        Self {
            lease_namespace: LEASE_NAMESPACE.into(),
            lease_name: String::new(),
            identity: String::new(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// client-go's `JitterFactor`: the renew deadline must leave room for a retry period stretched by it.
const JITTER_FACTOR: f64 = 1.2;

impl ElectionConfig {
    /// Checks every field, with client-go's rules: lease duration > renew deadline > 1.2 × retry period > 0.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field, reason: &str| {
            Err(Error::InvalidConfig {
                field,
                reason: reason.into(),
            })
        };
        if self.lease_name.trim().is_empty() {
            return invalid("lease_name", "must not be empty");
        }
        if self.lease_namespace.trim().is_empty() {
            return invalid("lease_namespace", "must not be empty");
        }
        if self.identity.trim().is_empty() {
            return invalid("identity", "must not be empty");
        }
        if self.retry_period.is_zero() {
            return invalid("retry_period", "must be positive");
        }
        if self.lease_duration < Duration::from_secs(1) || self.lease_duration.subsec_nanos() != 0 {
            return invalid(
                "lease_duration",
                "must be a whole number of seconds, at least 1",
            );
        }
        if self.lease_duration <= self.renew_deadline {
            return invalid("lease_duration", "must be longer than renew_deadline");
        }
        if self.renew_deadline.as_secs_f64() <= JITTER_FACTOR * self.retry_period.as_secs_f64() {
            return invalid("renew_deadline", "must be longer than 1.2 × retry_period");
        }
        Ok(())
    }

    fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// `<hostname>_<pid>`: unique per process, and says where the leader runs.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}_{}", std::process::id())
}

/// What the Lease says about its holder (client-go's `LeaderElectionRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaderRecord {
    /// The holder; empty when released.
    pub holder: String,
    /// How long the holder's claim lasts after each renewal.
    pub lease_duration_seconds: i32,
    /// When the holder acquired it.
    pub acquire_time: Option<DateTime<Utc>>,
    /// When the holder last renewed it.
    pub renew_time: Option<DateTime<Utc>>,
    /// How many times it changed hands.
    pub transitions: i32,
}

impl LeaderRecord {
    /// The record in a Lease.
    pub fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Self {
            holder: spec.holder_identity.unwrap_or_default(),
            lease_duration_seconds: spec.lease_duration_seconds.unwrap_or_default(),
            acquire_time: spec.acquire_time.map(|t| t.0),
            renew_time: spec.renew_time.map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or_default(),
        }
    }

    /// The Lease's spec saying this record (other spec fields of `old` stay).
    pub fn spec(&self, old: Option<LeaseSpec>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: (!self.holder.is_empty()).then(|| self.holder.clone()),
            lease_duration_seconds: Some(self.lease_duration_seconds),
            acquire_time: self.acquire_time.map(|t| MicroTime(t.trunc_subsecs(6))),
            renew_time: self.renew_time.map(|t| MicroTime(t.trunc_subsecs(6))),
            lease_transitions: Some(self.transitions),
            ..old.unwrap_or_default()
        }
    }

    /// A new Lease `namespace`/`name` holding this record.
    pub fn new_lease(&self, namespace: &str, name: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            spec: Some(self.spec(None)),
        }
    }

    /// `stored` (the Lease as read, with its resourceVersion) saying this record instead.
    pub fn apply_to(&self, stored: &Value) -> std::result::Result<Value, serde_json::Error> {
        let mut lease: Lease = serde_json::from_value(stored.clone())?;
        lease.spec = Some(self.spec(lease.spec.take()));
        serde_json::to_value(&lease)
    }
}

/// The Lease as a read found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// There is no Lease.
    Missing,
    /// The Lease, at `resource_version`.
    Found {
        /// What it says.
        record: LeaderRecord,
        /// Its resourceVersion, for the compare-and-swap of the next write.
        resource_version: i64,
    },
}

/// What to write after a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing: another candidate holds the Lease.
    Wait,
    /// Create the Lease holding `record`: an acquisition (it moves the fence).
    Create(LeaderRecord),
    /// Write `record` over the Lease at `resource_version`, taking it: an acquisition (it moves the fence).
    Acquire {
        /// The new record.
        record: LeaderRecord,
        /// The version read.
        resource_version: i64,
    },
    /// Write `record` over the Lease at `resource_version`: the leader's renewal (the fence stays).
    Renew {
        /// The new record.
        record: LeaderRecord,
        /// The version read.
        resource_version: i64,
    },
}

/// How a write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored at this revision.
    Written(i64),
    /// The Lease changed since it was read (another candidate wrote first).
    Conflict,
    /// The store did not answer, or refused.
    Failed,
}

/// Why leadership ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// Another candidate holds the Lease.
    TakenBy(String),
    /// No renewal succeeded within the renew deadline.
    RenewDeadline,
    /// The Lease was deleted or released behind the leader's back; it is acquired again (with a new fence).
    LeaseChanged,
}

/// A change of leadership the campaign carries out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// This candidate leads from now on; its writes are fenced at `revision`, that of its acquisition.
    Started {
        /// The revision of the acquisition.
        revision: i64,
    },
    /// This candidate no longer leads: stop the role before anything else.
    Stopped(StopReason),
}

/// The election state of one candidate. Pure: the campaign passes in what it read, when (tokio's clock, to measure
/// durations) and the wall-clock time (for the Lease's timestamps).
#[derive(Debug, Clone)]
pub struct Election {
    config: ElectionConfig,
    /// The record last read, and when it was first seen as it is.
    observed: Option<(LeaderRecord, Instant)>,
    /// When this candidate's last acquisition or renewal was stored, while it leads.
    leading_since_renewal: Option<Instant>,
}

impl Election {
    /// A candidate that does not lead yet.
    pub fn new(config: ElectionConfig) -> Self {
        Self {
            config,
            observed: None,
            leading_since_renewal: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ElectionConfig {
        &self.config
    }

    /// Whether this candidate leads.
    pub fn is_leader(&self) -> bool {
        self.leading_since_renewal.is_some()
    }

    fn stop(&mut self, reason: StopReason) -> Option<Transition> {
        self.leading_since_renewal
            .take()
            .map(|_| Transition::Stopped(reason))
    }

    /// What to write after reading `observed` at `now` (wall-clock `wall`), and the transition to carry out first
    /// (a leader that sees another holder stops before anything else).
    pub fn decide(
        &mut self,
        observed: &Observed,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> (Action, Option<Transition>) {
        let me = self.config.identity.clone();
        let seconds = self.config.lease_duration_seconds();
        let fresh = |acquire_time, transitions| LeaderRecord {
            holder: me.clone(),
            lease_duration_seconds: seconds,
            acquire_time,
            renew_time: Some(wall),
            transitions,
        };
        let (record, resource_version) = match observed {
            Observed::Missing => {
                let create = Action::Create(fresh(Some(wall), 0));
                return (create, self.stop(StopReason::LeaseChanged));
            }
            Observed::Found {
                record,
                resource_version,
            } => (record, *resource_version),
        };
        if self
            .observed
            .as_ref()
            .is_none_or(|(seen, _)| seen != record)
        {
            self.observed = Some((record.clone(), now));
        }
        let seen_at = self.observed.as_ref().map_or(now, |(_, at)| *at);
        let duration = match record.lease_duration_seconds {
            s if s > 0 => Duration::from_secs(u64::try_from(s).unwrap_or_default()),
            _ => self.config.lease_duration,
        };
        let held_by_other = !record.holder.is_empty() && record.holder != me;
        if held_by_other && now < seen_at + duration {
            let stopped = self.stop(StopReason::TakenBy(record.holder.clone()));
            return (Action::Wait, stopped);
        }
        if record.holder == me && self.is_leader() {
            let renewed = LeaderRecord {
                renew_time: Some(wall),
                lease_duration_seconds: seconds,
                ..record.clone()
            };
            return (
                Action::Renew {
                    record: renewed,
                    resource_version,
                },
                None,
            );
        }
        // Free (expired, released) or ours from an earlier term: acquire, moving the fence. A new holder counts
        // a transition; taking back our own record does not (client-go's rule).
        let transitions = if record.holder == me {
            record.transitions
        } else {
            record.transitions.saturating_add(1)
        };
        let stopped = self.stop(StopReason::LeaseChanged);
        let acquire = Action::Acquire {
            record: fresh(Some(wall), transitions),
            resource_version,
        };
        (acquire, stopped)
    }

    /// Takes in how the write of `action` went at `now`: leadership starts with a stored acquisition.
    pub fn written(
        &mut self,
        action: &Action,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Transition> {
        let Outcome::Written(revision) = outcome else {
            return None;
        };
        match action {
            Action::Wait => None,
            Action::Create(record) | Action::Acquire { record, .. } => {
                self.observed = Some((record.clone(), now));
                let started = !self.is_leader();
                self.leading_since_renewal = Some(now);
                started.then_some(Transition::Started { revision })
            }
            Action::Renew { record, .. } => {
                self.observed = Some((record.clone(), now));
                if self.is_leader() {
                    self.leading_since_renewal = Some(now);
                }
                None
            }
        }
    }

    /// At `now`: a leader whose last renewal is a renew deadline old stops leading.
    pub fn expire(&mut self, now: Instant) -> Option<Transition> {
        match self.leading_since_renewal {
            Some(at) if now.saturating_duration_since(at) >= self.config.renew_deadline => {
                self.stop(StopReason::RenewDeadline)
            }
            _ => None,
        }
    }

    /// How long to wait before the next read: the retry period, stretched by `jitter` × 20% for a standby
    /// (`jitter` in [0, 1)) so that standbys do not all read at once, as client-go's `JitterUntil`.
    pub fn next_wait(&self, jitter: f64) -> Duration {
        if self.is_leader() {
            self.config.retry_period
        } else {
            self.config
                .retry_period
                .mul_f64(1.0 + (JITTER_FACTOR - 1.0) * jitter.clamp(0.0, 1.0))
        }
    }

    /// For an orderly stop of the leader: the record that gives the Lease up (no holder, a one-second duration,
    /// as client-go's `ReleaseOnCancel`), so a standby takes over at its next read instead of after the lease
    /// duration. None when this candidate does not lead. Leadership ends here.
    pub fn release(&mut self, wall: DateTime<Utc>) -> Option<LeaderRecord> {
        self.leading_since_renewal.take()?;
        let (record, _) = self.observed.as_ref()?;
        Some(LeaderRecord {
            holder: String::new(),
            lease_duration_seconds: 1,
            acquire_time: Some(wall),
            renew_time: Some(wall),
            transitions: record.transitions,
        })
    }
}
