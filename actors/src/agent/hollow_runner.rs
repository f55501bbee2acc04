//! The hollow nodes' actor: carries out [`super::hollow`]'s decisions for all N nodes of the process with one pod
//! informer and one renewal task, not N agents.
//!
//! Accepts: [`Change<Pod>`] from its informer (pods whose `spec.nodeName` is one of the hollow nodes), [`Shutdown`],
//! and its own timer (every [`RESYNC_INTERVAL`], writes that failed are issued again).
//! Emits, through [`Objects`] on the store's `store.rpc` subject: Node creates and status updates and Lease creates and
//! renewals (the heartbeat, from the renewal task: each node once per `heartbeat_interval`, spread over it), pod status updates (Running; at most
//! `max_writes_in_flight` writes at once for all nodes) and pod deletes (grace 0, uid precondition); on shutdown,
//! each Node's Ready condition set False (best effort).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, Pod};
use navarch_bus::api::admission::Part;
use navarch_bus::api::{resource, ApiError, DeleteOptions, Objects, Reason};

use super::hollow::{self, HollowConfig, HollowPod, PodAction, PodTracker, Renewals};
use super::node::{self, NodeFacts};
use super::Shutdown;
use crate::informer::{Cache, Change, Filter, Informer};

/// How often writes that failed are issued again.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(2);
/// Nodes registered, or marked not ready on shutdown, at once.
const NODE_WRITES_AT_ONCE: usize = 64;
/// How long a shutdown waits for the Nodes to be marked not ready.
const SHUTDOWN_WRITES: Duration = Duration::from_secs(5);

/// Serves every hollow node of the process. Start it with [`start_hollow_nodes`].
pub struct HollowNodes {
    objects: Objects,
    config: Arc<HollowConfig>,
    pods: Cache<HollowPod>,
    informer: Option<Informer<HollowPod>>,
    renewals: Option<tokio::task::JoinHandle<()>>,
    tracker: PodTracker,
    queue: VecDeque<PodAction>,
    in_flight: usize,
    /// How many pod IPs each node has handed out.
    ips_given: Vec<u32>,
    /// A write failed since the last resync.
    failed: bool,
}

impl HollowNodes {
    fn enqueue(&mut self, action: Option<PodAction>, ctx: &mut Context<Self>) {
        if let Some(action) = action {
            self.queue.push_back(action);
        }
        self.pump(ctx);
    }

    /// Starts queued writes while fewer than `max_writes_in_flight` are in flight.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while self.in_flight < self.config.max_writes_in_flight {
            let Some(action) = self.queue.pop_front() else {
                return;
            };
            let Some(work) = self.write(&action) else {
                self.tracker.written(&action, false);
                continue;
            };
            self.in_flight += 1;
            ctx.spawn(work.into_actor(self).map(move |result, act, ctx| {
                act.in_flight -= 1;
                let ok = match result {
                    Ok(()) => true,
                    // Gone, or another pod by now: the informer says so and the pod is forgotten.
                    Err(e) if matches!(e.reason, Reason::NotFound) => true,
                    Err(e) => {
                        tracing::debug!(?action, error = %e, "hollow pod write failed; retrying");
                        act.failed = true;
                        false
                    }
                };
                act.tracker.written(&action, ok);
                act.pump(ctx);
            }));
        }
    }

    /// The store write `action` calls for, as the pod cache shows it now; None when the pod is not there.
    fn write(
        &mut self,
        action: &PodAction,
    ) -> Option<impl std::future::Future<Output = Result<(), ApiError>> + 'static> {
        let info = resource::of::<Pod>();
        let objects = self.objects.clone();
        let (key, uid, status, options) = match action {
            PodAction::ReportRunning { key, uid } => {
                let pod = self
                    .pods
                    .get(key)
                    .filter(|p| p.metadata.uid.as_deref() == Some(uid.as_str()))?;
                let node = pod.spec.node_name.as_deref()?;
                let index = self.config.node_index(node)?;
                let given = self.ips_given.get_mut(index)?;
                let pod_ip = hollow::pod_ip(index, *given);
                *given = given.wrapping_add(1);
                let status =
                    hollow::running_status(&pod, hollow::node_ip(index), pod_ip, crate::now());
                (key.clone(), uid.clone(), Some(status), None)
            }
            PodAction::Delete { key, uid } => {
                let options = DeleteOptions {
                    grace_period_seconds: Some(0),
                    uid: Some(uid.clone()),
                    ..Default::default()
                };
                (key.clone(), uid.clone(), None, Some(options))
            }
        };
        Some(async move {
            match (status, options) {
                (Some(status), _) => objects
                    .update_with(info, key.namespace(), &key.name, Part::Status, |current| {
                        super::status::merge(current, &uid, &status)
                    })
                    .await
                    .map(|_| ()),
                (None, Some(options)) => objects
                    .delete(info, key.namespace(), &key.name, &options)
                    .await
                    .map(|_| ()),
                (None, None) => Ok(()),
            }
        })
    }

    fn resync(&mut self, ctx: &mut Context<Self>) {
        let pods = self.pods.list();
        let actions = self.tracker.resync(pods.iter().map(Arc::as_ref));
        self.queue.extend(actions);
        self.pump(ctx);
    }
}

