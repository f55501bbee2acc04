//! The scheduler actor: keeps pods and nodes in informers, runs [`placement::schedule`] in rounds, and writes the
//! bindings and `PodScheduled` conditions it decides.
//!
//! Accepts: [`Change<Pod>`], [`Change<Node>`] and [`Change<Namespace>`] from its informers (each asks for a round;
//! namespaces' labels matter to pod affinity terms' `namespaceSelector`), [`crate::Stop`], and
//! its own `RunRound` (also every `retry_interval`).
//! Emits, through [`Objects`] on the store's `store.rpc` subject: one pod write setting `spec.nodeName` and
//! `PodScheduled=True`, a compare-and-swap on the resourceVersion of the cached copy the decision saw (a conflict
//! means the pod changed: the next round decides again); then a Normal `Scheduled` Event ("Successfully assigned
//! ns/pod to node"), not awaited. For a pod that fits nowhere, a status update setting `PodScheduled=False`, reason
//! `Unschedulable`, with the explanation (only when it changed), and a Warning `FailedScheduling` Event with the
//! same explanation (when it changed, else at most once per `retry_interval`; a repeat bumps the Event's count).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;
use futures::future::LocalBoxFuture;
use k8s_openapi::api::core::v1::{Namespace, Node, ObjectReference, Pod};
use navarch_bus::api::admission::Part;
use navarch_bus::api::objects::DeleteOptions;
use navarch_bus::api::{meta, resource, ApiError, Objects, Reason, ResourceInfo};
use tokio::time::Instant;

use super::placement::{self, Placement, Policy};
use super::SchedulerConfig;
use crate::conditions;
use crate::events::{EventRecorder, EventType};
use crate::informer::{Cache, Change, Informer, ObjectKey};

/// A pod this scheduler bound that its pod cache may not show bound yet.
struct Assumed {
    pod: Pod,
    /// The revision of the binding: once the cache reaches it, the cache knows.
    revision: i64,
}

/// Binds pending pods to nodes. Start it with [`super::start_scheduler`].
pub struct Scheduler {
    objects: Objects,
    config: SchedulerConfig,
    pods: Cache<Pod>,
    nodes: Cache<Node>,
    namespaces: Cache<Namespace>,
    informers: Option<(Informer<Pod>, Informer<Node>, Informer<Namespace>)>,
    assumed: HashMap<String, Assumed>,
    events: EventRecorder,
    /// Per unschedulable pod (by uid), the last FailedScheduling message recorded and when.
    failures: HashMap<String, (String, Instant)>,
    /// The revision of the last preemption's writes and when they were made: rounds wait until the pod cache has
    /// reached it, so that the nomination and the victims' deletion are seen (and the same pods are not preempted
    /// twice); at most `retry_interval`, should the cache never get there.
    settling: (i64, Instant),
    /// A round is being carried out.
    running: bool,
    /// A round is queued.
    queued: bool,
    /// Something changed while a round ran: run another one after it.
    again: bool,
}

impl Scheduler {
    pub(super) fn new(objects: Objects, config: SchedulerConfig) -> Self {
        Self {
            events: EventRecorder::new(objects.clone(), config.scheduler_name.clone()),
            failures: HashMap::new(),
            settling: (0, Instant::now()),
            objects,
            config,
            pods: Cache::new(),
            nodes: Cache::new(),
            namespaces: Cache::new(),
            informers: None,
            assumed: HashMap::new(),
            running: false,
            queued: false,
            again: false,
        }
    }

