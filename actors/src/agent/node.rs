//! The Node object a node agent registers and keeps fresh: labels, capacity, addresses, system info, and the
//! conditions whose `lastHeartbeatTime` is the agent's heartbeat, and the taints it registers with or carries while
//! under pressure. Pure: facts and time are passed in.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::chrono::{DateTime, Utc};
use navarch_bus::api::ApiError;
use serde_json::Value;

use super::host::HostFacts;
use super::pressure::{Pressure, MEMORY_EVICTION_BYTES};
use super::registration::Reserved;

/// The kubelet version the agent reports (the API version Navarch serves).
pub const KUBELET_VERSION: &str = "v1.32.0";

/// Everything the Node object says about this node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFacts {
    /// The node's name.
    pub name: String,
    /// Labels the agent sets besides the well-known ones.
    pub labels: BTreeMap<String, String>,
    /// The host.
    pub host: HostFacts,
    /// Most pods the node runs.
    pub max_pods: u32,
    /// The runtime's `<name>://<version>`.
    pub runtime_version: String,
    /// The CIDR the node's pods get their IPs from (`spec.podCIDR`), when they get their own.
    pub pod_cidr: Option<String>,
    /// Taints the Node is registered with (the kubelet's `--register-with-taints`).
    pub taints: Vec<Taint>,
    /// What the node keeps for itself, out of allocatable (the kubelet's `--system-reserved`).
    pub reserved: Reserved,
}

impl NodeFacts {
    /// The node's labels: `kubernetes.io/hostname`, `kubernetes.io/os`, `kubernetes.io/arch`, then the configured
    /// ones (which win).
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), self.name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            (
                "kubernetes.io/arch".to_string(),
                self.host.architecture.clone(),
            ),
        ]);
        labels.extend(self.labels.clone());
        labels
    }
}

fn condition(
    previous: Option<&[NodeCondition]>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> NodeCondition {
    let status = if status { "True" } else { "False" }.to_string();
    let since = previous
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    NodeCondition {
        type_: type_.into(),
        status,
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(since),
    }
}

/// Millicores as a quantity: whole cores without a suffix.
fn cpu_quantity(millis: u64) -> Quantity {
    if millis.is_multiple_of(1000) {
        Quantity((millis / 1000).to_string())
    } else {
        Quantity(format!("{millis}m"))
    }
}

/// Bytes as a quantity: in Ki when they are whole Ki.
fn memory_quantity(bytes: u64) -> Quantity {
    if bytes.is_multiple_of(1024) {
        Quantity(format!("{}Ki", bytes / 1024))
    } else {
        Quantity(bytes.to_string())
    }
}

/// The node's capacity and allocatable: allocatable is capacity less the reservation and, for memory, the hard
/// eviction threshold (as the kubelet computes it), never below zero.
pub fn resources(facts: &NodeFacts) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    let cpu = facts.host.cpus.saturating_mul(1000);
    // Capacity is reported in whole Ki; allocatable is taken from what is reported.
    let memory = facts.host.memory_bytes / 1024 * 1024;
    let pods = Quantity(facts.max_pods.to_string());
    let capacity = BTreeMap::from([
        ("cpu".to_string(), cpu_quantity(cpu)),
        ("memory".to_string(), memory_quantity(memory)),
        ("pods".to_string(), pods.clone()),
    ]);
    let memory_kept = facts
        .reserved
        .memory_bytes
        .saturating_add(MEMORY_EVICTION_BYTES);
    let allocatable = BTreeMap::from([
        (
            "cpu".to_string(),
            cpu_quantity(cpu.saturating_sub(facts.reserved.cpu_millis)),
        ),
        (
            "memory".to_string(),
            memory_quantity(memory.saturating_sub(memory_kept)),
        ),
        ("pods".to_string(), pods),
    ]);
    (capacity, allocatable)
}