/// Registers node `facts` or renews its status and, while `ready`, its Lease; re-creates it if it was deleted. As the
/// real agent's heartbeat and lease renewal (here both once per `heartbeat_interval`).
async fn renew(objects: &Objects, facts: &NodeFacts, ready: bool) -> Result<(), ApiError> {
    let info = resource::of::<Node>();
    let now = crate::now();
    let renewed = objects
        .update_with(info, None, &facts.name, Part::Status, |current| {
            node::with_status(current, facts, ready, Default::default(), now)
        })
        .await;
    match renewed {
        Ok(_) if ready => super::actor::renew_lease(objects, &facts.name).await,
        Ok(_) => Ok(()),
        Err(e) if e.reason == Reason::NotFound && ready => {
            match objects
                .create_as(&node::node_object(facts, Default::default(), now))
                .await
            {
                Ok(_)
                | Err(ApiError {
                    reason: Reason::AlreadyExists,
                    ..
                }) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Writes `ready` to the Node of every index in `nodes`, `at_once` at a time; how many writes failed.
async fn renew_all(
    objects: &Objects,
    config: &HollowConfig,
    nodes: std::ops::Range<usize>,
    ready: bool,
    at_once: usize,
) -> usize {
    futures::stream::iter(nodes)
        .map(|i| {
            let facts = config.node_facts(i);
            async move { renew(objects, &facts, ready).await.is_err() }
        })
        .buffer_unordered(at_once)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await
}

/// Registers every node, then renews each once per interval, a slot of them every [`hollow::RENEWAL_TICK`].
async fn keep_nodes(objects: Objects, config: Arc<HollowConfig>) {
    let mut backoff =
        crate::informer::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let failed = renew_all(
            &objects,
            &config,
            0..config.count,
            true,
            NODE_WRITES_AT_ONCE,
        )
        .await;
        if failed == 0 {
            break;
        }
        let delay = backoff.next_delay();
        tracing::warn!(
            failed,
            ?delay,
            "cannot register every hollow node yet; retrying"
        );
        tokio::time::sleep(delay).await;
    }
    tracing::info!(nodes = config.count, prefix = %config.prefix, "hollow nodes registered");
    let schedule = Renewals::new(config.count, config.heartbeat_interval);
    let mut tick = tokio::time::interval(hollow::RENEWAL_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    for slot in 0.. {
        tick.tick().await;
        let nodes = schedule.nodes_in(slot);
        let at_once = nodes.len().max(1);
        let failed = renew_all(&objects, &config, nodes, true, at_once).await;
        if failed > 0 {
            tracing::warn!(failed, "hollow node heartbeats failed");
        }
    }
}

impl Actor for HollowNodes {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let config = self.config.clone();
        let on_hollow_node: Filter<HollowPod> = Arc::new(move |p: &HollowPod| {
            p.spec
                .node_name
                .as_deref()
                .is_some_and(|n| config.node_index(n).is_some())
        });
        self.informer = Some(Informer::start(
            self.objects.clone(),
            self.pods.clone(),
            Some(on_hollow_node),
            ctx.address().recipient(),
        ));
        self.renewals = Some(tokio::spawn(keep_nodes(
            self.objects.clone(),
            self.config.clone(),
        )));
        ctx.run_interval(RESYNC_INTERVAL, |act, ctx| {
            if std::mem::take(&mut act.failed) {
                act.resync(ctx);
            }
        });
        tracing::info!(nodes = self.config.count, prefix = %self.config.prefix, "hollow nodes started");
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(task) = self.renewals.take() {
            task.abort();
        }
        tracing::info!("hollow nodes stopped");
    }
}

impl Handler<Change<HollowPod>> for HollowNodes {
    type Result = ();

    fn handle(&mut self, change: Change<HollowPod>, ctx: &mut Context<Self>) {
        match change {
            Change::Applied(pod) => {
                let action = self.tracker.observe(&pod);
                self.enqueue(action, ctx);
            }
            Change::Deleted(pod) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    self.tracker.forget(uid);
                }
            }
            Change::Synced => self.resync(ctx),
        }
    }
}

impl Handler<Shutdown> for HollowNodes {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> Self::Result {
        self.informer = None;
        if let Some(task) = self.renewals.take() {
            task.abort();
        }
        tracing::info!(nodes = self.config.count, "hollow nodes shutting down");
        let (objects, config) = (self.objects.clone(), self.config.clone());
        Box::pin(
            async move {
                // Best effort, as the real agent: schedulers stop sending pods at once rather than after the
                // heartbeat timeout; an unreachable store must not hold the shutdown up.
                let not_ready = renew_all(
                    &objects,
                    &config,
                    0..config.count,
                    false,
                    NODE_WRITES_AT_ONCE,
                );
                if tokio::time::timeout(SHUTDOWN_WRITES, not_ready)
                    .await
                    .is_err()
                {
                    tracing::debug!("not every hollow node could be marked not ready");
                }
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        )
    }
}

/// Running hollow nodes.
#[derive(Debug, Clone)]
pub struct HollowHandle {
    addr: Addr<HollowNodes>,
}

impl HollowHandle {
    /// Stops serving the nodes: no more pods are watched or heartbeats sent, and each Node is marked not ready.
    pub async fn shutdown(self) {
        let _ = self.addr.send(Shutdown).await;
    }
}

/// Starts `config.count` hollow nodes on `bus`. Call inside a running actix `System` (on a tokio runtime). The
/// Nodes are registered in the background (retried until the store answers).
pub fn start_hollow_nodes(
    bus: navarch_bus::Bus,
    config: HollowConfig,
) -> crate::error::Result<HollowHandle> {
    config.validate()?;
    let objects = Objects::new(navarch_bus::store::StoreClient::new(bus));
    let actor = HollowNodes {
        objects,
        ips_given: vec![0; config.count],
        config: Arc::new(config),
        pods: Cache::new(),
        informer: None,
        renewals: None,
        tracker: PodTracker::new(),
        queue: VecDeque::new(),
        in_flight: 0,
        failed: false,
    };
    Ok(HollowHandle {
        addr: actor.start(),
    })
}
