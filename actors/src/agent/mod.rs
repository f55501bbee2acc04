//! The node agent role: registers its Node and keeps it fresh, runs the pods bound to it through a [`Runtime`],
//! reports their status, serves their logs, probes them, and stops them gracefully. [`lifecycle`] decides per pod
//! (and [`lifecycle::adopt`] for a pod an earlier agent left running, [`container`] per container, [`probe`] per
//! container's probes), [`config`] resolves containers' env and volume files from ConfigMaps and Secrets (read by
//! `sources`), [`volumes`] lays volumes out on disk and says where containers mount them, [`status`] and [`node`] say
//! what the objects should read ([`events`] the kubelet's Events about pods, [`lease`] the node's Lease, [`registration`] the Node's flags, [`pressure`] its
//! memory and disk pressure), [`host`] reads the machine, [`NodeAgent`] carries it all out (`prober` runs probes
//! and hooks);
//! [`logs`] reads log files and `log_server` streams them over the bus; [`metrics`] samples CPU and memory and
//! answers usage requests. [`hollow`] decides for simulated nodes (`navarch agent --simulate N`), which
//! [`start_hollow_nodes`] serves, N at a time in one process. [`proxy`] routes Services' cluster IPs and node ports
//! with nftables and [`dns`] answers cluster DNS, where pods have their own network.

mod actor;
pub mod config;
pub mod container;
pub mod dns;
pub mod events;
pub mod hollow;
mod hollow_runner;
pub mod host;
pub mod lease;
pub mod lifecycle;
mod log_server;
pub mod logs;
pub mod metrics;
pub mod node;
pub mod pressure;
pub mod probe;
mod prober;
pub mod proxy;
pub mod registration;
mod sources;
pub mod status;
pub mod volumes;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use navarch_bus::api::{EncryptionKeys, Objects};
use navarch_bus::store::StoreClient;
use navarch_bus::Bus;

pub use actor::{NodeAgent, Shutdown};
pub use hollow_runner::{start_hollow_nodes, HollowHandle};

use crate::error::{Error, Result};
use crate::runtime::netns::{Cidr, PodCidr};
use crate::runtime::{ProcessRuntime, Runtime};

/// How the node agent behaves.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The Node's name. Default: this host's name, lowercased (the kubelet's default).
    pub node_name: String,
    /// Where the agent keeps its files (container logs under `pods/`). Default `/var/lib/navarch/agent`, as the
    /// kubelet's `/var/lib/kubelet`.
    pub data_dir: PathBuf,
    /// How often the Node's conditions are renewed (`lastHeartbeatTime`). Default 10 s: the kubelet's
    /// `nodeStatusUpdateFrequency`.
    pub heartbeat_interval: Duration,
    /// How often pods are checked for ended back-offs, passed grace periods and unsent status. Default 1 s (the
    /// kubelet's housekeeping runs every 2 s).
    pub sync_interval: Duration,
    /// Most pods the node takes (`status.allocatable.pods`). Default 110: the kubelet's `--max-pods`.
    pub max_pods: u32,
    /// The node's address (`InternalIP`, and every pod's IP for now). Default None: the address of the interface
    /// of the default route, as the kubelet picks it.
    pub node_ip: Option<IpAddr>,
    /// Labels to put on the Node besides the well-known ones (the kubelet's `--node-labels`). Default none.
    pub labels: BTreeMap<String, String>,
    /// Taints the Node is registered with (the kubelet's `--register-with-taints`); re-added if the Node is
    /// re-created, never removed. Default none.
    pub taints: Vec<k8s_openapi::api::core::v1::Taint>,
    /// What the node keeps for itself, out of allocatable (the kubelet's `--system-reserved`). Default nothing.
    pub reserved: registration::Reserved,
    /// On agent shutdown, how long containers get between SIGTERM and SIGKILL. Default 30 s: the default
    /// `terminationGracePeriodSeconds` of a pod.
    pub shutdown_grace: Duration,
    /// Where pods get their own network namespace and IP from (the kubelet's `--pod-cidr`); needs root. Default
    /// None: pods share the host's network, as they do without root.
    pub pod_cidr: Option<PodCidr>,
    /// The keys that open Secrets encrypted at rest, for env from Secrets and secret volumes. Default None:
    /// Secrets are read as stored (plain JSON unless the cluster encrypts them).
    pub encryption: Option<EncryptionKeys>,
    /// How often configMap and secret volumes are compared with their objects and rewritten when they changed.
    /// Default 3 s (the kubelet resyncs each pod about once a minute; a few seconds keeps updates prompt at the
    /// cost of one store read per object and pod).
    pub volume_resync: Duration,
    /// How large each container's log grows before it is rotated, and how many files it keeps. Default 10 MiB and
    /// 5 files: the kubelet's `containerLogMaxSize` and `containerLogMaxFiles`.
    pub log_limits: crate::runtime::LogLimits,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            node_name: host::hostname(),
            data_dir: PathBuf::from("/var/lib/navarch/agent"),
            heartbeat_interval: Duration::from_secs(10),
            sync_interval: Duration::from_secs(1),
            max_pods: 110,
            node_ip: None,
            labels: BTreeMap::new(),
            taints: Vec::new(),
            reserved: registration::Reserved::default(),
            shutdown_grace: Duration::from_secs(30),
            pod_cidr: None,
            encryption: None,
            volume_resync: Duration::from_secs(3),
            log_limits: crate::runtime::LogLimits::default(),
        }
    }
}

