//! How a Deployment moves its ReplicaSets, as Kubernetes' deployment controller does (`rolling.go`, `recreate.go`,
//! `sync.go`): finding or creating the new ReplicaSet and syncing revisions, RollingUpdate within maxSurge and
//! maxUnavailable, Recreate, proportional scaling when `spec.replicas` changes mid-rollout, and the cleanup of
//! old ReplicaSets beyond `revisionHistoryLimit`.
//!
//! [`Sync`] holds the ReplicaSets as this reconcile leaves them: each decision is applied to them at once, so the
//! steps after it see it, as Kubernetes' sync sees the objects its own updates returned.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::chrono::{DateTime, Utc};
use navarch_bus::api::selector_matches as matches;

use super::replicasets::{
    self, actual, available, by_creation, by_revision, find_new, replicas, revision,
    set_new_annotations, set_replicas_annotations, template_hash, DESIRED_REPLICAS, MAX_REPLICAS,
};
use super::status::{self, reason, set_condition};
use super::Action;
use crate::controllers::replicaset::pods::{controller_of, is_finished, labels};

/// `spec.replicas` (1 when unset, never negative).
pub fn desired(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0)
}

fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        != Some("Recreate")
}

/// Resolves an int-or-percent against `total` (Kubernetes' `GetScaledValueFromIntOrPercent`): percents round up
/// for a surge, down for unavailability; a malformed value counts as 0 (validation refuses them).
pub fn scaled(value: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    match value {
        Some(IntOrString::Int(n)) => (*n).max(0),
        Some(IntOrString::String(s)) => {
            let Some(percent) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                return 0;
            };
            let scaled = i64::from(total) * percent.max(0);
            let value = if round_up {
                (scaled + 99) / 100
            } else {
                scaled / 100
            };
            i32::try_from(value).unwrap_or(i32::MAX)
        }
        None => 0,
    }
}

/// `(maxSurge, maxUnavailable)` of a RollingUpdate Deployment for `desired` replicas (Kubernetes'
/// `ResolveFenceposts`): both zero would block a rollout, so maxUnavailable becomes 1 then.
pub fn fenceposts(d: &Deployment, desired: i32) -> (i32, i32) {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge = scaled(rolling.and_then(|r| r.max_surge.as_ref()), desired, true);
    let unavailable = scaled(
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        desired,
        false,
    );
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// maxSurge resolved (0 for Recreate).
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(d, desired(d)).0
}

/// maxUnavailable resolved, at most `spec.replicas` (0 for Recreate or no replicas).
pub fn max_unavailable(d: &Deployment) -> i32 {
    let desired = desired(d);
    if !is_rolling(d) || desired == 0 {
        return 0;
    }
    fenceposts(d, desired).1.min(desired)
}

/// One reconcile of a Deployment's rollout over the ReplicaSets it controls.
pub struct Sync<'a> {
    /// The Deployment.
    pub d: &'a Deployment,
    /// Its ReplicaSets, with this reconcile's decisions applied.
    pub rses: Vec<ReplicaSet>,
    /// Which of them is the new one (the current template's).
    pub new: Option<usize>,
    /// What to carry out, in order.
    pub actions: Vec<Action>,
    /// The Deployment's conditions, with this reconcile's changes.
    pub conditions: Vec<DeploymentCondition>,
    /// `status.collisionCount`, raised on a name collision.
    pub collision_count: Option<i32>,
    /// Names of every ReplicaSet of the namespace (a new one must not take one of them).
    pub taken: BTreeSet<String>,
    /// The time of the reconcile.
    pub now: DateTime<Utc>,
    /// Per ReplicaSet: `spec.replicas` before this reconcile, and the action that writes it (if any yet).
    origin: Vec<(i32, Option<usize>)>,
}

impl<'a> Sync<'a> {
    /// A reconcile of `d` over the ReplicaSets it `claimed`, after `claims` (adoptions, releases).
    pub fn new(
        d: &'a Deployment,
        claimed: Vec<ReplicaSet>,
        claims: Vec<Action>,
        taken: BTreeSet<String>,
        now: DateTime<Utc>,
    ) -> Self {
        let status = d.status.clone().unwrap_or_default();
        Self {
            origin: claimed.iter().map(|rs| (replicas(rs), None)).collect(),
            new: find_new(d, &claimed),
            rses: claimed,
            d,
            actions: claims,
            conditions: status.conditions.unwrap_or_default(),
            collision_count: status.collision_count,
            taken,
            now,
        }
    }

