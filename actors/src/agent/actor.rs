//! The node agent actor: registers the Node and renews its heartbeat, watches the pods bound to it, feeds each
//! pod's [`PodMachine`] and carries out its commands through the runtime and the store.
//!
//! At start it first asks the runtime what an earlier agent on this node left ([`Runtime::recover`]), then starts its
//! pod informer: each pod takes over its own containers ([`PodEvent::Adopted`]); after the first full list, whatever
//! no pod claimed is killed and removed (orphans).
//!
//! Accepts: [`Change<Pod>`] from its informer (pods whose `spec.nodeName` is this node), [`Shutdown`], and its own
//! timers (heartbeat every `heartbeat_interval`, the node's Lease renewal every 10 s, a pod tick every `sync_interval`, which is also when probes are
//! checked for being due) and runtime outcomes (container started, failed to start, exited; probe results).
//! Emits, through [`Objects`] on the store's `store.rpc` subject: Node create / status updates (heartbeat, with memory
//! and disk pressure read then) / label, registration taint and pressure taint updates, Lease create / renewals,
//! pod status updates (status part; one write in flight per pod, in order), and pod deletes (grace 0, uid
//! precondition) once a deleted pod's containers have stopped. Through the [`Runtime`]: container starts, stops (after
//! the `preStop` hook) and probe execs; probes' HTTP and TCP connections to the pod's IP.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, PodStatus};
use navarch_bus::api::admission::Part;
use navarch_bus::api::{resource, ApiError, DeleteOptions, Objects, Reason};

use super::config::{ConfigError, PodIps};
use super::lease;
use super::lifecycle::adopt::{self, Adopted};
use super::lifecycle::{Command, PodEvent, PodMachine};
use super::node::{self, NodeFacts};
use super::pressure::Pressure;
use super::{host::HostFacts, AgentConfig};
use crate::informer::{Cache, Change, Filter, Informer, ObjectKey};
use crate::runtime::{ContainerId, ContainerSpec, Runtime, RuntimeError, StopSignal};

/// Stops the agent: no more pods are watched, every container is stopped, the Node is marked not ready, then the
/// actor stops. Answered once that is done.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// A write to a pod object; one per pod is in flight at a time, so they land in order.
enum Write {
    Status(Box<PodStatus>),
    Delete,
}

struct PodWorker {
    key: ObjectKey,
    machine: PodMachine,
    writes: VecDeque<Write>,
    writing: bool,
}

/// Runs the pods bound to one node. Start it with [`super::start_agent`].
pub struct NodeAgent {
    objects: Objects,
    config: AgentConfig,
    runtime: Arc<dyn Runtime>,
    facts: NodeFacts,
    pods: Cache<Pod>,
    informer: Option<Informer<Pod>>,
    workers: HashMap<String, PodWorker>,
    /// What the runtime found left by an earlier agent on this node, per pod uid, until the pods are known: each
    /// pod claims its own when its worker is made; whatever is left after the first full list is an orphan.
    /// None until the runtime has answered (the pod informer starts then).
    found: Option<HashMap<String, Vec<ContainerId>>>,
    labels_synced: bool,
    heartbeat_in_flight: bool,
    lease_in_flight: bool,
    stopping: bool,
    /// Pods whose volumes are being compared with their objects.
    resyncing: HashSet<String>,
    /// The cluster DNS server pods with `dnsPolicy: ClusterFirst` get as their nameserver; None: they keep the
    /// host's resolv.conf.
    cluster_dns: Option<Ipv4Addr>,
    /// The kubelet's Events about pods, written off this actor's path.
    events: super::events::PodEvents,
}

