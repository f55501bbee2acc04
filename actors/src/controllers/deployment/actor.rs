//! The deployment controller actor: informers on Deployments and pods feed a work queue of Deployment keys;
//! workers reconcile one key at a time each and carry out the decisions.
//!
//! Accepts: [`Change<Deployment>`] and [`Change<Pod>`] from its informers (they queue the Deployment concerned: the
//! pod's controller owner), [`crate::Stop`], and its own timers (queue wake-ups, a resync of every key each
//! `resync_interval`).
//! Emits, through [`Objects`] on the store's `store.rpc` subject: pod creates, pod deletes (with a uid precondition;
//! bound pods are deleted gracefully by their node agent), and Deployment status updates (status part).

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use navarch_bus::api::admission::Part;
use navarch_bus::api::{resource, ApiError, DeleteOptions, Objects, Reason};
use tokio::time::Instant;

use crate::controllers::wake::Wake;

use super::{pods, reconcile, Action};
use crate::controllers::expectations::Expectation;
use crate::controllers::queue::WorkQueue;
use crate::controllers::ControllersConfig;
use crate::error::Error;
use crate::informer::{Cache, Change, Informer, ObjectKey};

/// Keeps Deployments' pods and status in line with their spec. Start it with
/// [`crate::controllers::start_controllers`].
pub struct DeploymentController {
    objects: Objects,
    config: ControllersConfig,
    deployments: Cache<Deployment>,
    pods: Cache<Pod>,
    informers: Option<(Informer<Deployment>, Informer<Pod>)>,
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

impl DeploymentController {
    pub(crate) fn new(objects: Objects, config: ControllersConfig) -> Self {
        let queue = WorkQueue::new(config.retry_base, config.retry_max);
        Self {
            objects,
            config,
            deployments: Cache::new(),
            pods: Cache::new(),
            informers: None,
            queue,
            expectations: HashMap::new(),
            busy: 0,
            wake: Wake::default(),
        }
    }

    /// Queues every Deployment, and every Deployment named as a pod's owner.
    fn resync(&mut self) {
        for d in self.deployments.list() {
            self.queue.add(ObjectKey::of(&d.metadata));
        }
        for p in self.pods.list() {
            if let Some(owner) = pods::owner_key(&p) {
                self.queue.add(owner);
            }
        }
    }

    /// Hands ready keys to free workers, and arranges to wake up when the next delayed key is due.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if !self.deployments.is_synced() || !self.pods.is_synced() {
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
        let deployment = self.deployments.get(&key);
        let pods = self.pods.list_namespace(&key.namespace);
        let work = run(self.objects.clone(), key, deployment, pods, crate::now());
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
                tracing::warn!(deployment = %key, error = %e, ?delay, "reconcile failed; retrying");
            }
        }
        self.pump(ctx);
    }
}

/// Reconciles one Deployment key: carries out [`reconcile`] for the Deployment the cache holds (none: it is gone,
/// and its pods are the garbage collector's).
async fn run(
    objects: Objects,
    key: ObjectKey,
    cached: Option<Arc<Deployment>>,
    pods: Vec<Arc<Pod>>,
    now: k8s_openapi::chrono::DateTime<k8s_openapi::chrono::Utc>,
) -> Outcome {
    let mut expectation = Expectation::default();
    let result = async {
        let Some(deployment) = cached else {
            return Ok(None);
        };
        let refs: Vec<&Pod> = pods.iter().map(Arc::as_ref).collect();
        let plan = reconcile(&deployment, &refs, now);
        carry_out(
            &objects,
            &key,
            Some(&deployment),
            plan.actions,
            &mut expectation,
        )
        .await?;
        Ok(plan.requeue_after)
    }
    .await;
    Outcome {
        key,
        expectation,
        result,
    }
}

/// Carries out `actions` (pods in parallel, the status last); records in `expectation` what the cache must show
/// afterwards, even when some action failed. Returns the first failure.
async fn carry_out(
    objects: &Objects,
    key: &ObjectKey,
    deployment: Option<&Deployment>,
    actions: Vec<Action>,
    expectation: &mut Expectation,
) -> Result<(), Error> {
    let mut status = None;
    let mut pod_writes = Vec::new();
    for action in actions {
        match action {
            Action::UpdateStatus(s) => status = Some(s),
            Action::CreatePod(pod) => {
                pod_writes.push(futures::FutureExt::boxed_local(create_pod(objects, *pod)))
            }
            Action::DeletePod { key, uid } => pod_writes.push(futures::FutureExt::boxed_local(
                delete_pod(objects, key, uid),
            )),
        }
    }
    let mut first_error = None;
    for result in futures::future::join_all(pod_writes).await {
        match result {
            Ok(e) => expectation.merge(e),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if let (Some(status), Some(d)) = (status, deployment) {
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let info = resource::of::<Deployment>();
        let status = serde_json::to_value(*status).map_err(ApiError::internal)?;
        let result = objects
            .update_with(
                info,
                key.namespace(),
                &key.name,
                Part::Status,
                |mut current| {
                    if navarch_bus::api::meta::uid(&current) != Some(uid.as_str()) {
                        return Err(ApiError::new(
                            Reason::Conflict,
                            "the Deployment was replaced",
                        ));
                    }
                    current["status"] = status.clone();
                    Ok(current)
                },
            )
            .await;
        match result {
            Ok(_) => {}
            // Gone or replaced meanwhile: the next reconcile of the key sees it.
            Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn create_pod(objects: &Objects, pod: Pod) -> Result<Expectation, Error> {
    let created = objects.create_as(&pod).await?;
    tracing::info!(
        pod = %ObjectKey::of(&created.metadata),
        "created pod"
    );
    Ok(Expectation {
        revision: revision_of(created.metadata.resource_version.as_deref()),
        gone: vec![],
    })
}

async fn delete_pod(objects: &Objects, key: ObjectKey, uid: String) -> Result<Expectation, Error> {
    let options = DeleteOptions {
        uid: Some(uid.clone()),
        ..Default::default()
    };
    match objects
        .delete(resource::of::<Pod>(), key.namespace(), &key.name, &options)
        .await
    {
        Ok(last) => {
            tracing::info!(pod = %key, "deleting pod");
            if navarch_bus::api::meta::is_deleting(&last) {
                // Graceful: the pod now carries a deletionTimestamp at this revision.
                let rv = navarch_bus::api::meta::resource_version(&last);
                Ok(Expectation {
                    revision: revision_of(rv),
                    gone: vec![],
                })
            } else {
                Ok(Expectation {
                    revision: 0,
                    gone: vec![(key, uid)],
                })
            }
        }
        // Already gone, or another pod of the same name now: nothing left to do.
        Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {
            Ok(Expectation::default())
        }
        Err(e) => Err(e.into()),
    }
}

fn revision_of(resource_version: Option<&str>) -> i64 {
    resource_version.and_then(|rv| rv.parse().ok()).unwrap_or(0)
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
        let pods = Informer::start(
            self.objects.clone(),
            self.pods.clone(),
            None,
            ctx.address().recipient(),
        );
        self.informers = Some((deployments, pods));
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

impl Handler<Change<Pod>> for DeploymentController {
    type Result = ();

    fn handle(&mut self, change: Change<Pod>, ctx: &mut Context<Self>) {
        match change {
            Change::Synced => self.resync(),
            Change::Applied(p) | Change::Deleted(p) => {
                if let Some(owner) = pods::owner_key(&p) {
                    self.queue.add(owner);
                }
            }
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