    fn desired(&self) -> i32 {
        desired(self.d)
    }

    fn max_replicas(&self) -> (i32, i32) {
        let desired = self.desired();
        (desired, desired.saturating_add(max_surge(self.d)))
    }

    fn has_deadline(&self) -> bool {
        status::has_deadline(self.d)
    }

    /// Indices of the old ReplicaSets (every one but the new).
    pub fn old(&self) -> Vec<usize> {
        (0..self.rses.len())
            .filter(|i| Some(*i) != self.new)
            .collect()
    }

    fn total(&self, indices: &[usize], f: fn(&ReplicaSet) -> i32) -> i32 {
        indices.iter().map(|&i| f(&self.rses[i])).sum()
    }

    fn all(&self) -> Vec<usize> {
        (0..self.rses.len()).collect()
    }

    /// Records that ReplicaSet `i` must be written as it now is in the view.
    fn write(&mut self, i: usize) {
        let rs = self.rses[i].clone();
        match self.origin[i].1 {
            Some(at) => match &mut self.actions[at] {
                Action::CreateReplicaSet(created) => **created = rs,
                Action::UpdateReplicaSet { replica_set, .. } => **replica_set = rs,
                _ => {}
            },
            None => {
                self.origin[i].1 = Some(self.actions.len());
                self.actions.push(Action::UpdateReplicaSet {
                    replica_set: Box::new(rs),
                    from: self.origin[i].0,
                });
            }
        }
    }

    /// Kubernetes' `scaleReplicaSet`: sets the size and the replica annotations; whether the size changed.
    fn scale_to(&mut self, i: usize, to: i32) -> bool {
        let (desired, max) = self.max_replicas();
        let rs = &mut self.rses[i];
        let resized = replicas(rs) != to;
        let mut copy = rs.clone();
        let annotated = set_replicas_annotations(&mut copy, desired, max);
        if resized || annotated {
            copy.spec.get_or_insert_with(Default::default).replicas = Some(to);
            *rs = copy;
            self.write(i);
        }
        resized
    }

    /// Kubernetes' `scaleReplicaSetAndRecordEvent`: nothing when the size is already `to`.
    fn scale(&mut self, i: usize, to: i32) -> bool {
        replicas(&self.rses[i]) != to && self.scale_to(i, to)
    }

