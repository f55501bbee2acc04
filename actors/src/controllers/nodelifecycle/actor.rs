//! The node lifecycle controller actor: informers on Nodes, node Leases (`kube-node-lease`) and pods; every
//! monitor period it judges each node with the pure core and carries out what differs.
//!
//! Accepts: [`Change<Node>`], [`Change<Lease>`] and [`Change<Pod>`] from its informers (they only fill the caches:
//! the periodic check reads them), [`crate::Stop`], and its own timer (every `monitor_period`).
//! Emits, through [`Objects`] on `store.rpc`: Node status updates (conditions Unknown), Node updates (the
//! lifecycle taints), pod deletes (with a uid precondition; graceful, so a pod of an unreachable node keeps a
//! deletionTimestamp until its agent returns), and Events (`NodeNotReady` / `NodeReady` about nodes,
//! `TaintManagerEviction` about pods).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Taint};
use k8s_openapi::chrono::{DateTime, Utc};
use navarch_bus::api::admission::Part;
use navarch_bus::api::{resource, ApiError, DeleteOptions, Objects, Reason};
use tokio::time::Instant;

use super::{
    evictable, eviction, health, mark_unknown, needs_unknown, observe, taints_differ,
    transition_event, with_taints, Eviction, Health, Probe,
};
use crate::agent::lease::NAMESPACE as LEASE_NAMESPACE;
use crate::events::{EventRecorder, EventType};
use crate::informer::{Cache, Change, Informer, ObjectKey};

/// The component Events are recorded as (kube-controller-manager's node lifecycle controller's).
const COMPONENT: &str = "node-controller";

/// Watches node health, taints nodes and evicts pods. Start it with [`crate::controllers::start_controllers`].
pub struct NodeLifecycleController {
    objects: Objects,
    events: EventRecorder,
    grace: Duration,
    period: Duration,
    nodes: Cache<Node>,
    leases: Cache<Lease>,
    pods: Cache<Pod>,
    informers: Option<(Informer<Node>, Informer<Lease>, Informer<Pod>)>,
    probes: HashMap<String, Probe>,
    /// When a `NoExecute` taint without `timeAdded` (not ours: e.g. `kubectl taint`) was first seen, per node, key
    /// and value: the taint manager counts tolerations from then.
    first_seen: HashMap<(String, String, String), DateTime<Utc>>,
    /// Nodes and pods (by uid) with a write in flight: not looked at again until it is done.
    busy: HashSet<String>,
}