/// Whether `name` is an RFC 1123 subdomain (what a Node name must be).
fn is_dns_subdomain(name: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok)
}

impl AgentConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field, reason: String| Err(Error::InvalidConfig { field, reason });
        if !is_dns_subdomain(&self.node_name) {
            return invalid(
                "node_name",
                format!(
                    "{:?} is not a lowercase RFC 1123 subdomain (e.g. node-1.example)",
                    self.node_name
                ),
            );
        }
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "must not be empty".into());
        }
        for (field, value) in [
            ("heartbeat_interval", self.heartbeat_interval),
            ("sync_interval", self.sync_interval),
            ("volume_resync", self.volume_resync),
        ] {
            if value.is_zero() {
                return invalid(field, "must be positive".into());
            }
        }
        if self.max_pods == 0 {
            return invalid("max_pods", "must be at least 1".into());
        }
        if let Err(reason) = self.log_limits.validate() {
            return invalid("log_limits", reason);
        }
        Ok(())
    }
}

/// A running node agent.
#[derive(Clone)]
pub struct AgentHandle {
    addr: Addr<NodeAgent>,
    log_server: Arc<tokio::task::JoinHandle<()>>,
    metrics: Arc<tokio::task::JoinHandle<()>>,
    runtime: Arc<dyn Runtime>,
    node_name: String,
    shutdown_grace: Duration,
    /// The service proxy and cluster DNS, where they run.
    services: Option<Arc<proxy::ServicesHandle>>,
}

impl std::fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHandle")
            .field("node_name", &self.node_name)
            .finish()
    }
}

impl AgentHandle {
    /// The agent actor.
    pub fn addr(&self) -> &Addr<NodeAgent> {
        &self.addr
    }

    /// The Node's name.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// The runtime running the pods.
    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.runtime
    }

    /// Stops the agent: it stops watching pods, marks its Node not ready, and stops every container it started
    /// (SIGTERM, `shutdown_grace`, SIGKILL). Returns once no container process is left running, even if the actor
    /// was already gone.
    pub async fn shutdown(self) {
        self.log_server.abort();
        self.metrics.abort();
        let _ = self.addr.send(Shutdown).await;
        // Anything the actor started while it was stopping, or everything if it was already gone.
        stop_everything(self.runtime.as_ref(), self.shutdown_grace).await;
        if let Some(services) = &self.services {
            services.shutdown().await;
        }
        // Nothing runs any more: the pods' namespaces, cgroups and the node's bridge go.
        self.runtime.release_all_pods().await;
    }
}

/// Stops every container of `runtime` until none runs.
pub(crate) async fn stop_everything(runtime: &dyn Runtime, grace: Duration) {
    loop {
        runtime.stop_all(grace).await;
        let left = runtime
            .list()
            .await
            .into_iter()
            .filter(|c| c.state == crate::runtime::ContainerState::Running)
            .count();
        if left == 0 {
            return;
        }
        tracing::warn!(left, "containers still running after stop; stopping again");
    }
}

