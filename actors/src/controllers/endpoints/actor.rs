//! The endpoints controller actor: informers on Services, pods and Endpoints feed a work queue of Service keys;
//! workers reconcile one key at a time each and carry out the decision.
//!
//! Accepts: [`Change<Service>`] (queues the Service), [`Change<Pod>`] (queues the Services of its namespace that
//! select it or list it), [`Change<Endpoints>`] (queues the Service of that name, so an edited or deleted Endpoints
//! object is put back), [`crate::Stop`], and its own timers (queue wake-ups, a resync every `resync_interval` that
//! also queues Endpoints left without a Service, as kube-controller-manager's `checkLeftoverEndpoints`).
//! Emits, through [`Objects`] on the store's `store.rpc` subject: Endpoints creates, updates (subsets and labels)
//! and deletes (with a uid precondition, only once the store confirms the Service is gone).

use std::sync::Arc;

use actix::prelude::*;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use navarch_bus::api::admission::Part;
use navarch_bus::api::{resource, ApiError, DeleteOptions, Objects, Reason};
use serde_json::json;
use tokio::time::Instant;

use crate::controllers::wake::Wake;

use super::{lists, reconcile, selects, Action};
use crate::controllers::queue::WorkQueue;
use crate::controllers::ControllersConfig;
use crate::error::Error;
use crate::informer::{Cache, Change, Informer, ObjectKey};

/// Endpoints that carry this annotation are leader-election records, not a Service's: never collected.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

/// Keeps each selecting Service's Endpoints listing its pods. Start it with
/// [`crate::controllers::start_controllers`].
pub struct EndpointsController {
    objects: Objects,
    config: ControllersConfig,
    services: Cache<Service>,
    pods: Cache<Pod>,
    endpoints: Cache<Endpoints>,
    informers: Option<(Informer<Service>, Informer<Pod>, Informer<Endpoints>)>,
    queue: WorkQueue<ObjectKey>,
    busy: usize,
    wake: Wake,
}

impl EndpointsController {
    pub(crate) fn new(objects: Objects, config: ControllersConfig) -> Self {
        let queue = WorkQueue::new(config.retry_base, config.retry_max);
        Self {
            objects,
            config,
            services: Cache::new(),
            pods: Cache::new(),
            endpoints: Cache::new(),
            informers: None,
            queue,
            busy: 0,
            wake: Wake::default(),
        }
    }

    fn synced(&self) -> bool {
        self.services.is_synced() && self.pods.is_synced() && self.endpoints.is_synced()
    }

    /// Queues every Service, and every Endpoints object without one.
    fn resync(&mut self) {
        for s in self.services.list() {
            self.queue.add(ObjectKey::of(&s.metadata));
        }
        for e in self.endpoints.list() {
            let key = ObjectKey::of(&e.metadata);
            let leader = e
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(LEADER_ANNOTATION));
            if !leader && self.services.get(&key).is_none() {
                self.queue.add(key);
            }
        }
    }

    /// Queues the Services of the pod's namespace that select it now or list it still.
    fn queue_for_pod(&mut self, pod: &Pod) {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        for s in self.services.list_namespace(&namespace) {
            let key = ObjectKey::of(&s.metadata);
            let listed = self.endpoints.get(&key).is_some_and(|e| lists(&e, pod));
            if listed || selects(&s, pod) {
                self.queue.add(key);
            }
        }
    }

    /// Hands ready keys to free workers, and arranges to wake up when the next delayed key is due.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if !self.synced() {
            return;
        }
        let now = Instant::now();
        while self.busy < self.config.workers {
            let Some(key) = self.queue.pop(now) else {
                break;
            };
            self.busy += 1;
            let work = run(
                self.objects.clone(),
                key.clone(),
                self.services.get(&key),
                self.endpoints.get(&key),
                self.pods.list_namespace(&key.namespace),
            );
            ctx.spawn(work.into_actor(self).map(move |result, act, ctx| {
                act.finish(key, result, ctx);
            }));
        }
        self.wake
            .arm(self.queue.next_due(), ctx, |act| &mut act.wake, Self::pump);
    }

    fn finish(&mut self, key: ObjectKey, result: Result<(), Error>, ctx: &mut Context<Self>) {
        self.busy -= 1;
        self.queue.done(&key);
        match result {
            Ok(()) => self.queue.forget(&key),
            Err(e) => {
                let delay = self.queue.retry(key.clone(), Instant::now());
                tracing::warn!(service = %key, error = %e, ?delay, "endpoints reconcile failed; retrying");
            }
        }
        self.pump(ctx);
    }
}

