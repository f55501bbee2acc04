//! The garbage collector actor: one informer per kind in the registry ([`RESOURCES`], so a kind added there is
//! collected too) keeps the metadata of every object; changes queue the objects concerned; workers judge one object
//! at a time and carry out the decision.
//!
//! The caches only say what to look at and spare reads when every owner is plainly there: before deleting or
//! changing anything the collector reads the dependent and its owners from the store (a cache may not show an owner
//! created a moment ago), and an owner's dependents are listed from the store before a finalizer is removed.
//!
//! Accepts: [`Change<PartialObject>`] from its informers (an object with owners or awaiting the collector queues
//! itself; a deleted one queues its owners and its dependents), [`crate::Stop`], and its own timers (queue wake-ups,
//! a resync of every such object each `resync_interval`).
//! Emits, through [`Objects`] on `store.rpc`: deletes of dependents (with a uid precondition and a propagation),
//! updates removing owner references from dependents, and updates removing the `orphan` and `foregroundDeletion`
//! finalizers from owners (which delete the owner when it was the last finalizer).

use std::time::Duration;

use actix::prelude::*;
use navarch_bus::api::admission::Part;
use navarch_bus::api::{meta, ApiError, DeleteOptions, Objects, Reason, RESOURCES};
use serde_json::Value;
use tokio::time::Instant;

use crate::controllers::wake::Wake;

use super::{
    finalize_owner, judge_dependent, kind_index, owner_item, owner_state, Dependent,
    DependentAction, Item, OwnerAction, OwnerState, PartialObject,
};
use crate::controllers::queue::WorkQueue;
use crate::controllers::ControllersConfig;
use crate::informer::{Cache, Change, Informer, Keyed};

/// How soon an owner waiting for its dependents is looked at again even without an event about them.
const OWNER_RECHECK: Duration = Duration::from_secs(2);

/// Deletes what lost its owners and finalizes owners deleted with Orphan or Foreground propagation. Start it with
/// [`crate::controllers::start_controllers`].
pub struct GarbageCollector {
    objects: Objects,
    config: ControllersConfig,
    /// One cache per kind, in the order of [`RESOURCES`].
    caches: Vec<Cache<PartialObject>>,
    informers: Vec<Informer<PartialObject>>,
    queue: WorkQueue<Item>,
    busy: usize,
    wake: Wake,
}

impl GarbageCollector {
    pub(crate) fn new(objects: Objects, config: ControllersConfig) -> Self {
        let queue = WorkQueue::new(config.retry_base, config.retry_max);
        Self {
            objects,
            config,
            caches: RESOURCES.iter().map(|_| Cache::new()).collect(),
            informers: Vec::new(),
            queue,
            busy: 0,
            wake: Wake::default(),
        }
    }

    /// Queues every object that has owners or awaits the collector.
    fn resync(&mut self) {
        for (kind, cache) in self.caches.iter().enumerate() {
            for object in cache.list() {
                if !object.owner_references().is_empty() || object.awaits_collector() {
                    self.queue.add(Item {
                        kind,
                        key: object.key(),
                    });
                }
            }
        }
    }

    /// Queues the owners `object` names that are known to the caches.
    fn queue_owners(&mut self, object: &PartialObject) {
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        for reference in object.owner_references() {
            if let Some(item) = owner_item(&namespace, reference) {
                self.queue.add(item);
            }
        }
    }

    /// Queues every cached object that names `uid` as an owner.
    fn queue_dependents(&mut self, uid: &str) {
        if uid.is_empty() {
            return;
        }
        let mut found = Vec::new();
        for (kind, cache) in self.caches.iter().enumerate() {
            for object in cache.list() {
                if object.owner_references().iter().any(|r| r.uid == uid) {
                    found.push(Item {
                        kind,
                        key: object.key(),
                    });
                }
            }
        }
        for item in found {
            self.queue.add(item);
        }
    }

    /// Hands ready items to free workers, and arranges to wake up when the next delayed item is due.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        while self.busy < self.config.workers {
            let Some(item) = self.queue.pop(now) else {
                break;
            };
            self.busy += 1;
            let cached = self.caches[item.kind].get(&item.key);
            let snapshot = Snapshot {
                caches: self.caches.clone(),
            };
            let work = process(self.objects.clone(), item.clone(), cached, snapshot);
            ctx.spawn(work.into_actor(self).map(move |result, act, ctx| {
                act.finish(item, result, ctx);
            }));
        }
        self.wake
            .arm(self.queue.next_due(), ctx, |act| &mut act.wake, Self::pump);
    }

    fn finish(&mut self, item: Item, result: Result<Outcome, ApiError>, ctx: &mut Context<Self>) {
        self.busy -= 1;
        self.queue.done(&item);
        match result {
            Ok(outcome) => {
                self.queue.forget(&item);
                for next in outcome.collect {
                    self.queue.add(next);
                }
                if outcome.waiting {
                    self.queue.add_after(item, Instant::now() + OWNER_RECHECK);
                }
            }
            Err(e) => {
                let delay = self.queue.retry(item.clone(), Instant::now());
                tracing::warn!(kind = item.info().kind, object = %item.key, error = %e, ?delay,
                    "garbage collection failed; retrying");
            }
        }
        self.pump(ctx);
    }
}