    fn request_round(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            self.again = true;
        } else if !self.queued {
            self.queued = true;
            ctx.notify(RunRound);
        }
    }

    /// The writes for a pod that fits nowhere: `PodScheduled=False` with `message` when it changed (with
    /// `nominated` as its `status.nominatedNodeName`, when preempting: always written then), and a FailedScheduling
    /// event when it changed or `retry_interval` has passed. None when there is nothing to write.
    fn failure(
        &mut self,
        pod: ObjectKey,
        uid: String,
        message: String,
        nominated: Option<String>,
    ) -> Option<LocalBoxFuture<'static, Done>> {
        let wanted = conditions::pod_condition(
            "PodScheduled",
            false,
            Some("Unschedulable"),
            Some(&message),
            meta::now(),
        );
        let current = self.pods.get(&pod);
        let current = current.as_ref().and_then(|p| p.status.as_ref());
        let current = conditions::find(
            current.and_then(|s| s.conditions.as_deref()),
            "PodScheduled",
        );
        let changed = nominated.is_some() || !conditions::same(current, &wanted);
        let retry = self.config.retry_interval;
        let due = self
            .failures
            .get(&uid)
            .is_none_or(|(last, at)| *last != message || at.elapsed() >= retry);
        if !changed && !due {
            return None;
        }
        if due {
            self.failures
                .insert(uid.clone(), (message.clone(), Instant::now()));
        }
        if changed {
            tracing::info!(pod = %pod, %message, "pod is unschedulable");
        }
        let objects = self.objects.clone();
        let events = self.events.clone();
        Some(futures::FutureExt::boxed_local(async move {
            let mut done = Done::default();
            if changed {
                match set_status(&objects, &pod, &uid, wanted, nominated.as_deref()).await {
                    Ok(written) => done.wrote = written,
                    Err(e) => {
                        tracing::debug!(pod = %pod, error = %e, "cannot record that the pod is unschedulable")
                    }
                }
            }
            if due {
                let regarding = pod_reference(&pod, &uid);
                let recorded = events
                    .record(&regarding, EventType::Warning, "FailedScheduling", &message)
                    .await;
                if let Err(e) = recorded {
                    tracing::debug!(pod = %pod, error = %e, "cannot record a FailedScheduling event");
                }
            }
            done
        }))
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        self.queued = false;
        if !self.pods.is_synced() || !self.nodes.is_synced() || !self.namespaces.is_synced() {
            return; // the informers' first lists will ask again
        }
        let seen = self.pods.revision();
        let (written, at) = self.settling;
        if seen < written && at.elapsed() < self.config.retry_interval {
            return; // the cache has yet to show a preemption; its change will ask again
        }
        self.assumed.retain(|_, a| a.revision > seen);
        let all = self.pods.list();
        let uid = |p: &Pod| p.metadata.uid.clone().unwrap_or_default();
        let pending: Vec<&Pod> = all
            .iter()
            .map(Arc::as_ref)
            .filter(|p| placement::is_pending(p, &self.config.scheduler_name))
            .filter(|p| !self.assumed.contains_key(&uid(p)))
            .collect();
        let waiting: HashSet<String> = pending.iter().map(|p| uid(p)).collect();
        self.failures.retain(|uid, _| waiting.contains(uid));
        if pending.is_empty() {
            return;
        }
        let bound: Vec<&Pod> = all
            .iter()
            .map(Arc::as_ref)
            .filter(|p| {
                placement::occupied_node(p).is_some() && !self.assumed.contains_key(&uid(p))
            })
            .chain(self.assumed.values().map(|a| &a.pod))
            .collect();
        let nodes = self.nodes.list();
        let nodes: Vec<&Node> = nodes.iter().map(Arc::as_ref).collect();
        let policy = Policy {
            scheduler_name: self.config.scheduler_name.clone(),
            heartbeat_timeout: self.config.node_heartbeat_timeout,
            percentage_of_nodes_to_score: self.config.percentage_of_nodes_to_score,
        };
        // Ties between equally good nodes are broken at random, as kube-scheduler does; std's RandomState is
        // seeded from the OS's entropy, which is all this needs.
        let seed = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), seen);
        let namespaces: placement::Namespaces = self
            .namespaces
            .list()
            .iter()
            .filter_map(|ns| {
                let labels = ns.metadata.labels.clone().unwrap_or_default();
                Some((ns.metadata.name.clone()?, labels))
            })
            .collect();
        let placements = placement::schedule(
            &pending,
            &nodes,
            &bound,
            &namespaces,
            meta::now(),
            &policy,
            seed,
        );

        let info = resource::of::<Pod>();
        let mut work = Vec::new();
        for p in placements {
            match p {
                Placement::Bind { pod, node, .. } => {
                    if let Some(cached) = self.pods.get(&pod) {
                        let bound = bind(
                            self.objects.clone(),
                            self.events.clone(),
                            info,
                            cached,
                            node,
                        );
                        work.push(futures::FutureExt::boxed_local(async move {
                            Done {
                                assumed: bound.await,
                                wrote: 0,
                            }
                        }));
                    }
                }
                Placement::Unschedulable { pod, uid, message } => {
                    if let Some(w) = self.failure(pod, uid, message, None) {
                        work.push(w);
                    }
                }
                Placement::Preempt {
                    pod,
                    uid,
                    node,
                    victims,
                    message,
                } => {
                    tracing::info!(pod = %pod, node = %node, victims = victims.len(), "preempting");
                    let failure = self.failure(pod, uid.clone(), message, Some(node.clone()));
                    let objects = self.objects.clone();
                    let events = self.events.clone();
                    work.push(futures::FutureExt::boxed_local(async move {
                        let mut done = match failure {
                            Some(f) => f.await,
                            None => Done::default(),
                        };
                        for (victim, victim_uid) in victims {
                            let revision =
                                evict(&objects, &events, &victim, &victim_uid, &uid, &node).await;
                            done.wrote = done.wrote.max(revision);
                        }
                        done
                    }));
                }
            }
        }
        if work.is_empty() {
            return;
        }
        self.running = true;
        ctx.spawn(
            futures::future::join_all(work)
                .into_actor(self)
                .map(|results, act, ctx| {
                    for done in results {
                        if let Some((uid, assumed)) = done.assumed {
                            act.assumed.insert(uid, assumed);
                        }
                        if done.wrote > act.settling.0 {
                            act.settling = (done.wrote, Instant::now());
                        }
                    }
                    act.running = false;
                    if std::mem::take(&mut act.again) {
                        act.request_round(ctx);
                    }
                }),
        );
    }
}

