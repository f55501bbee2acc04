//! Hollow nodes (`navarch agent --simulate N`), like Kubernetes' kubemark and KWOK: N Nodes served by one process,
//! which register, renew their heartbeat as the real agent does (the Node's conditions, every `heartbeat_interval`,
//! spread over the interval), and report every pod bound to them Running without starting anything; a pod being
//! deleted is deleted at once (grace 0, uid precondition), as the real agent does once its containers stopped.
//!
//! This module is the pure core: which nodes exist and what they read ([`HollowConfig::node_facts`]), which nodes
//! renew in which slot of the interval ([`Renewals`]), what to do about each pod ([`PodTracker`]) and the status a
//! hollow pod reports ([`running_status`]). `hollow_runner` carries it out over the store.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, HostIP, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::chrono::{DateTime, Utc};
use serde::Deserialize;

use super::host::HostFacts;
use super::node::NodeFacts;
use crate::conditions;
use crate::error::{Error, Result};
use crate::informer::ObjectKey;

/// Most hollow nodes one process serves: each gets its own /24 of pod IPs in 10.0.0.0/8.
pub const MAX_NODES: usize = 65_536;

/// The label every hollow Node carries, so they can be told apart (`kubectl get nodes -l navarch.io/hollow=true`).
pub const HOLLOW_LABEL: &str = "navarch.io/hollow";

/// How the hollow nodes of one process look and behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HollowConfig {
    /// How many nodes. No default (the `--simulate N` flag).
    pub count: usize,
    /// Node names are `<prefix>-00001`, `<prefix>-00002`, ... Default `hollow`.
    pub prefix: String,
    /// How often each node renews its conditions' `lastHeartbeatTime`. Default 10 s, as the real agent (the
    /// kubelet's `nodeStatusUpdateFrequency`).
    pub heartbeat_interval: Duration,
    /// The nodes are spread round-robin over this many zones (`topology.kubernetes.io/zone` = `zone-0`, ...).
    /// Default 3.
    pub zones: usize,
    /// Each node's CPUs. Default 8 (kubemark's hollow nodes report the host's; a fixed size keeps runs comparable).
    pub cpus: u64,
    /// Each node's memory. Default 32 GiB.
    pub memory_bytes: u64,
    /// Each node's `pods` capacity. Default 110: the kubelet's `--max-pods`.
    pub max_pods: u32,
    /// Store writes (pod status, deletes) in flight at once for all nodes together. Default 256: enough to keep
    /// the store's group commit busy without queueing thousands of requests on the bus.
    pub max_writes_in_flight: usize,
}

impl Default for HollowConfig {
    fn default() -> Self {
        Self {
            count: 0,
            prefix: "hollow".into(),
            heartbeat_interval: Duration::from_secs(10),
            zones: 3,
            cpus: 8,
            memory_bytes: 32 << 30,
            max_pods: 110,
            max_writes_in_flight: 256,
        }
    }
}

impl HollowConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field, reason: String| Err(Error::InvalidConfig { field, reason });
        if self.count == 0 || self.count > MAX_NODES {
            return invalid("count", format!("must be between 1 and {MAX_NODES}"));
        }
        if !super::is_dns_subdomain(&self.node_name(self.count - 1)) {
            return invalid(
                "prefix",
                format!(
                    "{:?} does not make lowercase RFC 1123 node names (e.g. hollow)",
                    self.prefix
                ),
            );
        }
        if self.heartbeat_interval < RENEWAL_TICK {
            return invalid(
                "heartbeat_interval",
                format!("must be at least {RENEWAL_TICK:?}"),
            );
        }
        for (field, value) in [
            ("zones", self.zones),
            ("max_writes_in_flight", self.max_writes_in_flight),
        ] {
            if value == 0 {
                return invalid(field, "must be at least 1".into());
            }
        }
        if self.cpus == 0 || self.memory_bytes == 0 || self.max_pods == 0 {
            return invalid("cpus", "node capacity must be positive".into());
        }
        Ok(())
    }

    /// The name of node `index` (counted from 0; names count from 1).
    pub fn node_name(&self, index: usize) -> String {
        format!("{}-{:05}", self.prefix, index + 1)
    }

    /// The index of the node called `name`, if it is one of these nodes.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        let digits = name.strip_prefix(self.prefix.as_str())?.strip_prefix('-')?;
        if digits.len() < 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let number: usize = digits.parse().ok()?;
        let index = number.checked_sub(1)?;
        (index < self.count && self.node_name(index) == name).then_some(index)
    }

    /// Everything node `index`'s Node object says. Its addresses are made up and reach nothing: the InternalIP is
    /// in 100.64.0.0/10 and the pod CIDR is `10.<index / 256>.<index % 256>.0/24`.
    pub fn node_facts(&self, index: usize) -> NodeFacts {
        let name = self.node_name(index);
        let zone = format!("zone-{}", index % self.zones);
        NodeFacts {
            labels: [
                ("topology.kubernetes.io/zone".to_string(), zone),
                (HOLLOW_LABEL.to_string(), "true".to_string()),
            ]
            .into(),
            host: HostFacts {
                hostname: name.clone(),
                kernel_version: "hollow".into(),
                os_image: "Hollow node (navarch agent --simulate)".into(),
                machine_id: format!("hollow-{index}"),
                boot_id: format!("hollow-{index}"),
                architecture: "amd64".into(),
                cpus: self.cpus,
                memory_bytes: self.memory_bytes,
                ip: node_ip(index),
            },
            max_pods: self.max_pods,
            runtime_version: RUNTIME_VERSION.into(),
            pod_cidr: Some(pod_cidr(index)),
            taints: Vec::new(),
            reserved: Default::default(),
            name,
        }
    }
}