/// How often nodes are judged for a grace period `grace`: a fifth of it, between 100 ms and 5 s
/// (kube-controller-manager's `--node-monitor-period` is 5 s against its 50 s grace).
pub fn monitor_period(grace: Duration) -> Duration {
    (grace / 5).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

impl NodeLifecycleController {
    pub(crate) fn new(objects: Objects, grace: Duration) -> Self {
        Self {
            events: EventRecorder::new(objects.clone(), COMPONENT),
            objects,
            grace,
            period: monitor_period(grace),
            nodes: Cache::new(),
            leases: Cache::new(),
            pods: Cache::new(),
            informers: None,
            probes: HashMap::new(),
            first_seen: HashMap::new(),
            busy: HashSet::new(),
        }
    }

    fn synced(&self) -> bool {
        self.nodes.is_synced() && self.leases.is_synced() && self.pods.is_synced()
    }

    /// One pass: every node judged, every pod on a `NoExecute`-tainted node checked.
    fn monitor(&mut self, ctx: &mut Context<Self>) {
        if !self.synced() {
            return;
        }
        let now = Instant::now();
        let wall = crate::now();
        let nodes = self.nodes.list();
        let names: HashSet<String> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        self.probes.retain(|name, _| names.contains(name));
        self.first_seen
            .retain(|(node, _, _), _| names.contains(node));
        for node in &nodes {
            let Some(name) = node.metadata.name.clone() else {
                continue;
            };
            let lease = self.leases.get(&ObjectKey::new(LEASE_NAMESPACE, &name));
            let probe = observe(self.probes.get(&name), node, lease.as_deref(), now);
            let stale = probe.is_stale(now, self.grace);
            self.probes.insert(name.clone(), probe);
            let health = health(node, stale);
            let unknown = stale && needs_unknown(node);
            if (unknown || taints_differ(node, health)) && self.busy.insert(name.clone()) {
                self.update_node(node.clone(), health, unknown, ctx);
            }
        }
        self.evict(&nodes, wall, ctx);
    }

    fn update_node(
        &mut self,
        node: Arc<Node>,
        health: Health,
        unknown: bool,
        ctx: &mut Context<Self>,
    ) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let key = name.clone();
        let objects = self.objects.clone();
        let events = self.events.clone();
        let event = transition_event(&node, health);
        let work = async move {
            let info = resource::of::<Node>();
            let wall = crate::now();
            if unknown {
                tracing::info!(node = %name, "node stopped reporting; its conditions are now Unknown");
                objects
                    .update_with(info, None, &name, Part::Status, |n| mark_unknown(n, wall))
                    .await?;
            }
            let before = taints_differ(&node, health);
            if before {
                objects
                    .update_with(info, None, &name, Part::Main, |n| {
                        with_taints(n, health, wall)
                    })
                    .await?;
                tracing::info!(node = %name, ?health, "node lifecycle taints updated");
            }
            if let Some((reason, message)) = event {
                let regarding = ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Node".into()),
                    name: Some(name.clone()),
                    uid: node.metadata.uid.clone(),
                    ..Default::default()
                };
                if let Err(e) = events
                    .record(&regarding, EventType::Normal, reason, &message)
                    .await
                {
                    tracing::debug!(node = %name, error = %e, "event not recorded");
                }
            }
            Ok::<_, ApiError>(name)
        };
        ctx.spawn(work.into_actor(self).map(move |result, act, _| {
            act.busy.remove(&key);
            match result {
                Ok(_) => {}
                Err(e) if e.reason == Reason::NotFound => {}
                Err(e) => tracing::warn!(node = %key, error = %e, "node update failed; retrying"),
            }
        }));
    }

    /// Deletes the pods whose tolerations of their node's `NoExecute` taints ran out.
    fn evict(&mut self, nodes: &[Arc<Node>], wall: DateTime<Utc>, ctx: &mut Context<Self>) {
        let tainted: HashMap<&str, Vec<Taint>> = nodes
            .iter()
            .filter_map(|n| {
                let taints: Vec<Taint> = n
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|t| t.effect == "NoExecute")
                    .collect();
                let name = n.metadata.name.as_deref()?;
                (!taints.is_empty()).then_some((name, taints))
            })
            .collect();
        if tainted.is_empty() {
            self.first_seen.clear();
            return;
        }
        for (node, taints) in &tainted {
            for t in taints.iter().filter(|t| t.time_added.is_none()) {
                let key = (
                    node.to_string(),
                    t.key.clone(),
                    t.value.clone().unwrap_or_default(),
                );
                self.first_seen.entry(key).or_insert(wall);
            }
        }
        for pod in self.pods.list() {
            if !evictable(&pod) {
                continue;
            }
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .unwrap_or_default();
            let Some(taints) = tainted.get(node) else {
                continue;
            };
            let added = |t: &Taint| {
                let key = (
                    node.to_string(),
                    t.key.clone(),
                    t.value.clone().unwrap_or_default(),
                );
                self.first_seen.get(&key).copied().unwrap_or(wall)
            };
            if eviction(&pod, taints, wall, added) != Eviction::Now {
                continue;
            }
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if self.busy.insert(uid.clone()) {
                self.delete_pod(pod.clone(), uid, ctx);
            }
        }
    }

    fn delete_pod(&mut self, pod: Arc<Pod>, uid: String, ctx: &mut Context<Self>) {
        let objects = self.objects.clone();
        let events = self.events.clone();
        let key = ObjectKey::of(&pod.metadata);
        let busy = uid.clone();
        let work = async move {
            let options = DeleteOptions {
                uid: Some(uid.clone()),
                ..Default::default()
            };
            objects
                .delete(resource::of::<Pod>(), key.namespace(), &key.name, &options)
                .await?;
            tracing::info!(pod = %key, "evicted from a tainted node");
            let regarding = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: key.namespace().map(str::to_string),
                name: Some(key.name.clone()),
                uid: Some(uid.clone()),
                ..Default::default()
            };
            let message = format!("Marking for deletion Pod {key}");
            if let Err(e) = events
                .record(
                    &regarding,
                    EventType::Normal,
                    "TaintManagerEviction",
                    &message,
                )
                .await
            {
                tracing::debug!(pod = %key, error = %e, "event not recorded");
            }
            Ok::<_, ApiError>(())
        };
        ctx.spawn(work.into_actor(self).map(move |result, act, _| {
            act.busy.remove(&busy);
            match result {
                Ok(()) => {}
                Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {}
                Err(e) => tracing::warn!(error = %e, "pod eviction failed; retrying"),
            }
        }));
    }
}

impl Actor for NodeLifecycleController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let nodes = Informer::start(
            self.objects.clone(),
            self.nodes.clone(),
            None,
            ctx.address().recipient(),
        );
        let only_node_leases: crate::informer::Filter<Lease> =
            Arc::new(|l: &Lease| l.metadata.namespace.as_deref() == Some(LEASE_NAMESPACE));
        let leases = Informer::start(
            self.objects.clone(),
            self.leases.clone(),
            Some(only_node_leases),
            ctx.address().recipient(),
        );
        let pods = Informer::start(
            self.objects.clone(),
            self.pods.clone(),
            None,
            ctx.address().recipient(),
        );
        self.informers = Some((nodes, leases, pods));
        ctx.run_interval(self.period, |act, ctx| act.monitor(ctx));
        tracing::info!(grace = ?self.grace, "node lifecycle controller started");
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        tracing::info!("node lifecycle controller stopped");
    }
}

impl Handler<Change<Node>> for NodeLifecycleController {
    type Result = ();

    fn handle(&mut self, _: Change<Node>, _: &mut Context<Self>) {}
}

impl Handler<Change<Lease>> for NodeLifecycleController {
    type Result = ();

    fn handle(&mut self, _: Change<Lease>, _: &mut Context<Self>) {}
}

impl Handler<Change<Pod>> for NodeLifecycleController {
    type Result = ();

    fn handle(&mut self, _: Change<Pod>, _: &mut Context<Self>) {}
}

impl Handler<crate::Stop> for NodeLifecycleController {
    type Result = ();

    fn handle(&mut self, _: crate::Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
