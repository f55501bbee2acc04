//! The ReplicaSet controller actor: informers on ReplicaSets and pods feed a work queue of ReplicaSet keys;
//! workers reconcile one key at a time each and carry out the decisions.
//!
//! Accepts: [`Change<ReplicaSet>`] and [`Change<Pod>`] from its informers (a pod queues its controller, or every
//! ReplicaSet selecting it when it is an orphan), [`crate::Stop`], and its own timers (queue wake-ups, a resync of
//! every key each `resync_interval`).
//! Emits, through [`Objects`] on the store's `store.rpc` subject: pod creates (slow-start batches), pod deletes
//! (with a uid precondition), pod owner-reference changes (adopt, release), ReplicaSet status updates, and Events
//! (`SuccessfulCreate`, `FailedCreate`, `SuccessfulDelete`, `FailedDelete`) on the ReplicaSet.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use navarch_bus::api::selector_matches as matches;
use navarch_bus::api::Objects;
use tokio::time::Instant;

use super::writes::Work;
use super::{pods, reconcile};
use crate::controllers::expectations::Expectation;
use crate::controllers::queue::WorkQueue;
use crate::controllers::wake::Wake;
use crate::controllers::ControllersConfig;
use crate::error::Error;
use crate::events::EventRecorder;
use crate::informer::{Cache, Change, Informer, ObjectKey};

/// Keeps ReplicaSets' pods and status in line with their spec. Start it with
/// [`crate::controllers::start_controllers`].
pub struct ReplicaSetController {
    objects: Objects,
    events: EventRecorder,
    config: ControllersConfig,
    replica_sets: Cache<ReplicaSet>,
    pods: Cache<Pod>,
    informers: Option<(Informer<ReplicaSet>, Informer<Pod>)>,
    queue: WorkQueue<ObjectKey>,
    /// Per key: what the pod cache must show before the key is reconciled again.
    expectations: HashMap<ObjectKey, Expectation>,
    busy: usize,
    wake: Wake,
}

/// What one reconcile did.
struct Outcome {
    key: ObjectKey,
    expectation: Expectation,
    result: Result<Option<std::time::Duration>, Error>,
}

impl ReplicaSetController {
    pub(crate) fn new(objects: Objects, config: ControllersConfig) -> Self {
        let queue = WorkQueue::new(config.retry_base, config.retry_max);
        Self {
            events: EventRecorder::new(objects.clone(), "replicaset-controller"),
            objects,
            config,
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
        for rs in self.replica_sets.list() {
            self.queue.add(ObjectKey::of(&rs.metadata));
        }
    }

    /// Queues the ReplicaSet controlling `pod`, or, for an orphan, every ReplicaSet of its namespace selecting it.
    fn queue_for_pod(&mut self, pod: &Pod) {
        if let Some(owner) = pods::controller_key(&pod.metadata, "ReplicaSet") {
            self.queue.add(owner);
        } else if pods::controller_of(&pod.metadata).is_none() {
            let labels = pods::labels(&pod.metadata);
            let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
            for rs in self.replica_sets.list_namespace(namespace) {
                if rs
                    .spec
                    .as_ref()
                    .is_some_and(|s| matches(&s.selector, &labels))
                {
                    self.queue.add(ObjectKey::of(&rs.metadata));
                }
            }
        }
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        if !self.replica_sets.is_synced() || !self.pods.is_synced() {
            return;
        }
        let now = Instant::now();
        while self.busy < self.config.workers {
            let Some(key) = self.queue.pop(now) else {
                break;
            };
            if let Some(e) = self.expectations.get(&key) {
                if !e.is_met(&self.pods) {
                    // The pod event that meets it queues the key again.
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
        let rs = self.replica_sets.get(&key);
        let pods = self.pods.list_namespace(&key.namespace);
        let work = run(
            self.objects.clone(),
            self.events.clone(),
            key,
            rs,
            pods,
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
            expectation,
            result,
        } = outcome;
        if !expectation.is_empty() {
            self.expectations
                .entry(key.clone())
                .or_default()
                .merge(expectation);
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
                tracing::warn!(replicaset = %key, error = %e, ?delay, "reconcile failed; retrying");
            }
        }
        self.pump(ctx);
    }
}

/// Reconciles one ReplicaSet key: carries out [`reconcile`] for the ReplicaSet the cache holds (none: it is gone,
/// and its pods are the garbage collector's).
async fn run(
    objects: Objects,
    events: EventRecorder,
    key: ObjectKey,
    cached: Option<Arc<ReplicaSet>>,
    pods: Vec<Arc<Pod>>,
    now: k8s_openapi::chrono::DateTime<k8s_openapi::chrono::Utc>,
) -> Outcome {
    let mut expectation = Expectation::default();
    let result = async {
        let Some(rs) = cached else {
            return Ok(None);
        };
        let refs: Vec<&Pod> = pods.iter().map(Arc::as_ref).collect();
        let plan = reconcile(&rs, &refs, now);
        let mut work = Work {
            objects: &objects,
            events: &events,
            rs: &rs,
            expectation: &mut expectation,
        };
        work.carry_out(plan.actions, now).await?;
        Ok(plan.requeue_after)
    }
    .await;
    Outcome {
        key,
        expectation,
        result,
    }
}

impl Actor for ReplicaSetController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
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
        self.informers = Some((replica_sets, pods));
        ctx.run_interval(self.config.resync_interval, |act, ctx| {
            act.resync();
            act.pump(ctx);
        });
        tracing::info!("replicaset controller started");
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        tracing::info!("replicaset controller stopped");
    }
}

impl Handler<Change<ReplicaSet>> for ReplicaSetController {
    type Result = ();

    fn handle(&mut self, change: Change<ReplicaSet>, ctx: &mut Context<Self>) {
        match change {
            Change::Synced => self.resync(),
            Change::Applied(rs) | Change::Deleted(rs) => {
                self.queue.add(ObjectKey::of(&rs.metadata))
            }
        }
        self.pump(ctx);
    }
}

impl Handler<Change<Pod>> for ReplicaSetController {
    type Result = ();

    fn handle(&mut self, change: Change<Pod>, ctx: &mut Context<Self>) {
        match change {
            Change::Synced => self.resync(),
            Change::Applied(p) | Change::Deleted(p) => self.queue_for_pod(&p),
        }
        self.pump(ctx);
    }
}

impl Handler<crate::Stop> for ReplicaSetController {
    type Result = ();

    fn handle(&mut self, _: crate::Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
