//! The HPA controller actor: every sync period it reads each HPA's target scale, the target's pods (from its pod
//! informer) and their usage (asked of the pods' node agents), lets [`super::reconcile`] decide, and writes the
//! target's `spec.replicas`, the HPA's status and its Events.
//!
//! Accepts: [`Change<HorizontalPodAutoscaler>`] (a new HPA, or a changed spec, is synced at once),
//! [`Change<Pod>`] (fills the pod cache only), [`crate::Stop`], and its sync timer. Emits: [`MetricsRequest`]s on
//! `agent.<node>.metrics` of each node running a target pod; through [`Objects`] on `store.rpc`: target reads,
//! `spec.replicas` updates of Deployments and ReplicaSets, HPA status updates and Events
//! (`SuccessfulRescale`, `FailedGetResourceMetric`, `FailedGetScale`, `FailedRescale`,
//! `FailedComputeMetricsReplicas`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, HorizontalPodAutoscalerBehavior};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use navarch_bus::api::admission::Part;
use navarch_bus::api::{resource, selector_matches, ApiError, Objects, Reason, ResourceInfo};
use navarch_bus::metrics::{self, MetricsRequest};
use serde_json::json;

use super::{failed_rescale, reconcile, Decision, History, Scale, Usage};
use crate::events::EventRecorder;
use crate::informer::{Cache, Change, Informer, ObjectKey};

/// The component HPA Events are recorded as (kube-controller-manager's).
const COMPONENT: &str = "horizontal-pod-autoscaler";

/// What one sync read before deciding.
struct Gathered {
    hpa: Arc<HorizontalPodAutoscaler>,
    scale: Result<Scale, String>,
    pods: Vec<Arc<Pod>>,
    usage: HashMap<String, Usage>,
}

/// Scales Deployments and ReplicaSets by their HPAs. Start it with [`crate::controllers::start_controllers`].
pub struct HpaController {
    objects: Objects,
    sync_period: Duration,
    hpas: Cache<HorizontalPodAutoscaler>,
    pods: Cache<Pod>,
    informers: Option<(Informer<HorizontalPodAutoscaler>, Informer<Pod>)>,
    histories: HashMap<ObjectKey, History>,
    /// The generation each HPA was last synced at (a spec change syncs at once).
    synced_generation: HashMap<ObjectKey, Option<i64>>,
    busy: HashSet<ObjectKey>,
    recorder: EventRecorder,
}

impl HpaController {
    pub(crate) fn new(objects: Objects, sync_period: Duration) -> Self {
        Self {
            recorder: EventRecorder::new(objects.clone(), COMPONENT),
            objects,
            sync_period,
            hpas: Cache::new(),
            pods: Cache::new(),
            informers: None,
            histories: HashMap::new(),
            synced_generation: HashMap::new(),
            busy: HashSet::new(),
        }
    }

    fn sync_all(&mut self, ctx: &mut Context<Self>) {
        if !self.hpas.is_synced() || !self.pods.is_synced() {
            return;
        }
        let live: HashSet<ObjectKey> = self
            .hpas
            .list()
            .iter()
            .map(|h| ObjectKey::of(&h.metadata))
            .collect();
        self.histories.retain(|k, _| live.contains(k));
        self.synced_generation.retain(|k, _| live.contains(k));
        for key in live {
            self.sync(key, ctx);
        }
    }

    fn sync(&mut self, key: ObjectKey, ctx: &mut Context<Self>) {
        let Some(hpa) = self.hpas.get(&key) else {
            return;
        };
        if !self.busy.insert(key.clone()) {
            return;
        }
        self.synced_generation
            .insert(key.clone(), hpa.metadata.generation);
        let work = gather(self.objects.clone(), self.pods.clone(), hpa);
        ctx.spawn(work.into_actor(self).map(move |gathered, act, ctx| {
            act.decide(key, gathered, ctx);
        }));
    }

    fn decide(&mut self, key: ObjectKey, gathered: Gathered, ctx: &mut Context<Self>) {
        let now = crate::now();
        let history = self.histories.entry(key.clone()).or_default();
        let pods: Vec<&Pod> = gathered.pods.iter().map(Arc::as_ref).collect();
        let decision = reconcile(
            &gathered.hpa,
            gathered.scale,
            &pods,
            &gathered.usage,
            history,
            now,
        );
        let work = execute(
            self.objects.clone(),
            self.recorder.clone(),
            gathered.hpa,
            decision,
        );
        ctx.spawn(work.into_actor(self).map(move |scaled, act, _| {
            act.busy.remove(&key);
            if let Some((from, to, behavior)) = scaled {
                if let Some(h) = act.histories.get_mut(&key) {
                    h.record_scale(behavior.as_ref(), from, to, now);
                }
            }
        }));
    }
}