/// The node's status at `now`: `ready` says whether the agent takes pods (false while it shuts down), `pressure`
/// what it is short of. Condition transition times are kept from `previous` when the status did not change.
pub fn node_status(
    facts: &NodeFacts,
    previous: Option<&NodeStatus>,
    ready: bool,
    pressure: Pressure,
    now: DateTime<Utc>,
) -> NodeStatus {
    let prev = previous.and_then(|s| s.conditions.as_deref());
    let (capacity, allocatable) = resources(facts);
    let (memory_reason, memory_message) = if pressure.memory {
        (
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
        )
    } else {
        (
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        )
    };
    let (disk_reason, disk_message) = if pressure.disk {
        ("KubeletHasDiskPressure", "kubelet has disk pressure")
    } else {
        ("KubeletHasNoDiskPressure", "kubelet has no disk pressure")
    };
    let (reason, message) = if ready {
        ("KubeletReady", "kubelet is posting ready status")
    } else {
        ("KubeletNotReady", "the node agent is shutting down")
    };
    NodeStatus {
        capacity: Some(capacity),
        allocatable: Some(allocatable),
        conditions: Some(vec![
            condition(
                prev,
                "MemoryPressure",
                pressure.memory,
                memory_reason,
                memory_message,
                now,
            ),
            condition(
                prev,
                "DiskPressure",
                pressure.disk,
                disk_reason,
                disk_message,
                now,
            ),
            condition(
                prev,
                "PIDPressure",
                false,
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
                now,
            ),
            condition(prev, "Ready", ready, reason, message, now),
        ]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: facts.host.ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: facts.host.hostname.clone(),
            },
        ]),
        node_info: Some(NodeSystemInfo {
            architecture: facts.host.architecture.clone(),
            boot_id: facts.host.boot_id.clone(),
            container_runtime_version: facts.runtime_version.clone(),
            kernel_version: facts.host.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.into(),
            machine_id: facts.host.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: facts.host.os_image.clone(),
            system_uuid: facts.host.machine_id.clone(),
        }),
        ..Default::default()
    }
}

/// The Node object to create at `now`, with the registration taints and those of `pressure`.
pub fn node_object(facts: &NodeFacts, pressure: Pressure, now: DateTime<Utc>) -> Node {
    let mut taints = facts.taints.clone();
    merge_taints(&mut taints, &pressure.taints());
    Node {
        metadata: ObjectMeta {
            name: Some(facts.name.clone()),
            labels: Some(facts.labels()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: facts.pod_cidr.clone(),
            pod_cidrs: facts.pod_cidr.clone().map(|c| vec![c]),
            taints: (!taints.is_empty()).then_some(taints),
            ..Default::default()
        }),
        status: Some(node_status(facts, None, true, pressure, now)),
    }
}

/// `stored` (the Node object) with a fresh status, for a read-modify-write of the status part.
pub fn with_status(
    stored: Value,
    facts: &NodeFacts,
    ready: bool,
    pressure: Pressure,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let mut node: Node = serde_json::from_value(stored).map_err(ApiError::internal)?;
    node.status = Some(node_status(
        facts,
        node.status.as_ref(),
        ready,
        pressure,
        now,
    ));
    serde_json::to_value(&node).map_err(ApiError::internal)
}

/// Adds to `taints` each of `wanted` whose key and effect are not there yet (the pair identifies a taint).
fn merge_taints(taints: &mut Vec<Taint>, wanted: &[Taint]) {
    for t in wanted {
        if !taints
            .iter()
            .any(|o| o.key == t.key && o.effect == t.effect)
        {
            taints.push(t.clone());
        }
    }
}

/// `stored` (the Node object) with the pressure taints `pressure` calls for and without those it no longer does;
/// other taints stay. For a read-modify-write of the object (which writes nothing when nothing changes).
pub fn with_pressure_taints(stored: Value, pressure: Pressure) -> Result<Value, ApiError> {
    let mut node: Node = serde_json::from_value(stored).map_err(ApiError::internal)?;
    let wanted = pressure.taints();
    let spec = node.spec.get_or_insert_with(Default::default);
    let mut taints = spec.taints.take().unwrap_or_default();
    taints.retain(|t| {
        let is_pressure = [
            super::pressure::MEMORY_PRESSURE_TAINT,
            super::pressure::DISK_PRESSURE_TAINT,
        ]
        .contains(&t.key.as_str());
        !is_pressure
            || wanted
                .iter()
                .any(|w| w.key == t.key && w.effect == t.effect)
    });
    merge_taints(&mut taints, &wanted);
    spec.taints = (!taints.is_empty()).then_some(taints);
    serde_json::to_value(&node).map_err(ApiError::internal)
}