impl NodeAgent {
    pub(super) fn new(
        objects: Objects,
        config: AgentConfig,
        runtime: Arc<dyn Runtime>,
        cluster_dns: Option<Ipv4Addr>,
    ) -> Self {
        let facts = NodeFacts {
            name: config.node_name.clone(),
            labels: config.labels.clone(),
            host: HostFacts::read(config.node_ip),
            max_pods: config.max_pods,
            runtime_version: runtime.version(),
            pod_cidr: runtime.pod_cidr(),
            taints: config.taints.clone(),
            reserved: config.reserved,
        };
        Self {
            events: super::events::PodEvents::start(objects.clone()),
            objects,
            config,
            runtime,
            facts,
            pods: Cache::new(),
            informer: None,
            workers: HashMap::new(),
            found: None,
            labels_synced: false,
            heartbeat_in_flight: false,
            lease_in_flight: false,
            stopping: false,
            resyncing: HashSet::new(),
            cluster_dns,
        }
    }

    /// The cache of this node's pods (shared with the metrics server, which names pods by their uid).
    pub(super) fn pod_cache(&self) -> Cache<Pod> {
        self.pods.clone()
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.heartbeat_in_flight || self.stopping {
            return;
        }
        self.heartbeat_in_flight = true;
        let (objects, facts, labels, data_dir) = (
            self.objects.clone(),
            self.facts.clone(),
            !self.labels_synced,
            self.config.data_dir.clone(),
        );
        let work = async move {
            let pressure = tokio::task::spawn_blocking(move || Pressure::read(&data_dir))
                .await
                .unwrap_or_default();
            sync_node(&objects, &facts, true, pressure, labels).await
        };
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| {
            act.heartbeat_in_flight = false;
            match result {
                Ok(()) => {
                    if !act.labels_synced {
                        // The Node is there now: its lease need not wait for the lease timer.
                        act.renew_lease(ctx);
                    }
                    act.labels_synced = true;
                }
                Err(e) => {
                    tracing::warn!(node = %act.facts.name, error = %e, "node heartbeat failed")
                }
            }
        }));
    }

    fn renew_lease(&mut self, ctx: &mut Context<Self>) {
        if self.lease_in_flight || self.stopping {
            return;
        }
        self.lease_in_flight = true;
        let (objects, name) = (self.objects.clone(), self.facts.name.clone());
        let work = async move { renew_lease(&objects, &name).await };
        ctx.spawn(work.into_actor(self).map(|result, act, _| {
            act.lease_in_flight = false;
            if let Err(e) = result {
                tracing::warn!(node = %act.facts.name, error = %e, "node lease renewal failed");
            }
        }));
    }

    /// Brings the workers in line with one pod as the cache shows it.
    fn observe(&mut self, pod: &Pod, ctx: &mut Context<Self>) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        if self.workers.contains_key(&uid) {
            if pod.metadata.deletion_timestamp.is_some() {
                let grace = pod
                    .metadata
                    .deletion_grace_period_seconds
                    .unwrap_or(30)
                    .max(0);
                let grace = Duration::from_secs(u64::try_from(grace).unwrap_or(0));
                self.feed(&uid, PodEvent::DeletionRequested { grace }, ctx);
            }
            return;
        }
        let finished = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if finished || self.stopping {
            return; // nothing to run (what an earlier agent left of it is an orphan)
        }
        let found = self
            .found
            .as_mut()
            .and_then(|f| f.remove(&uid))
            .unwrap_or_default();
        // A pod that ran here before the agent restarted resumes from what runs and from its last report.
        let reported = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|c| !c.is_empty());
        let adopted = (reported || !found.is_empty()).then(|| {
            let (keep, stale) = adopt::choose(pod, &found);
            self.remove_orphans(stale, ctx);
            let scheme = self.scheme();
            keep.into_iter()
                .map(|id| Adopted {
                    container_id: format!("{scheme}://{id}"),
                    container: id.container,
                    attempt: id.attempt,
                })
                .collect::<Vec<_>>()
        });
        let worker = PodWorker {
            key: ObjectKey::of(&pod.metadata),
            machine: PodMachine::new(self.facts.host.ip.to_string()),
            writes: VecDeque::new(),
            writing: false,
        };
        self.workers.insert(uid.clone(), worker);
        self.prepare_then_assign(uid, pod.clone(), adopted, ctx);
    }

    /// The runtime's name, which prefixes container ids in statuses.
    fn scheme(&self) -> String {
        self.runtime
            .version()
            .split("://")
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// Kills and removes containers no pod of this node claims (left by an earlier agent), and releases their pods.
    fn remove_orphans(&mut self, ids: Vec<ContainerId>, ctx: &mut Context<Self>) {
        if ids.is_empty() {
            return;
        }
        let runtime = self.runtime.clone();
        let claimed: std::collections::HashSet<String> = self.workers.keys().cloned().collect();
        ctx.spawn(
            async move {
                let mut pods = std::collections::BTreeSet::new();
                for id in ids {
                    tracing::info!(container = %id, "killing a container no pod of this node claims");
                    if let Err(e) = runtime.stop(&id, StopSignal::Kill, Duration::ZERO).await {
                        tracing::warn!(container = %id, error = %e, "cannot stop orphaned container");
                    }
                    let _ = runtime.remove(&id).await;
                    pods.insert(id.pod_uid);
                }
                for uid in pods.iter().filter(|u| !claimed.contains(*u)) {
                    runtime.release_pod(uid).await;
                }
            }
            .into_actor(self),
        );
    }

    /// Sets up the pod's network through the runtime, then hands the pod to its machine (with the pod's own IP
    /// when it got one), as the cache shows it by then (so a deletion requested meanwhile starts nothing). A pod
    /// forgotten meanwhile has its network released again.
    ///
    /// With `adopted` (the agent restarted and the pod ran here before), the machine resumes from the containers
    /// found and the pod's last report instead, and the found containers are watched.
    fn prepare_then_assign(
        &mut self,
        uid: String,
        pod: Pod,
        adopted: Option<Vec<Adopted>>,
        ctx: &mut Context<Self>,
    ) {
        let runtime = self.runtime.clone();
        let prepared_uid = uid.clone();
        let work = async move { runtime.prepare_pod(&prepared_uid).await };
        ctx.spawn(work.into_actor(self).map(move |result, act, ctx| {
            let Some(worker) = act.workers.get_mut(&uid) else {
                let runtime = act.runtime.clone();
                actix::spawn(async move { runtime.release_pod(&uid).await });
                return;
            };
            match result {
                Ok(network) => {
                    if let Some(ip) = network.ip {
                        worker.machine.set_pod_ip(ip.to_string());
                    }
                }
                // Its containers fail to start with the same error and say so in their status.
                Err(e) => tracing::error!(pod = %worker.key, error = %e, "cannot set up the pod's network"),
            }
            let latest = act
                .pods
                .get(&worker.key)
                .filter(|p| p.metadata.uid.as_deref() == Some(uid.as_str()))
                .map_or(pod, |p| (*p).clone());
            let Some(adopted) = adopted else {
                act.feed(&uid, PodEvent::Assigned(Box::new(latest)), ctx);
                return;
            };
            let watched: Vec<ContainerId> = adopted
                .iter()
                .map(|a| ContainerId {
                    pod_uid: uid.clone(),
                    container: a.container.clone(),
                    attempt: a.attempt,
                })
                .collect();
            let event = PodEvent::Adopted {
                pod: Box::new(latest),
                containers: adopted,
            };
            act.feed(&uid, event, ctx);
            for id in watched {
                act.watch_exit(uid.clone(), id, ctx);
            }
        }));
    }

    fn feed(&mut self, uid: &str, event: PodEvent, ctx: &mut Context<Self>) {
        let Some(worker) = self.workers.get_mut(uid) else {
            return;
        };
        let commands = worker.machine.handle(event, crate::now());
        for command in commands {
            self.execute(uid, command, ctx);
        }
    }

    fn execute(&mut self, uid: &str, command: Command, ctx: &mut Context<Self>) {
        let Some(worker) = self.workers.get_mut(uid) else {
            return;
        };
        match command {
            Command::StartContainer { container, attempt } => {
                if self.stopping {
                    return;
                }
                let Some(pod) = worker.machine.pod().cloned() else {
                    return;
                };
                let ips = PodIps {
                    pod_ip: worker.machine.pod_ip().to_string(),
                    host_ip: self.facts.host.ip.to_string(),
                };
                let key = worker.key.clone();
                let pod_dir =
                    crate::runtime::pod_dir(&self.config.data_dir, &key.namespace, &key.name, uid);
                let (objects, runtime) = (self.objects.clone(), self.runtime.clone());
                let scheme = self.scheme();
                let uid = uid.to_string();
                let name = container.clone();
                let dns = self.cluster_dns;
                let work = async move {
                    let spec = configure(&objects, pod, key, pod_dir, &name, attempt, ips, dns)
                        .await
                        .map_err(Failure::Config)?;
                    runtime
                        .start(&spec)
                        .await
                        .map(|pid| (spec.id, pid))
                        .map_err(Failure::Runtime)
                };
                ctx.spawn(work.into_actor(self).map(move |result, act, ctx| match result {
                    Ok((id, pid)) => {
                        tracing::info!(container = %id, pid, "container started");
                        act.note(&uid, |pod| super::events::started(pod, &container));
                        let container_id = format!("{scheme}://{id}");
                        act.feed(&uid, PodEvent::Started { container, attempt, container_id }, ctx);
                        act.watch_exit(uid, id, ctx);
                    }
                    Err(Failure::Config(e)) => {
                        tracing::info!(pod = %uid, container = %container, error = %e, "cannot configure container");
                        act.note(&uid, |pod| vec![super::events::config_failed(pod, &container, &e.0)]);
                        let failed = PodEvent::ConfigFailed {
                            container,
                            attempt,
                            reason: "CreateContainerConfigError".into(),
                            message: e.0,
                        };
                        act.feed(&uid, failed, ctx);
                    }
                    Err(Failure::Runtime(e)) => {
                        tracing::warn!(pod = %uid, container = %container, error = %e, "container failed to start");
                        let message = e.to_string();
                        act.note(&uid, |pod| vec![super::events::start_failed(pod, &container, &message)]);
                        let failed = PodEvent::StartFailed {
                            container,
                            attempt,
                            reason: e.reason().to_string(),
                            message: e.to_string(),
                        };
                        act.feed(&uid, failed, ctx);
                    }
                }));
            }
            Command::KillContainer {
                container,
                attempt,
                signal,
                grace,
                pre_stop,
                reason,
            } => {
                if let Some(reason) = &reason {
                    tracing::info!(pod = %worker.key, "{reason}");
                }
                if let Some(pod) = worker.machine.pod() {
                    self.events
                        .emit([super::events::killing(pod, &container, reason.as_deref())]);
                }
                let id = ContainerId {
                    pod_uid: uid.to_string(),
                    container,
                    attempt,
                };
                let runtime = self.runtime.clone();
                ctx.spawn(
                    async move {
                        let mut grace = grace;
                        if let Some(hook) = pre_stop {
                            // The hook's time counts against the grace period, as the kubelet's.
                            let began = tokio::time::Instant::now();
                            let outcome = super::prober::run(runtime.as_ref(), &id, &hook, grace).await;
                            if !outcome.success {
                                tracing::info!(container = %id, message = %outcome.message, "preStop hook failed");
                            }
                            grace = grace.saturating_sub(began.elapsed());
                        }
                        if let Err(e) = runtime.stop(&id, signal, grace).await {
                            tracing::warn!(container = %id, error = %e, "cannot stop container");
                        }
                    }
                    .into_actor(self),
                );
            }
            Command::RunProbe {
                container,
                attempt,
                kind,
                action,
                timeout,
            } => {
                let id = ContainerId {
                    pod_uid: uid.to_string(),
                    container,
                    attempt,
                };
                let runtime = self.runtime.clone();
                let uid = uid.to_string();
                let work = async move {
                    let outcome = super::prober::run(runtime.as_ref(), &id, &action, timeout).await;
                    (id, outcome)
                };
                ctx.spawn(work.into_actor(self).map(move |(id, outcome), act, ctx| {
                    if !outcome.success {
                        tracing::info!(container = %id, "{} probe failed: {}", kind.name(), outcome.message);
                        act.note(&uid, |pod| {
                            vec![super::events::unhealthy(pod, &id.container, kind.name(), &outcome.message)]
                        });
                    }
                    let result = PodEvent::ProbeResult {
                        container: id.container,
                        attempt: id.attempt,
                        kind,
                        success: outcome.success,
                    };
                    act.feed(&uid, result, ctx);
                }));
            }
            Command::ReportStatus(status) => {
                if let Some(pod) = worker.machine.pod() {
                    self.events.reported(pod, &status);
                }
                if let Some(Write::Status(_)) = worker.writes.back() {
                    worker.writes.pop_back(); // only the newest status matters
                }
                worker.writes.push_back(Write::Status(status));
                self.flush(uid, ctx);
            }
            Command::DeletePodObject { .. } => {
                worker.writes.push_back(Write::Delete);
                self.flush(uid, ctx);
            }
            Command::Forget => {
                let Some(worker) = self.workers.remove(uid) else {
                    return;
                };
                tracing::info!(pod = %worker.key, "pod forgotten");
                self.events.forget(uid);
                let runtime = self.runtime.clone();
                let pod_uid = uid.to_string();
                let ids: Vec<ContainerId> = worker
                    .machine
                    .containers()
                    .iter()
                    .flat_map(|c| {
                        (0..=c.attempt).map(|attempt| ContainerId {
                            pod_uid: uid.to_string(),
                            container: c.name.clone(),
                            attempt,
                        })
                    })
                    .collect();
                // The pod is gone for good: so are its logs (as the kubelet removes a deleted pod's directory).
                let dir = crate::runtime::pod_dir(
                    &self.config.data_dir,
                    &worker.key.namespace,
                    &worker.key.name,
                    uid,
                );
                ctx.spawn(
                    async move {
                        for id in ids {
                            let _ = runtime.remove(&id).await;
                        }
                        runtime.release_pod(&pod_uid).await;
                        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
                            if e.kind() != std::io::ErrorKind::NotFound {
                                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove pod directory");
                            }
                        }
                    }
                    .into_actor(self),
                );
            }
        }
    }

    /// Emits the Events `make` says about the pod `uid` (nothing if its worker is gone).
    fn note(&self, uid: &str, make: impl FnOnce(&Pod) -> Vec<super::events::Note>) {
        if let Some(pod) = self.workers.get(uid).and_then(|w| w.machine.pod()) {
            self.events.emit(make(pod));
        }
    }

    fn watch_exit(&mut self, uid: String, id: ContainerId, ctx: &mut Context<Self>) {
        let runtime = self.runtime.clone();
        let work = async move { (runtime.wait(&id).await, id) };
        ctx.spawn(work.into_actor(self).map(move |(result, id), act, ctx| match result {
            Ok(exit) if exit.is_unknown() => {
                tracing::info!(container = %id, "container gone; how it ended is unknown");
                let event = PodEvent::Lost {
                    container: id.container,
                    attempt: id.attempt,
                };
                act.feed(&uid, event, ctx);
            }
            Ok(exit) => {
                tracing::info!(container = %id, exit_code = exit.exit_code(), "container exited");
                let event = PodEvent::Exited {
                    container: id.container,
                    attempt: id.attempt,
                    exit_code: exit.exit_code(),
                    signal: exit.signal,
                    oom_killed: exit.oom_killed,
                };
                act.feed(&uid, event, ctx);
            }
            Err(e) => tracing::error!(container = %id, error = %e, "lost track of container"),
        }));
    }

    /// Sends the pod's next write if none is in flight.
    fn flush(&mut self, uid: &str, ctx: &mut Context<Self>) {
        let Some(worker) = self.workers.get_mut(uid) else {
            return;
        };
        if worker.writing {
            return;
        }
        let Some(write) = worker.writes.pop_front() else {
            return;
        };
        worker.writing = true;
        let (objects, key, uid) = (self.objects.clone(), worker.key.clone(), uid.to_string());
        let writer_uid = uid.clone();
        let info = resource::of::<Pod>();
        let is_delete = matches!(write, Write::Delete);
        let work = async move {
            match write {
                Write::Status(status) => objects
                    .update_with(info, key.namespace(), &key.name, Part::Status, |current| {
                        super::status::merge(current, &writer_uid, &status)
                    })
                    .await
                    .map(|_| ()),
                Write::Delete => {
                    let options = DeleteOptions {
                        grace_period_seconds: Some(0),
                        uid: Some(writer_uid.clone()),
                        ..Default::default()
                    };
                    objects
                        .delete(info, key.namespace(), &key.name, &options)
                        .await
                        .map(|_| ())
                }
            }
        };
        ctx.spawn(work.into_actor(self).map(move |result, act, ctx| {
            let Some(worker) = act.workers.get_mut(&uid) else { return };
            worker.writing = false;
            match result {
                Ok(()) => {}
                // The object is gone or is another pod now: the informer reports it and the pod is forgotten.
                Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {}
                Err(e) if is_delete => {
                    tracing::warn!(pod = %worker.key, error = %e, "cannot delete pod object; retrying");
                    worker.writes.push_front(Write::Delete);
                    return; // the next tick flushes again
                }
                Err(e) => {
                    tracing::warn!(pod = %worker.key, error = %e, "cannot write pod status; retrying");
                    act.feed(&uid, PodEvent::StatusWriteFailed, ctx);
                }
            }
            act.flush(&uid, ctx);
        }));
    }

    /// Rewrites the configMap and secret volumes of every pod whose objects changed (one pass per pod at a time).
    fn resync_volumes(&mut self, ctx: &mut Context<Self>) {
        for (uid, worker) in &self.workers {
            let Some(pod) = worker.machine.pod() else {
                continue;
            };
            let has_files = pod
                .spec
                .iter()
                .flat_map(|s| s.volumes.iter().flatten())
                .any(|v| v.config_map.is_some() || v.secret.is_some());
            if !has_files || !self.resyncing.insert(uid.clone()) {
                continue;
            }
            let (objects, pod, key) = (self.objects.clone(), pod.clone(), worker.key.clone());
            let pod_dir =
                crate::runtime::pod_dir(&self.config.data_dir, &key.namespace, &key.name, uid);
            let work = async move {
                let sources = super::sources::fetch(&objects, &pod).await.ok()?;
                let blocking = move || super::volumes::refresh(&pod_dir, &pod, &sources);
                tokio::task::spawn_blocking(blocking).await.ok()
            };
            let uid = uid.clone();
            ctx.spawn(work.into_actor(self).map(move |updated, act, _| {
                act.resyncing.remove(&uid);
                for volume in updated.into_iter().flatten() {
                    tracing::info!(pod = %key, volume, "volume updated from its object");
                }
            }));
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let uids: Vec<String> = self.workers.keys().cloned().collect();
        for uid in uids {
            self.feed(&uid, PodEvent::Tick, ctx);
            self.flush(&uid, ctx);
        }
    }
}

