//! The deployment controller actor: informers on Deployments, ReplicaSets and pods feed a work queue of
//! Deployment keys; workers reconcile one key at a time each and carry out the decisions.
//!
//! Accepts: [`Change<Deployment>`], [`Change<ReplicaSet>`] (queues its controlling Deployment, or every Deployment
//! selecting an orphan) and [`Change<Pod>`] (queues the Deployment above the pod's ReplicaSet when it recreates:
//! it waits for old pods to be gone) from its informers, [`crate::Stop`], and its own timers (queue wake-ups, a
//! resync of every key each `resync_interval`).
//! Emits, through [`Objects`] on the store's `store.rpc` subject: ReplicaSet creates, updates (scaling, annotations;
//! with a resourceVersion precondition), deletes and owner-reference changes, the Deployment's revision annotation
//! and status, and `ScalingReplicaSet` Events on the Deployment.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use navarch_bus::api::selector_matches as matches;
use navarch_bus::api::Objects;
use tokio::time::Instant;

use super::reconcile;
use super::writes::{Halt, Work};
use crate::controllers::expectations::Expectation;
use crate::controllers::queue::WorkQueue;
use crate::controllers::replicaset::pods::{controller_key, controller_of, labels};
use crate::controllers::wake::Wake;
use crate::controllers::ControllersConfig;
use crate::error::Error;
use crate::events::EventRecorder;
use crate::informer::{Cache, Change, Informer, ObjectKey};

/// How soon a key whose write met a newer object (a conflict) is looked at again, if no event queues it first.
const AFTER_CONFLICT: std::time::Duration = std::time::Duration::from_millis(200);

/// Keeps Deployments' ReplicaSets and status in line with their spec. Start it with
/// [`crate::controllers::start_controllers`].
pub struct DeploymentController {
    objects: Objects,
    events: EventRecorder,
    config: ControllersConfig,
    deployments: Cache<Deployment>,
    replica_sets: Cache<ReplicaSet>,
    pods: Cache<Pod>,
    informers: Option<(Informer<Deployment>, Informer<ReplicaSet>, Informer<Pod>)>,
    queue: WorkQueue<ObjectKey>,
    /// Per key: what the ReplicaSet cache, and the Deployment cache, must show before the key is reconciled again.
    expectations: HashMap<ObjectKey, (Expectation, Expectation)>,
    busy: usize,
    wake: Wake,
}

/// What one reconcile did.
struct Outcome {
    key: ObjectKey,
    expectations: (Expectation, Expectation),
    result: Result<Option<std::time::Duration>, Error>,
}

impl DeploymentController {
    pub(crate) fn new(objects: Objects, config: ControllersConfig) -> Self {
        let queue = WorkQueue::new(config.retry_base, config.retry_max);
        Self {
            events: EventRecorder::new(objects.clone(), "deployment-controller"),
            objects,
            config,
            deployments: Cache::new(),
            replica_sets: Cache::new(),
            pods: Cache::new(),
            informers: None,
            queue,
            expectations: HashMap::new(),
            busy: 0,
            wake: Wake::default(),
        }
    }

    fn resync(&mut self) {
        for d in self.deployments.list() {
            self.queue.add(ObjectKey::of(&d.metadata));
        }
    }

    /// Queues the Deployment controlling `rs`, or, for an orphan, every Deployment of its namespace selecting it.
    fn queue_for_replica_set(&mut self, rs: &ReplicaSet) {
        if let Some(owner) = controller_key(&rs.metadata, "Deployment") {
            self.queue.add(owner);
        } else if controller_of(&rs.metadata).is_none() {
            let labels = labels(&rs.metadata);
            let namespace = rs.metadata.namespace.as_deref().unwrap_or_default();
            for d in self.deployments.list_namespace(namespace) {
                if d.spec
                    .as_ref()
                    .is_some_and(|s| matches(&s.selector, &labels))
                {
                    self.queue.add(ObjectKey::of(&d.metadata));
                }
            }
        }
    }

    /// Queues the Recreate Deployment above `pod`'s ReplicaSet: it waits for its old pods to be gone.
    fn queue_for_pod(&mut self, pod: &Pod) {
        let Some(rs) = controller_key(&pod.metadata, "ReplicaSet") else {
            return;
        };
        let Some(rs) = self.replica_sets.get(&rs) else {
            return;
        };
        let Some(key) = controller_key(&rs.metadata, "Deployment") else {
            return;
        };
        let recreate = self.deployments.get(&key).is_some_and(|d| {
            d.spec
                .as_ref()
                .and_then(|s| s.strategy.as_ref())
                .and_then(|s| s.type_.as_deref())
                == Some("Recreate")
        });
        if recreate {
            self.queue.add(key);
        }
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        if !self.deployments.is_synced() || !self.replica_sets.is_synced() || !self.pods.is_synced()
        {
            return;
        }
        let now = Instant::now();
        while self.busy < self.config.workers {
            let Some(key) = self.queue.pop(now) else {
                break;
            };
            if let Some((rs, own)) = self.expectations.get(&key) {
                if !rs.is_met(&self.replica_sets) || !own.is_met(&self.deployments) {
                    // The event that meets it queues the key again.
                    self.queue.done(&key);
                    continue;
                }
                self.expectations.remove(&key);
            }
            self.start_worker(key, ctx);
        }
        self.wake
            .arm(self.queue.next_due(), ctx, |act| &mut act.wake, Self::pump);
    }

