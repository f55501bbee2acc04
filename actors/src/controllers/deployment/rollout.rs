//! How many pods of the current template a Deployment should create and which pods it should delete: scaling to
//! `spec.replicas`, and replacing pods of older templates.
//!
//! Replacement is the simple form of Kubernetes' algorithms, without ReplicaSets: with `RollingUpdate`, pods of the
//! current template are added while the total stays within `replicas + maxSurge`, and old pods are removed while at
//! least `replicas - maxUnavailable` pods stay available (unavailable old pods go first); with `Recreate`, every old
//! pod is deleted and new ones are created once no old pod is left, not even a terminating one. A paused
//! Deployment scales but does not replace.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::chrono::{DateTime, Utc};

use super::pods::{deletion_order, is_available, is_deleting, is_finished, TEMPLATE_HASH_LABEL};

/// What to do with a Deployment's pods now.
#[derive(Debug, Default, PartialEq)]
pub struct Rollout<'a> {
    /// How many pods of the current template to create.
    pub create: usize,
    /// Which pods to delete.
    pub delete: Vec<&'a Pod>,
}

/// The desired replica count (`spec.replicas`, 1 when unset, never negative).
pub fn desired(d: &Deployment) -> i64 {
    i64::from(d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0))
}

/// `spec.minReadySeconds`.
pub fn min_ready(d: &Deployment) -> Duration {
    let secs = d
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// Resolves an int-or-percent against `total`: percents round up for a surge, down for unavailability.
fn scaled(value: Option<&IntOrString>, total: i64, round_up: bool, default_percent: i64) -> i64 {
    let percent = match value {
        Some(IntOrString::Int(n)) => return i64::from(*n).max(0),
        Some(IntOrString::String(s)) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<i64>().ok())
            .filter(|p| *p >= 0)
            .unwrap_or(default_percent),
        None => default_percent,
    };
    let scaled = total.saturating_mul(percent);
    if round_up {
        scaled.saturating_add(99) / 100
    } else {
        scaled / 100
    }
}

/// `(maxSurge, maxUnavailable)` for `desired` replicas (25% each by default). Both zero would block a rollout, so
/// maxUnavailable becomes 1 then, as in Kubernetes.
pub fn bounds(strategy: Option<&DeploymentStrategy>, desired: i64) -> (i64, i64) {
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let surge = scaled(
        rolling.and_then(|r| r.max_surge.as_ref()),
        desired,
        true,
        25,
    );
    let unavailable = scaled(
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        desired,
        false,
        25,
    )
    .min(desired);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

fn has_hash(pod: &Pod, hash: &str) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(TEMPLATE_HASH_LABEL))
        .is_some_and(|h| h == hash)
}

/// The pods that count as replicas: neither being deleted nor finished.
pub fn active<'a>(pods: &[&'a Pod]) -> Vec<&'a Pod> {
    pods.iter()
        .copied()
        .filter(|p| !is_deleting(p) && !is_finished(p))
        .collect()
}

/// Splits pods into those of the current template (`hash`) and the others.
pub fn split<'a>(pods: &[&'a Pod], hash: &str) -> (Vec<&'a Pod>, Vec<&'a Pod>) {
    pods.iter().copied().partition(|p| has_hash(p, hash))
}

fn sorted(mut pods: Vec<&Pod>) -> Vec<&Pod> {
    pods.sort_by(|a, b| deletion_order(a, b));
    pods
}

/// Scales pods of one template to `desired`: creates the missing ones or deletes the surplus, best candidates first.
fn scale<'a>(pods: Vec<&'a Pod>, desired: i64) -> Rollout<'a> {
    let have = pods.len() as i64;
    if have < desired {
        Rollout {
            create: (desired - have) as usize,
            delete: vec![],
        }
    } else {
        let surplus = (have - desired) as usize;
        Rollout {
            create: 0,
            delete: sorted(pods).into_iter().take(surplus).collect(),
        }
    }
}

/// What `d` should do with its `pods` (only those it owns) now that its template hashes to `hash`.
pub fn plan<'a>(d: &Deployment, hash: &str, pods: &[&'a Pod], now: DateTime<Utc>) -> Rollout<'a> {
    let Some(spec) = &d.spec else {
        return Rollout::default();
    };
    let desired = desired(d);
    let min_ready = min_ready(d);
    let (new, old) = split(&active(pods), hash);
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let old_terminating = pods
        .iter()
        .any(|p| is_deleting(p) && !is_finished(p) && !has_hash(p, hash));

    if old.is_empty() && !(recreate && old_terminating) {
        return scale(new, desired);
    }
    if spec.paused == Some(true) {
        return Rollout::default();
    }
    if recreate {
        return Rollout {
            create: 0,
            delete: old,
        };
    }

    let (surge, max_unavailable) = bounds(spec.strategy.as_ref(), desired);
    let total = (new.len() + old.len()) as i64;
    let mut rollout = Rollout::default();
    if new.len() as i64 > desired {
        rollout = scale(new.clone(), desired);
    } else {
        let room = (desired - new.len() as i64).min(desired.saturating_add(surge) - total);
        rollout.create = room.max(0) as usize;
    }

    let available = |p: &&Pod| is_available(p, min_ready, now);
    let min_available = desired - max_unavailable;
    let new_unavailable = new.iter().filter(|p| !available(p)).count() as i64;
    let mut budget = total - min_available - new_unavailable;
    if budget <= 0 {
        return rollout;
    }
    let (healthy, unhealthy): (Vec<&Pod>, Vec<&Pod>) = sorted(old).into_iter().partition(available);
    for pod in unhealthy.into_iter().take(budget as usize) {
        rollout.delete.push(pod);
        budget -= 1;
    }
    let available_total = new.iter().filter(|p| available(p)).count() as i64 + healthy.len() as i64;
    let can = budget.min(available_total - min_available).max(0) as usize;
    rollout.delete.extend(healthy.into_iter().take(can));
    rollout
}