/// What one piece of a round's work leaves behind.
#[derive(Default)]
struct Done {
    /// A pod bound, which the pod cache may not show bound yet.
    assumed: Option<(String, Assumed)>,
    /// The revision of a write the next round must see (0: none).
    wrote: i64,
}

/// Deletes a preemption `victim` (if it still has `victim_uid`) and records a Preempted event on it. The revision
/// of the deletion (0 if it did not happen).
async fn evict(
    objects: &Objects,
    events: &EventRecorder,
    victim: &ObjectKey,
    victim_uid: &str,
    preemptor_uid: &str,
    node: &str,
) -> i64 {
    let options = DeleteOptions {
        uid: Some(victim_uid.to_string()),
        ..Default::default()
    };
    let deleted = objects
        .delete(
            resource::of::<Pod>(),
            victim.namespace(),
            &victim.name,
            &options,
        )
        .await;
    let revision = match deleted {
        Ok(object) => revision_of(&object),
        Err(e) => {
            tracing::debug!(pod = %victim, error = %e, "cannot delete a preemption victim");
            return 0;
        }
    };
    tracing::info!(pod = %victim, node = %node, "preempted");
    let message = format!("Preempted by pod {preemptor_uid} on node {node}");
    let regarding = pod_reference(victim, victim_uid);
    if let Err(e) = events
        .record(&regarding, EventType::Normal, "Preempted", &message)
        .await
    {
        tracing::debug!(pod = %victim, error = %e, "cannot record a Preempted event");
    }
    revision
}