/// The caches, for a worker to look owners and dependents up in.
struct Snapshot {
    caches: Vec<Cache<PartialObject>>,
}

impl Snapshot {
    fn get(&self, item: &Item) -> Option<std::sync::Arc<PartialObject>> {
        self.caches.get(item.kind)?.get(&item.key)
    }

    fn has_dependents(&self, uid: &str) -> bool {
        !uid.is_empty()
            && self.caches.iter().any(|c| {
                c.list()
                    .iter()
                    .any(|o| o.owner_references().iter().any(|r| r.uid == uid))
            })
    }
}

/// What one pass over an item leaves to do.
#[derive(Debug, Default)]
struct Outcome {
    /// Dependents to look at (their owner waits for them).
    collect: Vec<Item>,
    /// The item is an owner still waiting for its dependents.
    waiting: bool,
}

/// One pass over `item`: finalize it if it is an owner awaiting the collector, else judge it as a dependent.
async fn process(
    objects: Objects,
    item: Item,
    cached: Option<std::sync::Arc<PartialObject>>,
    snapshot: Snapshot,
) -> Result<Outcome, ApiError> {
    let Some(cached) = cached else {
        return Ok(Outcome::default());
    };
    if cached.awaits_collector() {
        return finalize(&objects, &item).await;
    }
    if cached.owner_references().is_empty() {
        return Ok(Outcome::default());
    }
    // The caches' word is enough to keep an object; never to change one.
    let namespace = cached.metadata.namespace.clone().unwrap_or_default();
    let states: Vec<OwnerState> = cached
        .owner_references()
        .iter()
        .map(|r| {
            let found = owner_item(&namespace, r).and_then(|i| snapshot.get(&i));
            owner_state(r, found.as_deref(), &namespace)
        })
        .collect();
    if judge_dependent(&cached, &states, true) == DependentAction::Keep {
        return Ok(Outcome::default());
    }
    collect(&objects, &item, &snapshot).await?;
    Ok(Outcome::default())
}

/// Reads `item` from the store, if it exists.
async fn read(objects: &Objects, item: &Item) -> Result<Option<(Value, PartialObject)>, ApiError> {
    match objects
        .get(item.info(), item.key.namespace(), &item.key.name)
        .await
    {
        Ok(value) => {
            let partial = serde_json::from_value(value.clone()).map_err(ApiError::internal)?;
            Ok(Some((value, partial)))
        }
        Err(e) if e.reason == Reason::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Judges the dependent `item` on what the store holds now, and carries the decision out.
async fn collect(objects: &Objects, item: &Item, snapshot: &Snapshot) -> Result<(), ApiError> {
    let Some((_, dependent)) = read(objects, item).await? else {
        return Ok(());
    };
    let namespace = dependent.metadata.namespace.clone().unwrap_or_default();
    let mut states = Vec::new();
    for reference in dependent.owner_references() {
        let found = match owner_item(&namespace, reference) {
            Some(owner) => read(objects, &owner).await?.map(|(_, o)| o),
            None => None,
        };
        states.push(owner_state(reference, found.as_ref(), &namespace));
    }
    let action = judge_dependent(
        &dependent,
        &states,
        snapshot.has_dependents(dependent.uid()),
    );
    let info = item.info();
    let uid = dependent.uid().to_string();
    match action {
        DependentAction::Keep => Ok(()),
        DependentAction::RemoveOwnerReferences(uids) => {
            let result = objects
                .update_with(
                    info,
                    item.key.namespace(),
                    &item.key.name,
                    Part::Main,
                    |mut o| {
                        same_uid(&o, &uid)?;
                        if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                            refs.retain(|r| !uids.iter().any(|u| r["uid"] == u.as_str()));
                        }
                        Ok(o)
                    },
                )
                .await;
            tolerate_gone(result.map(|_| {
                tracing::info!(kind = info.kind, object = %item.key, owners = ?uids,
                    "removed references to owners that are gone");
            }))
        }
        DependentAction::Delete(propagation) => {
            let options = DeleteOptions {
                uid: Some(uid),
                propagation: Some(propagation),
                ..Default::default()
            };
            let result = objects
                .delete(info, item.key.namespace(), &item.key.name, &options)
                .await;
            tolerate_gone(result.map(|_| {
                tracing::info!(kind = info.kind, object = %item.key, propagation = propagation.as_str(),
                    "deleted: no owner keeps it");
            }))
        }
    }
}

/// Finalizes the owner `item` (being deleted with the `orphan` or `foregroundDeletion` finalizer) on what the
/// store holds now.
async fn finalize(objects: &Objects, item: &Item) -> Result<Outcome, ApiError> {
    let Some((_, owner)) = read(objects, item).await? else {
        return Ok(Outcome::default());
    };
    let dependents = live_dependents(objects, item, &owner).await?;
    let mut outcome = Outcome::default();
    let uid = owner.uid().to_string();
    for action in finalize_owner(&owner, &dependents) {
        match action {
            OwnerAction::Orphan(dependent) => {
                let result = objects
                    .update_with(
                        dependent.info(),
                        dependent.key.namespace(),
                        &dependent.key.name,
                        Part::Main,
                        |mut o| {
                            if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                                refs.retain(|r| r["uid"] != uid.as_str());
                            }
                            Ok(o)
                        },
                    )
                    .await;
                tolerate_gone(result.map(|_| {
                    tracing::info!(kind = dependent.info().kind, object = %dependent.key,
                        owner = %item.key, "orphaned");
                }))?;
            }
            OwnerAction::Collect(dependent) => {
                outcome.collect.push(dependent);
                outcome.waiting = true;
            }
            OwnerAction::RemoveFinalizer(finalizer) => {
                let result = objects
                    .update_with(
                        item.info(),
                        item.key.namespace(),
                        &item.key.name,
                        Part::Main,
                        |mut o| {
                            same_uid(&o, &uid)?;
                            if let Some(list) = o["metadata"]["finalizers"].as_array_mut() {
                                list.retain(|f| f != finalizer);
                            }
                            Ok(o)
                        },
                    )
                    .await;
                tolerate_gone(result.map(|_| {
                    tracing::info!(kind = item.info().kind, object = %item.key, finalizer,
                        "dependents handled; finalizer removed");
                }))?;
            }
        }
    }
    Ok(outcome)
}