/// The target's kind: where its replicas and selector are.
fn target_info(kind: &str) -> Option<&'static ResourceInfo> {
    match kind {
        "Deployment" => Some(resource::of::<Deployment>()),
        "ReplicaSet" => Some(resource::of::<ReplicaSet>()),
        _ => None,
    }
}

/// Reads the target's replicas and selector.
async fn read_target(
    objects: &Objects,
    namespace: &str,
    kind: &str,
    name: &str,
) -> Result<(i32, LabelSelector), String> {
    let info = target_info(kind).ok_or_else(|| {
        format!("the server could not find the requested resource (scale of kind {kind:?} is not supported)")
    })?;
    let object = objects
        .get(info, Some(namespace), name)
        .await
        .map_err(|e| e.message)?;
    let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
    let selector: LabelSelector =
        serde_json::from_value(object["spec"]["selector"].clone()).unwrap_or_default();
    Ok((i32::try_from(replicas).unwrap_or(i32::MAX), selector))
}

/// Reads the target and its pods, and asks the pods' agents for their usage.
async fn gather(objects: Objects, pods: Cache<Pod>, hpa: Arc<HorizontalPodAutoscaler>) -> Gathered {
    let namespace = hpa.metadata.namespace.clone().unwrap_or_default();
    let target = hpa
        .spec
        .as_ref()
        .map(|s| s.scale_target_ref.clone())
        .unwrap_or_default();
    let read = read_target(&objects, &namespace, &target.kind, &target.name).await;
    let (scale, selected) = match read {
        Err(e) => (Err(e), Vec::new()),
        Ok((replicas, selector)) => {
            let empty = selector
                .match_labels
                .as_ref()
                .is_none_or(BTreeMap::is_empty)
                && selector
                    .match_expressions
                    .as_ref()
                    .is_none_or(Vec::is_empty);
            let selected: Vec<Arc<Pod>> = if empty {
                Vec::new()
            } else {
                pods.list_namespace(&namespace)
                    .into_iter()
                    .filter(|p| {
                        let labels = p.metadata.labels.clone().unwrap_or_default();
                        selector_matches(&selector, &labels)
                    })
                    .collect()
            };
            (Ok(Scale { replicas }), selected)
        }
    };
    let usage = usage_of(&objects, &selected).await;
    Gathered {
        hpa,
        scale,
        pods: selected,
        usage,
    }
}

/// The usage of `pods` by name, asked of each of their nodes at once; a node that does not answer leaves its pods
/// unmeasured (which the calculator treats conservatively).
async fn usage_of(objects: &Objects, pods: &[Arc<Pod>]) -> HashMap<String, Usage> {
    let mut by_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for pod in pods {
        let (Some(node), Some(uid), Some(name)) = (
            pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            pod.metadata.uid.clone(),
            pod.metadata.name.clone(),
        ) else {
            continue;
        };
        by_node.entry(node).or_default().push(uid.clone());
        names.insert(uid, name);
    }
    let bus = objects.store().bus().clone();
    let asks = by_node.into_iter().map(|(node, uids)| {
        let bus = bus.clone();
        async move {
            let request = MetricsRequest {
                pod_uids: Some(uids),
            };
            match metrics::fetch(&bus, &node, &request).await {
                Ok(reply) => reply.pods,
                Err(e) => {
                    tracing::debug!(%node, error = %e, "no usage from node");
                    Vec::new()
                }
            }
        }
    });
    let mut usage = HashMap::new();
    for pod in futures::future::join_all(asks).await.into_iter().flatten() {
        let Some(name) = names.get(&pod.uid) else {
            continue;
        };
        let cpu: u64 = pod.containers.iter().map(|c| c.cpu_nanocores).sum();
        let memory: u64 = pod.containers.iter().map(|c| c.memory_bytes).sum();
        let timestamp = k8s_openapi::chrono::DateTime::from_timestamp_millis(pod.timestamp_ms)
            .unwrap_or_else(crate::now);
        usage.insert(
            name.clone(),
            Usage {
                cpu_milli: i64::try_from(cpu / 1_000_000).unwrap_or(i64::MAX),
                memory_bytes: i64::try_from(memory).unwrap_or(i64::MAX),
                timestamp,
                window: Duration::from_millis(pod.window_ms),
            },
        );
    }
    usage
}