/// What hollow nodes report as their container runtime.
pub const RUNTIME_VERSION: &str = "hollow://0.1";

/// Node `index`'s made-up InternalIP, in the shared address space 100.64.0.0/10.
pub fn node_ip(index: usize) -> IpAddr {
    let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
    let offset = u32::try_from(index + 1).unwrap_or(u32::MAX) & 0x003f_ffff;
    IpAddr::V4(Ipv4Addr::from(base | offset))
}

fn cidr_octets(index: usize) -> (u8, u8) {
    ((index >> 8 & 0xff) as u8, (index & 0xff) as u8)
}

/// Node `index`'s pod CIDR.
pub fn pod_cidr(index: usize) -> String {
    let (a, b) = cidr_octets(index);
    format!("10.{a}.{b}.0/24")
}

/// The IP of the `nth` pod node `index` has reported (.1 to .254 of its /24, then round again).
pub fn pod_ip(index: usize, nth: u32) -> IpAddr {
    let (a, b) = cidr_octets(index);
    IpAddr::V4(Ipv4Addr::new(10, a, b, (nth % 254 + 1) as u8))
}

/// How often the renewal schedule moves to its next slot.
pub const RENEWAL_TICK: Duration = Duration::from_millis(100);

/// Which nodes renew in which slot: the interval is cut into slots of [`RENEWAL_TICK`] and the nodes spread evenly
/// over them, so 5,000 nodes renewing every 10 s make 50 writes every 100 ms rather than 5,000 at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewals {
    count: usize,
    slots: usize,
}

impl Renewals {
    /// The schedule of `count` nodes renewing every `interval`.
    pub fn new(count: usize, interval: Duration) -> Self {
        let slots = (interval.as_millis() / RENEWAL_TICK.as_millis()).max(1);
        Self {
            count,
            slots: usize::try_from(slots).unwrap_or(usize::MAX),
        }
    }

    /// How many slots one interval has.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The nodes that renew in slot `slot` (taken modulo the slots of an interval).
    pub fn nodes_in(&self, slot: usize) -> Range<usize> {
        let slot = slot % self.slots;
        let at = |s: usize| s * self.count / self.slots;
        at(slot)..at(slot + 1)
    }
}

/// What the hollow nodes keep of each pod bound to them. A whole k8s-openapi `Pod` takes ~8 KiB of memory even
/// when most fields are empty (430 MiB for 50,000 pods); this keeps what [`PodTracker`] and [`running_status`] read.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct HollowPod {
    /// The pod's metadata.
    pub metadata: ObjectMeta,
    /// The part of its spec a hollow node reads.
    #[serde(default)]
    pub spec: HollowPodSpec,
    /// The part of its status a hollow node reads.
    #[serde(default)]
    pub status: HollowPodStatus,
}

/// `spec.nodeName` and the containers' names and images.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HollowPodSpec {
    /// The node the pod is bound to.
    pub node_name: Option<String>,
    /// The containers, by name and image.
    #[serde(default)]
    pub containers: Vec<HollowContainer>,
}

/// A container's name and image.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct HollowContainer {
    /// The container's name.
    pub name: String,
    /// Its image.
    pub image: Option<String>,
}

/// `status.phase`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct HollowPodStatus {
    /// The pod's phase.
    pub phase: Option<String>,
}