/// Every object in the store that names `owner` as an owner: in its namespace for a namespaced owner, anywhere for
/// a cluster-scoped one.
async fn live_dependents(
    objects: &Objects,
    item: &Item,
    owner: &PartialObject,
) -> Result<Vec<Dependent>, ApiError> {
    let namespace = item
        .info()
        .namespaced
        .then_some(item.key.namespace.as_str());
    let mut dependents = Vec::new();
    for (kind, info) in RESOURCES.iter().enumerate() {
        if namespace.is_some() && !info.namespaced {
            continue; // a namespaced owner has no cluster-scoped dependents
        }
        let (list, _) = objects.list(info, namespace).await?;
        for value in list {
            let Ok(object) = serde_json::from_value::<PartialObject>(value) else {
                continue;
            };
            dependents.extend(Dependent::of(kind, &object, owner.uid()));
        }
    }
    Ok(dependents)
}

/// Refuses a change to an object that is no longer the one judged (same name, another uid).
fn same_uid(object: &Value, uid: &str) -> Result<(), ApiError> {
    if meta::uid(object) == Some(uid) {
        Ok(())
    } else {
        Err(ApiError::new(Reason::Conflict, "the object was replaced"))
    }
}

/// A write that found its object gone or replaced has nothing left to do: the object's next event says the rest.
fn tolerate_gone(result: Result<(), ApiError>) -> Result<(), ApiError> {
    match result {
        Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => Ok(()),
        other => other,
    }
}

impl Actor for GarbageCollector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.informers = RESOURCES
            .iter()
            .zip(&self.caches)
            .map(|(info, cache)| {
                Informer::start_kind(
                    info,
                    self.objects.clone(),
                    cache.clone(),
                    None,
                    ctx.address().recipient(),
                )
            })
            .collect();
        ctx.run_interval(self.config.resync_interval, |act, ctx| {
            act.resync();
            act.pump(ctx);
        });
        tracing::info!(kinds = RESOURCES.len(), "garbage collector started");
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        tracing::info!("garbage collector stopped");
    }
}

impl Handler<Change<PartialObject>> for GarbageCollector {
    type Result = ();

    fn handle(&mut self, change: Change<PartialObject>, ctx: &mut Context<Self>) {
        match change {
            Change::Synced => self.resync(),
            Change::Applied(object) => {
                if let Some(kind) = kind_index(&object.api_version, &object.kind) {
                    if !object.owner_references().is_empty() || object.awaits_collector() {
                        self.queue.add(Item {
                            kind,
                            key: object.key(),
                        });
                    }
                }
            }
            Change::Deleted(object) => {
                self.queue_owners(&object);
                self.queue_dependents(object.uid());
            }
        }
        self.pump(ctx);
    }
}

impl Handler<crate::Stop> for GarbageCollector {
    type Result = ();

    fn handle(&mut self, _: crate::Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