/// Writes the scale (if any), the status (if changed) and the Events; returns the scale made, for the history.
async fn execute(
    objects: Objects,
    recorder: EventRecorder,
    hpa: Arc<HorizontalPodAutoscaler>,
    mut decision: Decision,
) -> Option<(i32, i32, Option<HorizontalPodAutoscalerBehavior>)> {
    let key = ObjectKey::of(&hpa.metadata);
    let spec = hpa.spec.clone().unwrap_or_default();
    let previous = hpa.status.clone().unwrap_or_default();
    let mut scaled = None;
    if let Some(r) = decision.rescale.clone() {
        let target = &spec.scale_target_ref;
        let written = match target_info(&target.kind) {
            Some(info) => objects
                .update_with(info, key.namespace(), &target.name, Part::Main, |mut o| {
                    o["spec"]["replicas"] = json!(r.to);
                    Ok(o)
                })
                .await
                .map(|_| ()),
            None => Err(ApiError::internal("unsupported target kind")),
        };
        match written {
            Ok(()) => {
                tracing::info!(hpa = %key, from = r.from, to = r.to, reason = %r.reason, "rescaled");
                scaled = Some((r.from, r.to, spec.behavior.clone()));
            }
            Err(e) => {
                tracing::warn!(hpa = %key, error = %e, "cannot rescale");
                decision = failed_rescale(decision, &previous, &e.message, crate::now());
            }
        }
    }
    if decision.status != previous {
        let info = resource::of::<HorizontalPodAutoscaler>();
        let status = decision.status.clone();
        let written = objects
            .update_with(info, key.namespace(), &key.name, Part::Status, |mut h| {
                h["status"] = serde_json::to_value(&status).map_err(ApiError::internal)?;
                Ok(h)
            })
            .await;
        match written {
            Ok(_) => {}
            Err(e) if e.reason == Reason::NotFound => return scaled,
            Err(e) => tracing::warn!(hpa = %key, error = %e, "cannot write HPA status"),
        }
    }
    let regarding = ObjectReference {
        api_version: Some("autoscaling/v2".into()),
        kind: Some("HorizontalPodAutoscaler".into()),
        namespace: hpa.metadata.namespace.clone(),
        name: hpa.metadata.name.clone(),
        uid: hpa.metadata.uid.clone(),
        resource_version: hpa.metadata.resource_version.clone(),
        ..Default::default()
    };
    for note in decision.events {
        if let Err(e) = recorder
            .record(&regarding, note.type_, note.reason, &note.message)
            .await
        {
            tracing::debug!(hpa = %key, error = %e, "cannot record event");
        }
    }
    scaled
}

impl Actor for HpaController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let hpas = Informer::start(
            self.objects.clone(),
            self.hpas.clone(),
            None,
            ctx.address().recipient(),
        );
        let pods = Informer::start(
            self.objects.clone(),
            self.pods.clone(),
            None,
            ctx.address().recipient(),
        );
        self.informers = Some((hpas, pods));
        ctx.run_interval(self.sync_period, |act, ctx| act.sync_all(ctx));
        tracing::info!(sync_period = ?self.sync_period, "horizontal pod autoscaler started");
    }
}

impl Handler<Change<HorizontalPodAutoscaler>> for HpaController {
    type Result = ();

    fn handle(&mut self, change: Change<HorizontalPodAutoscaler>, ctx: &mut Context<Self>) {
        match change {
            Change::Synced => self.sync_all(ctx),
            Change::Applied(hpa) => {
                let key = ObjectKey::of(&hpa.metadata);
                // Our own status writes come back here too: only a new HPA or a changed spec syncs early.
                if self.synced_generation.get(&key) != Some(&hpa.metadata.generation)
                    && self.pods.is_synced()
                {
                    self.sync(key, ctx);
                }
            }
            Change::Deleted(hpa) => {
                let key = ObjectKey::of(&hpa.metadata);
                self.histories.remove(&key);
                self.synced_generation.remove(&key);
            }
        }
    }
}

impl Handler<Change<Pod>> for HpaController {
    type Result = ();

    fn handle(&mut self, change: Change<Pod>, ctx: &mut Context<Self>) {
        if matches!(change, Change::Synced) {
            self.sync_all(ctx);
        }
    }
}

impl Handler<crate::Stop> for HpaController {
    type Result = ();

    fn handle(&mut self, _: crate::Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