/// `stored` (the Node object) with the agent's labels set (others stay), its registration taints added (others,
/// e.g. from `kubectl taint`, stay) and its pod CIDR (a restarted agent may have another), for a read-modify-write
/// of the object.
pub fn with_labels(stored: Value, facts: &NodeFacts) -> Result<Value, ApiError> {
    let mut node: Node = serde_json::from_value(stored).map_err(ApiError::internal)?;
    node.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(facts.labels());
    let spec = node.spec.get_or_insert_with(Default::default);
    let mut taints = spec.taints.take().unwrap_or_default();
    merge_taints(&mut taints, &facts.taints);
    spec.taints = (!taints.is_empty()).then_some(taints);
    spec.pod_cidr = facts.pod_cidr.clone();
    spec.pod_cidrs = facts.pod_cidr.clone().map(|c| vec![c]);
    serde_json::to_value(&node).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::meta::parse_time;

    fn facts() -> NodeFacts {
        NodeFacts {
            name: "n1".into(),
            labels: BTreeMap::from([("zone".to_string(), "a".to_string())]),
            host: HostFacts {
                hostname: "n1".into(),
                kernel_version: "6.1.0".into(),
                os_image: "Debian GNU/Linux 12 (bookworm)".into(),
                machine_id: "m".into(),
                boot_id: "b".into(),
                architecture: "amd64".into(),
                cpus: 2,
                memory_bytes: 4 * 1024 * 1024 * 1024,
                ip: "10.0.0.5".parse().unwrap(),
            },
            max_pods: 110,
            runtime_version: "navarch-process://0.1".into(),
            pod_cidr: Some("10.88.0.0/24".into()),
            taints: vec![],
            reserved: Reserved::default(),
        }
    }

    #[test]
    fn the_node_object_describes_the_host() {
        let t = parse_time("2026-11-27T12:00:00Z").unwrap();
        let node = serde_json::to_value(node_object(&facts(), Pressure::default(), t)).unwrap();
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], "n1");
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/os"], "linux");
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/arch"], "amd64");
        assert_eq!(node["metadata"]["labels"]["zone"], "a");
        assert_eq!(node["spec"]["podCIDR"], "10.88.0.0/24");
        assert_eq!(node["spec"]["podCIDRs"][0], "10.88.0.0/24");
        let status = &node["status"];
        assert_eq!(status["capacity"]["cpu"], "2");
        assert_eq!(status["capacity"]["memory"], "4194304Ki");
        assert_eq!(status["allocatable"]["memory"], "4091904Ki"); // less the 100Mi eviction threshold
        assert_eq!(status["allocatable"]["pods"], "110");
        assert_eq!(
            status["nodeInfo"]["containerRuntimeVersion"],
            "navarch-process://0.1"
        );
        assert_eq!(status["nodeInfo"]["kubeletVersion"], "v1.32.0");
        assert_eq!(status["addresses"][0]["type"], "InternalIP");
        assert_eq!(status["addresses"][0]["address"], "10.0.0.5");
        assert_eq!(status["addresses"][1]["type"], "Hostname");
        let ready = &status["conditions"][3];
        assert_eq!(ready["type"], "Ready");
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["reason"], "KubeletReady");
        assert_eq!(ready["lastHeartbeatTime"], "2026-11-27T12:00:00Z");
    }

    #[test]
    fn heartbeats_move_only_the_heartbeat_time() {
        let t1 = parse_time("2026-11-27T12:00:00Z").unwrap();
        let t2 = parse_time("2026-11-27T12:00:10Z").unwrap();
        let stored = serde_json::to_value(node_object(&facts(), Pressure::default(), t1)).unwrap();
        let next = with_status(stored.clone(), &facts(), true, Pressure::default(), t2).unwrap();
        let ready = &next["status"]["conditions"][3];
        assert_eq!(ready["lastHeartbeatTime"], "2026-11-27T12:00:10Z");
        assert_eq!(ready["lastTransitionTime"], "2026-11-27T12:00:00Z");
        let not_ready = with_status(stored, &facts(), false, Pressure::default(), t2).unwrap();
        let ready = &not_ready["status"]["conditions"][3];
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["lastTransitionTime"], "2026-11-27T12:00:10Z");
    }

    #[test]
    fn labels_are_merged_not_replaced() {
        let stored =
            serde_json::json!({"metadata": {"name": "n1", "labels": {"team": "x", "zone": "b"}}});
        let next = with_labels(stored, &facts()).unwrap();
        assert_eq!(next["metadata"]["labels"]["team"], "x");
        assert_eq!(next["metadata"]["labels"]["zone"], "a");
        assert_eq!(next["metadata"]["labels"]["kubernetes.io/os"], "linux");
        assert_eq!(next["spec"]["podCIDR"], "10.88.0.0/24");
    }

    #[test]
    fn allocatable_keeps_the_reservation_and_the_eviction_threshold() {
        let mut f = facts();
        f.reserved = Reserved {
            cpu_millis: 100,
            memory_bytes: 256 * 1024 * 1024,
        };
        let (capacity, allocatable) = resources(&f);
        assert_eq!(capacity["cpu"].0, "2");
        assert_eq!(allocatable["cpu"].0, "1900m");
        assert_eq!(capacity["memory"].0, "4194304Ki");
        assert_eq!(
            allocatable["memory"].0,
            format!("{}Ki", 4 * 1024 * 1024 - 356 * 1024)
        );
        assert_eq!(allocatable["pods"].0, "110");
        f.reserved = Reserved {
            cpu_millis: 5000,
            memory_bytes: u64::MAX,
        };
        f.host.memory_bytes = 1000; // not whole Ki: capacity rounds down
        let (capacity, allocatable) = resources(&f);
        assert_eq!(capacity["memory"].0, "0Ki");
        assert_eq!(allocatable["cpu"].0, "0");
        assert_eq!(allocatable["memory"].0, "0Ki");
        f.reserved.memory_bytes = 1;
        f.host.memory_bytes = 200 * 1024 * 1024;
        assert_eq!(resources(&f).1["memory"].0, "104857599");
    }

    #[test]
    fn pressure_shows_in_conditions_and_taints() {
        let t = parse_time("2026-11-27T12:00:00Z").unwrap();
        let mut f = facts();
        f.taints = crate::agent::registration::parse_taints("dedicated=infra:NoSchedule").unwrap();
        let pressure = Pressure {
            memory: true,
            disk: false,
        };
        let node = serde_json::to_value(node_object(&f, pressure, t)).unwrap();
        let conditions = &node["status"]["conditions"];
        assert_eq!(conditions[0]["type"], "MemoryPressure");
        assert_eq!(conditions[0]["status"], "True");
        assert_eq!(conditions[0]["reason"], "KubeletHasInsufficientMemory");
        assert_eq!(conditions[1]["type"], "DiskPressure");
        assert_eq!(conditions[1]["status"], "False");
        assert_eq!(conditions[1]["reason"], "KubeletHasNoDiskPressure");
        let taints = &node["spec"]["taints"];
        assert_eq!(taints[0]["key"], "dedicated");
        assert_eq!(taints[1]["key"], "node.kubernetes.io/memory-pressure");
        assert_eq!(taints[1]["effect"], "NoSchedule");

        let disk = Pressure {
            memory: false,
            disk: true,
        };
        let next = with_pressure_taints(node, disk).unwrap();
        let keys: Vec<&str> = next["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["dedicated", "node.kubernetes.io/disk-pressure"]);
        let status = with_status(next, &f, true, disk, t).unwrap();
        assert_eq!(status["status"]["conditions"][1]["status"], "True");
        assert_eq!(
            status["status"]["conditions"][1]["reason"],
            "KubeletHasDiskPressure"
        );
        let calm = with_pressure_taints(status, Pressure::default()).unwrap();
        assert_eq!(calm["spec"]["taints"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn registration_taints_are_added_and_others_stay() {
        let mut f = facts();
        f.taints = crate::agent::registration::parse_taints("dedicated=infra:NoSchedule").unwrap();
        let stored = serde_json::json!({"metadata": {"name": "n1"}, "spec": {"taints": [
            {"key": "manual", "effect": "NoExecute"},
            {"key": "dedicated", "value": "other", "effect": "NoSchedule"}
        ]}});
        let next = with_labels(stored, &f).unwrap();
        let taints = next["spec"]["taints"].as_array().unwrap();
        assert_eq!(taints.len(), 2);
        assert_eq!(taints[0]["key"], "manual");
        assert_eq!(taints[1]["value"], "other");
        let bare = serde_json::json!({"metadata": {"name": "n1"}});
        let next = with_labels(bare, &f).unwrap();
        assert_eq!(next["spec"]["taints"][0]["value"], "infra");
    }
}