/// Reconciles the Endpoints of one Service key and carries out the decision.
async fn run(
    objects: Objects,
    key: ObjectKey,
    service: Option<Arc<Service>>,
    current: Option<Arc<Endpoints>>,
    pods: Vec<Arc<Pod>>,
) -> Result<(), Error> {
    let pods: Vec<&Pod> = pods.iter().map(Arc::as_ref).collect();
    let mut service = service;
    if service.is_none() && current.is_some() {
        // Never delete on the cache's word alone: ask the store whether the Service exists now.
        service = match objects.get_as::<Service>(key.namespace(), &key.name).await {
            Ok(s) => Some(Arc::new(s)),
            Err(e) if e.reason == Reason::NotFound => None,
            Err(e) => return Err(e.into()),
        };
    }
    let info = resource::of::<Endpoints>();
    match reconcile(service.as_deref(), current.as_deref(), &pods) {
        Action::Nothing => Ok(()),
        Action::Create(endpoints) => {
            objects.create_as(endpoints.as_ref()).await?;
            tracing::info!(endpoints = %key, "created endpoints");
            Ok(())
        }
        Action::Update { subsets, labels } => {
            let subsets = serde_json::to_value(subsets).map_err(ApiError::internal)?;
            let result = objects
                .update_with(info, key.namespace(), &key.name, Part::Main, |mut e| {
                    e["subsets"] = subsets.clone();
                    e["metadata"]["labels"] = json!(labels);
                    Ok(e)
                })
                .await;
            match result {
                Ok(_) => Ok(()),
                // Deleted meanwhile: its event queues the key again, and the next reconcile creates it.
                Err(e) if e.reason == Reason::NotFound => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Action::Delete { uid } => {
            let options = DeleteOptions {
                uid: Some(uid),
                ..Default::default()
            };
            match objects
                .delete(info, key.namespace(), &key.name, &options)
                .await
            {
                Ok(_) => {
                    tracing::info!(endpoints = %key, "deleted endpoints of a deleted service");
                    Ok(())
                }
                Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }
}

impl Actor for EndpointsController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let services = Informer::start(
            self.objects.clone(),
            self.services.clone(),
            None,
            ctx.address().recipient(),
        );
        let pods = Informer::start(
            self.objects.clone(),
            self.pods.clone(),
            None,
            ctx.address().recipient(),
        );
        let endpoints = Informer::start(
            self.objects.clone(),
            self.endpoints.clone(),
            None,
            ctx.address().recipient(),
        );
        self.informers = Some((services, pods, endpoints));
        ctx.run_interval(self.config.resync_interval, |act, ctx| {
            act.resync();
            act.pump(ctx);
        });
        tracing::info!("endpoints controller started");
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        tracing::info!("endpoints controller stopped");
    }
}

impl Handler<Change<Service>> for EndpointsController {
    type Result = ();

    fn handle(&mut self, change: Change<Service>, ctx: &mut Context<Self>) {
        match change {
            Change::Synced => self.resync(),
            Change::Applied(s) | Change::Deleted(s) => self.queue.add(ObjectKey::of(&s.metadata)),
        }
        self.pump(ctx);
    }
}

impl Handler<Change<Pod>> for EndpointsController {
    type Result = ();

    fn handle(&mut self, change: Change<Pod>, ctx: &mut Context<Self>) {
        match change {
            Change::Synced => self.resync(),
            Change::Applied(p) | Change::Deleted(p) => self.queue_for_pod(&p),
        }
        self.pump(ctx);
    }
}

impl Handler<Change<Endpoints>> for EndpointsController {
    type Result = ();

    fn handle(&mut self, change: Change<Endpoints>, ctx: &mut Context<Self>) {
        match change {
            Change::Synced => self.resync(),
            Change::Applied(e) | Change::Deleted(e) => {
                let key = ObjectKey::of(&e.metadata);
                if self.services.get(&key).is_some() {
                    self.queue.add(key);
                }
            }
        }
        self.pump(ctx);
    }
}

impl Handler<crate::Stop> for EndpointsController {
    type Result = ();

    fn handle(&mut self, _: crate::Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