/// Why a container did not start.
enum Failure {
    /// Its configuration could not be resolved (retried without counting a restart).
    Config(ConfigError),
    /// The runtime refused or failed the start.
    Runtime(RuntimeError),
}

/// Reads the objects `pod` refers to, sets up its volumes and resolves what run `attempt` of `container` starts
/// with; with `dns` (the cluster DNS server), also the pod's resolv.conf, mounted over `/etc/resolv.conf`.
#[allow(clippy::too_many_arguments)]
async fn configure(
    objects: &Objects,
    pod: Pod,
    key: ObjectKey,
    pod_dir: PathBuf,
    container: &str,
    attempt: u32,
    ips: PodIps,
    dns: Option<Ipv4Addr>,
) -> Result<ContainerSpec, ConfigError> {
    let sources = super::sources::fetch(objects, &pod).await?;
    let container = container.to_string();
    let blocking = move || {
        let volumes = super::volumes::prepare(&pod_dir, &pod, &sources)?;
        if let Some(c) = super::container::find(&pod, &container) {
            super::volumes::create_sub_paths(&pod, c, &volumes)?;
        }
        let mut spec = super::container::spec_for(
            &pod,
            &key,
            &container,
            attempt,
            (&sources, &ips),
            &volumes,
        )?;
        if let Some(mount) = dns.and_then(|dns| resolv_conf_mount(&pod, &pod_dir, dns).transpose())
        {
            // First, so that a volume the pod mounts at /etc itself still wins.
            spec.mounts.insert(0, mount?);
        }
        Ok(spec)
    };
    tokio::task::spawn_blocking(blocking)
        .await
        .map_err(|e| ConfigError(format!("cannot set up volumes: {e}")))?
}