fn revision_of(object: &serde_json::Value) -> i64 {
    meta::resource_version(object)
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// Binds `pod` to `node` if it is still at the version decided on: one compare-and-swap on the cached copy's
/// resourceVersion (no read first) that sets `spec.nodeName` and `PodScheduled=True` together, as kube-apiserver's
/// `pods/binding` does; then records the Scheduled event without waiting for it. The pod as bound, if the binding
/// landed.
async fn bind(
    objects: Objects,
    events: EventRecorder,
    info: &'static ResourceInfo,
    pod: Arc<Pod>,
    node: String,
) -> Option<(String, Assumed)> {
    let key = ObjectKey::of(&pod.metadata);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let old = match serde_json::to_value(pod.as_ref()) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(pod = %key, error = %e, "cannot encode pod");
            return None;
        }
    };
    let scheduled = conditions::pod_condition("PodScheduled", true, None, None, meta::now());
    let mut wanted = match conditions::set_in_pod(old.clone(), &uid, scheduled) {
        Ok(wanted) => wanted,
        Err(e) => {
            tracing::error!(pod = %key, error = %e, "cannot set PodScheduled");
            return None;
        }
    };
    wanted["spec"]["nodeName"] = serde_json::Value::String(node.clone());
    let bound = match objects
        .update_from(
            info,
            key.namespace(),
            &key.name,
            &old,
            wanted,
            &[Part::Main, Part::Status],
        )
        .await
    {
        Ok(admitted) => admitted.object,
        Err(e) if matches!(e.reason, Reason::Conflict | Reason::NotFound) => {
            tracing::debug!(pod = %key, "pod changed since the decision; deciding again");
            return None;
        }
        Err(e) => {
            tracing::warn!(pod = %key, error = %e, "binding failed");
            return None;
        }
    };
    tracing::info!(pod = %key, node = %node, "bound");
    let revision = meta::resource_version(&bound)
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(i64::MAX);
    let message = format!(
        "Successfully assigned {}/{} to {node}",
        key.namespace().unwrap_or_default(),
        key.name
    );
    let regarding = pod_reference(&key, &uid);
    // The event is not part of the binding: the next round need not wait for it (kube-scheduler's event
    // broadcaster records asynchronously too).
    tokio::spawn(async move {
        if let Err(e) = events
            .record(&regarding, EventType::Normal, "Scheduled", &message)
            .await
        {
            tracing::debug!(pod = %regarding.name.unwrap_or_default(), error = %e, "cannot record a Scheduled event");
        }
    });
    let pod: Pod = serde_json::from_value(bound).ok()?;
    Some((uid, Assumed { pod, revision }))
}

/// What an Event about the pod names.
fn pod_reference(key: &ObjectKey, uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: key.namespace().map(str::to_string),
        name: Some(key.name.clone()),
        uid: Some(uid.to_string()),
        ..Default::default()
    }
}

/// Sets the pod's condition and, if given, its `status.nominatedNodeName`. The revision written.
async fn set_status(
    objects: &Objects,
    key: &ObjectKey,
    uid: &str,
    wanted: k8s_openapi::api::core::v1::PodCondition,
    nominated: Option<&str>,
) -> Result<i64, ApiError> {
    let info = resource::of::<Pod>();
    let written = objects
        .update_with(info, key.namespace(), &key.name, Part::Status, |current| {
            let mut next = conditions::set_in_pod(current, uid, wanted.clone())?;
            if let Some(node) = nominated {
                next["status"]["nominatedNodeName"] = serde_json::Value::String(node.to_string());
            }
            Ok(next)
        })
        .await?;
    Ok(revision_of(&written))
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let pods = Informer::start(
            self.objects.clone(),
            self.pods.clone(),
            None,
            ctx.address().recipient(),
        );
        let nodes = Informer::start(
            self.objects.clone(),
            self.nodes.clone(),
            None,
            ctx.address().recipient(),
        );
        let namespaces = Informer::start(
            self.objects.clone(),
            self.namespaces.clone(),
            None,
            ctx.address().recipient(),
        );
        self.informers = Some((pods, nodes, namespaces));
        ctx.run_interval(self.config.retry_interval, |act, ctx| {
            act.request_round(ctx)
        });
        tracing::info!(scheduler = %self.config.scheduler_name, "scheduler started");
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        tracing::info!(scheduler = %self.config.scheduler_name, "scheduler stopped");
    }
}

/// Runs one scheduling round.
#[derive(Message)]
#[rtype(result = "()")]
struct RunRound;

impl Handler<RunRound> for Scheduler {
    type Result = ();

    fn handle(&mut self, _: RunRound, ctx: &mut Context<Self>) {
        self.round(ctx);
    }
}

impl Handler<Change<Pod>> for Scheduler {
    type Result = ();

    fn handle(&mut self, _: Change<Pod>, ctx: &mut Context<Self>) {
        self.request_round(ctx);
    }
}

impl Handler<Change<Node>> for Scheduler {
    type Result = ();

    fn handle(&mut self, _: Change<Node>, ctx: &mut Context<Self>) {
        self.request_round(ctx);
    }
}

impl Handler<Change<Namespace>> for Scheduler {
    type Result = ();

    fn handle(&mut self, _: Change<Namespace>, ctx: &mut Context<Self>) {
        self.request_round(ctx);
    }
}

impl Handler<crate::Stop> for Scheduler {
    type Result = ();

    fn handle(&mut self, _: crate::Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