/// Starts a node agent on `bus` running pods as host processes ([`ProcessRuntime`]), after creating its data
/// directory. Call inside a running actix `System` (on a tokio runtime). The Node is registered in the
/// background (and again whenever it is missing), so the store need not be reachable yet.
pub async fn start_agent(bus: Bus, config: AgentConfig) -> Result<AgentHandle> {
    config.validate()?;
    tokio::fs::create_dir_all(&config.data_dir)
        .await
        .map_err(|source| Error::Io {
            action: "create",
            path: config.data_dir.clone(),
            source,
        })?;
    let runtime = match config.pod_cidr {
        Some(cidr) if crate::runtime::running_as_root() => Arc::new(
            ProcessRuntime::with_pod_network(config.data_dir.clone(), cidr)
                .await
                .map_err(|e| Error::InvalidConfig {
                    field: "pod_cidr",
                    reason: e.to_string(),
                })?,
        ),
        Some(_) => {
            tracing::warn!("not root: pods share the host's network (no namespaces, no pod IPs) and their limits are not enforced");
            Arc::new(ProcessRuntime::new(config.data_dir.clone()))
        }
        None => {
            tracing::info!("no pod CIDR: pods share the host's network");
            Arc::new(ProcessRuntime::new(config.data_dir.clone()))
        }
    };
    start_agent_with_runtime(bus, config, runtime).await
}

/// Starts a node agent on `bus` running pods through `runtime` (which keeps its own files).
pub async fn start_agent_with_runtime(
    bus: Bus,
    config: AgentConfig,
    runtime: Arc<dyn Runtime>,
) -> Result<AgentHandle> {
    config.validate()?;
    runtime.set_log_limits(config.log_limits);
    // Subscribed before returning, so a pod started through this agent can have its logs read at once.
    let requests = log_server::subscribe(&bus, &config.node_name).await?;
    let log_server = Arc::new(tokio::spawn(log_server::serve(
        bus.clone(),
        requests,
        config.data_dir.clone(),
        runtime.clone(),
    )));
    let metrics_requests = bus
        .subscribe(&bus.subjects().agent_metrics(&config.node_name))
        .await?;
    let objects =
        Objects::new(StoreClient::new(bus.clone())).with_encryption(config.encryption.clone());
    let services = start_services(&objects, &config.node_name, runtime.as_ref()).await;
    let cluster_dns = services.as_ref().and_then(|s| s.dns_address());
    let handle_runtime = runtime.clone();
    let node_name = config.node_name.clone();
    let shutdown_grace = config.shutdown_grace;
    let agent = NodeAgent::new(objects, config, runtime.clone(), cluster_dns);
    let metrics = Arc::new(tokio::spawn(metrics::serve(
        bus,
        metrics_requests,
        runtime,
        agent.pod_cache(),
    )));
    let addr = agent.start();
    Ok(AgentHandle {
        addr,
        log_server,
        metrics,
        runtime: handle_runtime,
        node_name,
        shutdown_grace,
        services,
    })
}

/// Starts the service proxy and cluster DNS where pods have their own network (the runtime has a pod CIDR, which
/// only the process runtime as root has); elsewhere there is nothing to route into, which is logged once.
async fn start_services(
    objects: &Objects,
    node: &str,
    runtime: &dyn Runtime,
) -> Option<Arc<proxy::ServicesHandle>> {
    let cidr = runtime.pod_cidr().and_then(|c| c.parse::<Cidr>().ok());
    match cidr {
        Some(cidr) if crate::runtime::running_as_root() => {
            Some(Arc::new(proxy::start(objects.clone(), node, cidr).await))
        }
        _ => {
            tracing::info!("pods share the host's network (no root or no pod CIDR): no service proxy and no cluster DNS; pods keep the host's resolv.conf");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_validation_catches_bad_names() {
        let config = AgentConfig {
            node_name: "node-1".into(),
            ..Default::default()
        };
        assert!(config.validate().is_ok());
        for bad in ["", "Node_1", "-a", "a..b"] {
            let c = AgentConfig {
                node_name: bad.into(),
                ..config.clone()
            };
            assert!(
                matches!(
                    c.validate(),
                    Err(Error::InvalidConfig {
                        field: "node_name",
                        ..
                    })
                ),
                "{bad:?} accepted"
            );
        }
        let c = AgentConfig {
            sync_interval: Duration::ZERO,
            ..config
        };
        assert!(c.validate().is_err());
    }
}