impl k8s_openapi::Resource for HollowPod {
    const API_VERSION: &'static str = "v1";
    const GROUP: &'static str = "";
    const KIND: &'static str = "Pod";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "pods";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for HollowPod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// What to do about one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodAction {
    /// Write the pod's status as Running ([`running_status`]).
    ReportRunning {
        /// The pod.
        key: ObjectKey,
        /// Its uid (the write is refused if the object is another pod by now).
        uid: String,
    },
    /// Delete the pod object with grace 0, if it still has this uid.
    Delete {
        /// The pod.
        key: ObjectKey,
        /// Its uid.
        uid: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tracked {
    /// Its Running status is being written.
    Reporting,
    /// It was reported Running (or was already when first seen).
    Running,
    /// Its object is being (or was) deleted.
    Deleting,
}

/// What the hollow nodes know about the pods bound to them: each pod is reported Running once, and deleted once when
/// its deletion is requested. A write that failed is forgotten, so the next [`PodTracker::resync`] issues it again.
#[derive(Debug, Default)]
pub struct PodTracker {
    pods: HashMap<String, Tracked>,
}

impl PodTracker {
    /// Tracks nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many pods are tracked.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether no pod is tracked.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// The action one pod (bound to a hollow node, as the watch shows it now) calls for, if any.
    pub fn observe(&mut self, pod: &HollowPod) -> Option<PodAction> {
        let uid = pod.metadata.uid.clone()?;
        let key = ObjectKey::of(&pod.metadata);
        let tracked = self.pods.get(&uid).copied();
        if pod.metadata.deletion_timestamp.is_some() {
            if tracked == Some(Tracked::Deleting) {
                return None;
            }
            self.pods.insert(uid.clone(), Tracked::Deleting);
            return Some(PodAction::Delete { key, uid });
        }
        if tracked.is_some() {
            return None;
        }
        match pod.status.phase.as_deref() {
            // Ended pods stay as they are; Running ones were reported before (by an earlier run of this process).
            Some("Succeeded" | "Failed") => None,
            Some("Running") => {
                self.pods.insert(uid, Tracked::Running);
                None
            }
            _ => {
                self.pods.insert(uid.clone(), Tracked::Reporting);
                Some(PodAction::ReportRunning { key, uid })
            }
        }
    }

    /// Records how a write of `action` ended: `ok`, or failed and to be issued again on the next resync.
    pub fn written(&mut self, action: &PodAction, ok: bool) {
        match action {
            PodAction::ReportRunning { uid, .. } => {
                if self.pods.get(uid) == Some(&Tracked::Reporting) {
                    if ok {
                        self.pods.insert(uid.clone(), Tracked::Running);
                    } else {
                        self.pods.remove(uid);
                    }
                }
            }
            PodAction::Delete { uid, .. } => {
                if !ok && self.pods.get(uid) == Some(&Tracked::Deleting) {
                    self.pods.remove(uid);
                }
            }
        }
    }

    /// Forgets a pod that is gone (or no longer bound to a hollow node).
    pub fn forget(&mut self, uid: &str) {
        self.pods.remove(uid);
    }

    /// Brings the tracker in line with every pod bound to a hollow node: pods no longer there are forgotten, and
    /// the actions the others call for are returned.
    pub fn resync<'a>(&mut self, pods: impl IntoIterator<Item = &'a HollowPod>) -> Vec<PodAction> {
        let pods: Vec<&HollowPod> = pods.into_iter().collect();
        let live: std::collections::HashSet<&str> = pods
            .iter()
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        self.pods.retain(|uid, _| live.contains(uid.as_str()));
        pods.into_iter().filter_map(|p| self.observe(p)).collect()
    }
}

/// The status a hollow node reports for `pod`: Running, every container running, started and ready since `now`,
/// with the node's `host_ip` and the pod's made-up `pod_ip`.
pub fn running_status(
    pod: &HollowPod,
    host_ip: IpAddr,
    pod_ip: IpAddr,
    now: DateTime<Utc>,
) -> PodStatus {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let statuses = pod
        .spec
        .containers
        .iter()
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: String::new(),
            container_id: Some(format!("hollow://{uid}/{}", c.name)),
            ready: true,
            started: Some(true),
            restart_count: 0,
            state: Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(now)),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let condition = |type_| conditions::pod_condition(type_, true, None, None, now);
    let (host_ip, pod_ip) = (host_ip.to_string(), pod_ip.to_string());
    PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![
            condition("PodScheduled"),
            condition("Initialized"),
            condition("ContainersReady"),
            condition("Ready"),
        ]),
        container_statuses: Some(statuses),
        host_ip: Some(host_ip.clone()),
        host_ips: Some(vec![HostIP { ip: host_ip }]),
        pod_ip: Some(pod_ip.clone()),
        pod_ips: Some(vec![PodIP { ip: pod_ip }]),
        start_time: Some(Time(now)),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "hollow_tests.rs"]
mod tests;