    fn start_worker(&mut self, key: ObjectKey, ctx: &mut Context<Self>) {
        self.busy += 1;
        let work = run(
            self.objects.clone(),
            self.events.clone(),
            key.clone(),
            self.deployments.get(&key),
            self.replica_sets.list_namespace(&key.namespace),
            self.pods.list_namespace(&key.namespace),
            crate::now(),
        );
        ctx.spawn(work.into_actor(self).map(|outcome, act, ctx| {
            act.finish(outcome, ctx);
        }));
    }

    fn finish(&mut self, outcome: Outcome, ctx: &mut Context<Self>) {
        self.busy -= 1;
        let Outcome {
            key,
            expectations: (rs, own),
            result,
        } = outcome;
        if !rs.is_empty() || !own.is_empty() {
            let entry = self.expectations.entry(key.clone()).or_default();
            entry.0.merge(rs);
            entry.1.merge(own);
        }
        self.queue.done(&key);
        match result {
            Ok(requeue) => {
                self.queue.forget(&key);
                if let Some(after) = requeue {
                    self.queue.add_after(key, Instant::now() + after);
                }
            }
            Err(e) => {
                let delay = self.queue.retry(key.clone(), Instant::now());
                tracing::warn!(deployment = %key, error = %e, ?delay, "reconcile failed; retrying");
            }
        }
        self.pump(ctx);
    }
}

/// Reconciles one Deployment key: carries out [`reconcile`] for the Deployment the cache holds (none: it is gone,
/// and its ReplicaSets are the garbage collector's).
async fn run(
    objects: Objects,
    events: EventRecorder,
    key: ObjectKey,
    cached: Option<Arc<Deployment>>,
    replica_sets: Vec<Arc<ReplicaSet>>,
    pods: Vec<Arc<Pod>>,
    now: k8s_openapi::chrono::DateTime<k8s_openapi::chrono::Utc>,
) -> Outcome {
    let mut work = Work {
        objects: &objects,
        events: &events,
        key: &key,
        rs_expectation: Expectation::default(),
        own_expectation: Expectation::default(),
    };
    let result = async {
        let Some(deployment) = cached else {
            return Ok(None);
        };
        let rs_refs: Vec<&ReplicaSet> = replica_sets.iter().map(Arc::as_ref).collect();
        let pod_refs: Vec<&Pod> = pods.iter().map(Arc::as_ref).collect();
        let plan = reconcile(&deployment, &rs_refs, &pod_refs, now);
        for action in plan.actions {
            match work.carry_out(&deployment, action).await {
                Ok(()) => {}
                // A newer object than the one decided on: its event queues the key again.
                Err(Halt::Conflict) => return Ok(Some(AFTER_CONFLICT)),
                Err(Halt::Failed(e)) => return Err(e),
            }
        }
        Ok(plan.requeue_after)
    }
    .await;
    Outcome {
        expectations: (work.rs_expectation, work.own_expectation),
        key,
        result,
    }
}

impl Actor for DeploymentController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let deployments = Informer::start(
            self.objects.clone(),
            self.deployments.clone(),
            None,
            ctx.address().recipient(),
        );
        let replica_sets = Informer::start(
            self.objects.clone(),
            self.replica_sets.clone(),
            None,
            ctx.address().recipient(),
        );
        let pods = Informer::start(
            self.objects.clone(),
            self.pods.clone(),
            None,
            ctx.address().recipient(),
        );
        self.informers = Some((deployments, replica_sets, pods));
        ctx.run_interval(self.config.resync_interval, |act, ctx| {
            act.resync();
            act.pump(ctx);
        });
        tracing::info!("deployment controller started");
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        tracing::info!("deployment controller stopped");
    }
}

impl Handler<Change<Deployment>> for DeploymentController {
    type Result = ();

    fn handle(&mut self, change: Change<Deployment>, ctx: &mut Context<Self>) {
        match change {
            Change::Synced => self.resync(),
            Change::Applied(d) | Change::Deleted(d) => self.queue.add(ObjectKey::of(&d.metadata)),
        }
        self.pump(ctx);
    }
}

impl Handler<Change<ReplicaSet>> for DeploymentController {
    type Result = ();

    fn handle(&mut self, change: Change<ReplicaSet>, ctx: &mut Context<Self>) {
        match change {
            Change::Synced => self.resync(),
            Change::Applied(rs) | Change::Deleted(rs) => self.queue_for_replica_set(&rs),
        }
        self.pump(ctx);
    }
}

impl Handler<Change<Pod>> for DeploymentController {
    type Result = ();

    fn handle(&mut self, change: Change<Pod>, ctx: &mut Context<Self>) {
        match change {
            Change::Synced => self.resync(),
            Change::Applied(p) | Change::Deleted(p) => self.queue_for_pod(&p),
        }
        self.pump(ctx);
    }
}

impl Handler<crate::Stop> for DeploymentController {
    type Result = ();

    fn handle(&mut self, _: crate::Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