    /// Finds the new ReplicaSet and syncs revisions (Kubernetes' `getAllReplicaSetsAndSyncRevision`), creating the
    /// new ReplicaSet when `create` and it is missing. False when the reconcile must stop here (a name collision:
    /// `collisionCount` was raised, the next reconcile hashes again).
    pub fn sync_revision(&mut self, create: bool) -> bool {
        let old = self.old();
        let max_old = old
            .iter()
            .map(|&i| revision(&self.rses[i]))
            .max()
            .unwrap_or(0);
        let new_revision = max_old + 1;
        let replicas_annotations = self.max_replicas();
        if let Some(i) = self.new {
            let mut rs = self.rses[i].clone();
            let annotated =
                set_new_annotations(self.d, &mut rs, new_revision, true, replicas_annotations);
            let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
            let spec = rs.spec.get_or_insert_with(Default::default);
            let min_ready_changed = spec.min_ready_seconds != min_ready;
            spec.min_ready_seconds = min_ready;
            if annotated || min_ready_changed {
                self.rses[i] = rs.clone();
                self.write(i);
            }
            let revision = rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(replicasets::REVISION))
                .cloned()
                .unwrap_or_default();
            self.set_revision(revision);
            if self.has_deadline() && status::find(&self.conditions, "Progressing").is_none() {
                let name = rs.metadata.name.clone().unwrap_or_default();
                set_condition(
                    &mut self.conditions,
                    status::condition(
                        "Progressing",
                        "True",
                        reason::FOUND_NEW,
                        format!("Found new replica set \"{name}\""),
                        self.now,
                    ),
                );
            }
            return true;
        }
        if !create {
            return true;
        }
        let Some(spec) = &self.d.spec else {
            return true;
        };
        let hash = template_hash(&spec.template, self.collision_count);
        let mut rs = replicasets::new_replica_set(self.d, &hash, 0);
        let name = rs.metadata.name.clone().unwrap_or_default();
        if self.taken.contains(&name) {
            // Another ReplicaSet has the name: as Kubernetes, count a collision so the next hash differs.
            self.collision_count = Some(self.collision_count.unwrap_or(0).saturating_add(1));
            return false;
        }
        set_new_annotations(self.d, &mut rs, new_revision, false, replicas_annotations);
        self.rses.push(rs);
        let i = self.rses.len() - 1;
        self.new = Some(i);
        self.origin.push((0, Some(self.actions.len())));
        let count = self.new_rs_replicas(i);
        self.rses[i]
            .spec
            .get_or_insert_with(Default::default)
            .replicas = Some(count);
        self.actions
            .push(Action::CreateReplicaSet(Box::new(self.rses[i].clone())));
        self.set_revision(new_revision.to_string());
        if self.has_deadline() {
            set_condition(
                &mut self.conditions,
                status::condition(
                    "Progressing",
                    "True",
                    reason::NEW_CREATED,
                    format!("Created new replica set \"{name}\""),
                    self.now,
                ),
            );
        }
        true
    }

    fn set_revision(&mut self, revision: String) {
        let current = self
            .d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(replicasets::REVISION));
        if current != Some(&revision) {
            self.actions
                .retain(|a| !matches!(a, Action::SetRevision(_)));
            self.actions.push(Action::SetRevision(revision));
        }
    }

    /// How many replicas the new ReplicaSet `i` may have now (Kubernetes' `NewRSNewReplicas`).
    fn new_rs_replicas(&self, i: usize) -> i32 {
        let desired = self.desired();
        let current = replicas(&self.rses[i]);
        if !is_rolling(self.d) {
            return desired;
        }
        let all = self.total(&self.all(), replicas);
        let max_total = desired.saturating_add(max_surge(self.d));
        if all >= max_total {
            return current;
        }
        current + (max_total - all).min(desired - current).max(0)
    }

    /// Whether any active ReplicaSet was sized for another `spec.replicas` (Kubernetes' `isScalingEvent`).
    pub fn is_scaling_event(&self) -> bool {
        let desired = self.desired();
        self.rses.iter().any(|rs| {
            replicas(rs) > 0
                && replicasets::number_annotation(rs, DESIRED_REPLICAS)
                    .is_some_and(|n| n != i64::from(desired))
        })
    }

    /// Scaling without a rollout, for a paused Deployment or a changed `spec.replicas` (Kubernetes' `sync`).
    pub fn sync(&mut self) {
        if !self.sync_revision(false) {
            return;
        }
        self.scale_proportionally();
        if self.d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
            self.cleanup();
        }
    }

    /// Kubernetes' `scale`: one active ReplicaSet (or none: the newest) takes every replica; a saturated new one
    /// leaves the old ones none; otherwise, in a rolling update, the change is spread over the active ones in
    /// proportion to their size.
    fn scale_proportionally(&mut self) {
        let desired = self.desired();
        let active: Vec<usize> = self
            .all()
            .into_iter()
            .filter(|&i| replicas(&self.rses[i]) > 0)
            .collect();
        let target = match active.len() {
            0 => self.new.or_else(|| {
                let mut old = self.old();
                old.sort_by(|&a, &b| by_creation(&self.rses[b], &self.rses[a]));
                old.first().copied()
            }),
            1 => Some(active[0]),
            _ => None,
        };
        if let Some(i) = target {
            if replicas(&self.rses[i]) != desired {
                self.scale(i, desired);
            }
            return;
        }
        if let Some(n) = self.new.filter(|&n| self.is_saturated(n)) {
            for i in active.into_iter().filter(|&i| i != n) {
                self.scale(i, 0);
            }
            return;
        }
        if !is_rolling(self.d) {
            return;
        }
        let all_replicas = self.total(&active, replicas);
        let allowed = if desired > 0 {
            desired.saturating_add(max_surge(self.d))
        } else {
            0
        };
        let to_add = allowed - all_replicas;
        let mut order = active;
        // Larger first; among equals, the newer first when growing and the older first when shrinking.
        order.sort_by(|&a, &b| {
            let (ra, rb) = (&self.rses[a], &self.rses[b]);
            replicas(rb).cmp(&replicas(ra)).then_with(|| {
                if to_add > 0 {
                    by_creation(rb, ra)
                } else {
                    by_creation(ra, rb)
                }
            })
        });
        let mut added = 0;
        let mut sizes = Vec::with_capacity(order.len());
        for &i in &order {
            let size = replicas(&self.rses[i]);
            if to_add == 0 {
                sizes.push(size);
                continue;
            }
            let proportion = self.proportion(i, to_add, added);
            sizes.push(size + proportion);
            added += proportion;
        }
        for (n, &i) in order.iter().enumerate() {
            let mut size = sizes[n];
            if n == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.scale_to(i, size);
        }
    }

    /// Kubernetes' `GetReplicaSetProportion`.
    fn proportion(&self, i: usize, to_add: i32, added: i32) -> i32 {
        let rs = &self.rses[i];
        if replicas(rs) == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = self.fraction(rs);
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    /// Kubernetes' `getReplicaSetFraction`: the ReplicaSet's share of the new maximum, by its `max-replicas`.
    fn fraction(&self, rs: &ReplicaSet) -> i32 {
        let desired = self.desired();
        if desired == 0 {
            return -replicas(rs);
        }
        let max = desired.saturating_add(max_surge(self.d));
        let before = replicasets::number_annotation(rs, MAX_REPLICAS)
            .filter(|n| *n != 0)
            .unwrap_or_else(|| {
                i64::from(self.d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0))
            });
        if before == 0 {
            return 0;
        }
        let size = f64::from(replicas(rs)) * f64::from(max) / before as f64;
        size.round() as i32 - replicas(rs)
    }

    /// Kubernetes' `IsSaturated`: the new ReplicaSet has every replica, sized for this `spec.replicas`, available.
    fn is_saturated(&self, i: usize) -> bool {
        let rs = &self.rses[i];
        let desired = self.desired();
        replicas(rs) == desired
            && replicasets::number_annotation(rs, DESIRED_REPLICAS) == Some(i64::from(desired))
            && available(rs) == desired
    }

    /// Kubernetes' `rolloutRolling`: scale the new ReplicaSet up if there is room, else the old ones down if enough
    /// stay available, else clean up once complete. Whether to report rollout progress (always).
    pub fn rolling(&mut self) {
        if !self.sync_revision(true) {
            return;
        }
        let Some(new) = self.new else { return };
        if self.reconcile_new(new) {
            return;
        }
        if self.reconcile_old(new) {
            return;
        }
        if self.complete() {
            self.cleanup();
        }
    }

    fn reconcile_new(&mut self, new: usize) -> bool {
        let desired = self.desired();
        let have = replicas(&self.rses[new]);
        if have == desired {
            return false;
        }
        if have > desired {
            return self.scale(new, desired);
        }
        let count = self.new_rs_replicas(new);
        self.scale(new, count)
    }

    fn reconcile_old(&mut self, new: usize) -> bool {
        let old = self.old();
        if self.total(&old, replicas) == 0 {
            return false;
        }
        let all = self.total(&self.all(), replicas);
        let min_available = self.desired() - max_unavailable(self.d);
        let new_unavailable = replicas(&self.rses[new]) - available(&self.rses[new]);
        let max_scaled_down = all - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let cleaned = self.cleanup_unhealthy(max_scaled_down);
        let scaled = self.scale_down_old(min_available);
        cleaned + scaled > 0
    }

    fn old_by_age(&self) -> Vec<usize> {
        let mut old = self.old();
        old.sort_by(|&a, &b| by_creation(&self.rses[a], &self.rses[b]));
        old
    }

    /// Kubernetes' `cleanupUnhealthyReplicas`: old replicas that are not available go first.
    fn cleanup_unhealthy(&mut self, max: i32) -> i32 {
        let mut total = 0;
        for i in self.old_by_age() {
            if total >= max {
                break;
            }
            let (have, ok) = (replicas(&self.rses[i]), available(&self.rses[i]));
            if have == 0 || have == ok {
                continue;
            }
            let down = (max - total).min(have - ok);
            self.scale(i, have - down);
            total += down;
        }
        total
    }

    /// Kubernetes' `scaleDownOldReplicaSetsForRollingUpdate`: as many as keep `min_available` available.
    fn scale_down_old(&mut self, min_available: i32) -> i32 {
        let available_now = self.total(&self.all(), available);
        if available_now <= min_available {
            return 0;
        }
        let budget = available_now - min_available;
        let mut total = 0;
        for i in self.old_by_age() {
            if total >= budget {
                break;
            }
            let have = replicas(&self.rses[i]);
            if have == 0 {
                continue;
            }
            let down = have.min(budget - total);
            self.scale(i, have - down);
            total += down;
        }
        total
    }

    /// Kubernetes' `rolloutRecreate`: old ReplicaSets to zero, wait until none of their pods is left (not even a
    /// terminating one), then create or scale up the new one.
    pub fn recreate(&mut self, pods: &[&Pod]) {
        if !self.sync_revision(false) {
            return;
        }
        let mut scaled_down = false;
        for i in self.old() {
            if replicas(&self.rses[i]) > 0 {
                scaled_down |= self.scale(i, 0);
            }
        }
        if scaled_down || self.old_pods_running(pods) {
            return;
        }
        if self.new.is_none() && !self.sync_revision(true) {
            return;
        }
        if let Some(new) = self.new {
            let desired = self.desired();
            if replicas(&self.rses[new]) != desired {
                self.scale(new, desired);
            }
        }
        if self.complete() {
            self.cleanup();
        }
    }

    /// Kubernetes' `oldPodsRunning`: an old ReplicaSet still reports replicas, or one of its pods that has not
    /// finished still exists.
    fn old_pods_running(&self, pods: &[&Pod]) -> bool {
        let old = self.old();
        if self.total(&old, actual) > 0 {
            return true;
        }
        let Some(selector) = self.d.spec.as_ref().map(|s| &s.selector) else {
            return false;
        };
        let old_uids: BTreeSet<&str> = old
            .iter()
            .filter_map(|&i| self.rses[i].metadata.uid.as_deref())
            .collect();
        pods.iter().any(|p| {
            !is_finished(p)
                && matches(selector, &labels(&p.metadata))
                && controller_of(&p.metadata).is_some_and(|o| old_uids.contains(o.uid.as_str()))
        })
    }

    /// Whether the rollout is complete by the status this reconcile would write (Kubernetes' `DeploymentComplete`).
    fn complete(&self) -> bool {
        let s = status::calculate(self);
        let desired = self.desired();
        s.updated_replicas.unwrap_or(0) == desired
            && s.replicas.unwrap_or(0) == desired
            && s.available_replicas.unwrap_or(0) == desired
    }

    /// Kubernetes' `cleanupDeployment`: old ReplicaSets beyond `revisionHistoryLimit`, lowest revisions first,
    /// are deleted once they have no replicas (wanted or running) and their status is current.
    pub fn cleanup(&mut self) {
        let Some(limit) = self.d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return;
        };
        let mut cleanable: Vec<usize> = self
            .old()
            .into_iter()
            .filter(|&i| self.rses[i].metadata.deletion_timestamp.is_none())
            .collect();
        let excess = cleanable.len() as i64 - i64::from(limit.max(0));
        if excess <= 0 {
            return;
        }
        cleanable.sort_by(|&a, &b| by_revision(&self.rses[a], &self.rses[b]));
        for &i in cleanable.iter().take(excess as usize) {
            let rs = &self.rses[i];
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if actual(rs) != 0
                || replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
                || self.origin[i].1.is_some()
            {
                continue;
            }
            self.actions.push(Action::DeleteReplicaSet {
                key: crate::informer::ObjectKey::of(&rs.metadata),
                uid: rs.metadata.uid.clone().unwrap_or_default(),
            });
        }
    }
}