/// Writes the pod's resolv.conf for the cluster DNS at `dns` into its directory and says where to mount it; None
/// when the pod keeps the host's (its `dnsPolicy`).
fn resolv_conf_mount(
    pod: &Pod,
    pod_dir: &std::path::Path,
    dns: Ipv4Addr,
) -> Result<Option<crate::runtime::Mount>, ConfigError> {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let Some(text) = super::dns::resolv_conf(pod, dns, &host) else {
        return Ok(None);
    };
    let path = pod_dir.join("resolv.conf");
    std::fs::create_dir_all(pod_dir)
        .and_then(|()| std::fs::write(&path, text))
        .map_err(|e| ConfigError(format!("cannot write {}: {e}", path.display())))?;
    Ok(Some(crate::runtime::Mount {
        source: path,
        target: "/etc/resolv.conf".into(),
        read_only: true,
    }))
}

/// Renews the node's Lease, or creates it (owned by the Node) when it is missing. A Node not registered yet gets
/// its lease on a later round.
pub(super) async fn renew_lease(objects: &Objects, name: &str) -> Result<(), ApiError> {
    let info = resource::of::<Lease>();
    let now = crate::now();
    let renewed = objects
        .update_with(info, Some(lease::NAMESPACE), name, Part::Main, |current| {
            lease::renewed(current, name, now)
        })
        .await;
    match renewed {
        Ok(_) => Ok(()),
        Err(e) if e.reason == Reason::NotFound => {
            let node: Node = match objects.get_as(None, name).await {
                Ok(node) => node,
                Err(e) if e.reason == Reason::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            let uid = node.metadata.uid.unwrap_or_default();
            match objects
                .create_as(&lease::lease_object(name, &uid, now))
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

/// Registers the Node or renews its status (heartbeat) with `pressure`; re-creates it if it was deleted; keeps its
/// pressure taints in line; with `labels`, also makes sure the agent's labels and registration taints are on it.
async fn sync_node(
    objects: &Objects,
    facts: &NodeFacts,
    ready: bool,
    pressure: Pressure,
    labels: bool,
) -> Result<(), ApiError> {
    let info = resource::of::<Node>();
    let now = crate::now();
    let renewed = objects
        .update_with(info, None, &facts.name, Part::Status, |current| {
            node::with_status(current, facts, ready, pressure, now)
        })
        .await;
    match renewed {
        Ok(_) => {}
        Err(e) if e.reason == Reason::NotFound => {
            return match objects
                .create_as(&node::node_object(facts, pressure, now))
                .await
            {
                Ok(_) => {
                    tracing::info!(node = %facts.name, "node registered");
                    Ok(())
                }
                Err(e) if e.reason == Reason::AlreadyExists => Ok(()),
                Err(e) => Err(e),
            };
        }
        Err(e) => return Err(e),
    }
    // Writes nothing when the taints are already as they should be.
    objects
        .update_with(info, None, &facts.name, Part::Main, |current| {
            let current = node::with_pressure_taints(current, pressure)?;
            if labels {
                node::with_labels(current, facts)
            } else {
                Ok(current)
            }
        })
        .await?;
    Ok(())
}

impl Actor for NodeAgent {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // First what an earlier agent left running, so that no pod starts a container that still runs.
        let runtime = self.runtime.clone();
        let recovered = async move { runtime.recover().await };
        ctx.spawn(recovered.into_actor(self).map(|found, act, ctx| {
            let mut by_pod: HashMap<String, Vec<ContainerId>> = HashMap::new();
            for info in found {
                by_pod.entry(info.id.pod_uid.clone()).or_default().push(info.id);
            }
            if !by_pod.is_empty() {
                tracing::info!(node = %act.facts.name, pods = by_pod.len(), "found containers of an earlier agent");
            }
            act.found = Some(by_pod);
            if act.stopping {
                return;
            }
            let name = act.config.node_name.clone();
            let on_this_node: Filter<Pod> = Arc::new(move |p: &Pod| {
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str())
            });
            act.informer = Some(Informer::start(
                act.objects.clone(),
                act.pods.clone(),
                Some(on_this_node),
                ctx.address().recipient(),
            ));
        }));
        self.heartbeat(ctx);
        ctx.run_interval(self.config.heartbeat_interval, |act, ctx| {
            act.heartbeat(ctx)
        });
        ctx.run_interval(lease::RENEW_INTERVAL, |act, ctx| act.renew_lease(ctx));
        ctx.run_interval(self.config.sync_interval, |act, ctx| act.tick(ctx));
        ctx.run_interval(self.config.volume_resync, |act, ctx| {
            act.resync_volumes(ctx)
        });
        tracing::info!(node = %self.facts.name, ip = %self.facts.host.ip, "node agent started");
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        tracing::info!(node = %self.facts.name, "node agent stopped");
    }
}

impl Handler<Change<Pod>> for NodeAgent {
    type Result = ();

    fn handle(&mut self, change: Change<Pod>, ctx: &mut Context<Self>) {
        match change {
            Change::Applied(pod) => self.observe(&pod, ctx),
            Change::Deleted(pod) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    self.feed(uid, PodEvent::ObjectGone, ctx);
                }
            }
            Change::Synced => {
                let cached = self.pods.list();
                let live: std::collections::HashSet<&str> = cached
                    .iter()
                    .filter_map(|p| p.metadata.uid.as_deref())
                    .collect();
                let gone: Vec<String> = self
                    .workers
                    .keys()
                    .filter(|u| !live.contains(u.as_str()))
                    .cloned()
                    .collect();
                for uid in gone {
                    self.feed(&uid, PodEvent::ObjectGone, ctx);
                }
                for pod in &cached {
                    self.observe(pod, ctx);
                }
                // The first full list is in: what no pod claimed of what the runtime found is an orphan.
                let orphans: Vec<ContainerId> = self
                    .found
                    .as_mut()
                    .map(std::mem::take)
                    .into_iter()
                    .flat_map(HashMap::into_values)
                    .flatten()
                    .collect();
                self.remove_orphans(orphans, ctx);
            }
        }
    }
}

impl Handler<Shutdown> for NodeAgent {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        self.informer = None;
        tracing::info!(node = %self.facts.name, pods = self.workers.len(), "node agent shutting down");
        let (objects, facts, runtime, grace, data_dir) = (
            self.objects.clone(),
            self.facts.clone(),
            self.runtime.clone(),
            self.config.shutdown_grace,
            self.config.data_dir.clone(),
        );
        Box::pin(
            async move {
                super::stop_everything(runtime.as_ref(), grace).await;
                // Best effort: a scheduler should stop sending pods here at once rather than after the heartbeat
                // times out; an unreachable store must not hold the shutdown up.
                let pressure = Pressure::read(&data_dir);
                let not_ready = sync_node(&objects, &facts, false, pressure, false);
                if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(2), not_ready).await {
                    tracing::debug!(error = %e, "cannot mark the node not ready");
                }
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        )
    }
}
