//! The Node object a node agent registers and keeps fresh: labels, capacity, addresses, system info, and the
//! conditions whose `lastHeartbeatTime` is the agent's heartbeat. Pure: facts and time are passed in.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::chrono::{DateTime, Utc};
use navarch_bus::api::ApiError;
use serde_json::Value;

use super::host::HostFacts;

/// The kubelet version the agent reports (the API version Navarch serves).
pub const KUBELET_VERSION: &str = "v1.32.0";

/// Everything the Node object says about this node.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// The node's status at `now`: `ready` says whether the agent takes pods (false while it shuts down). Condition
/// transition times are kept from `previous` when the status did not change.
pub fn node_status(
    facts: &NodeFacts,
    previous: Option<&NodeStatus>,
    ready: bool,
    now: DateTime<Utc>,
) -> NodeStatus {
    let prev = previous.and_then(|s| s.conditions.as_deref());
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity(facts.host.cpus.to_string())),
        (
            "memory".to_string(),
            Quantity(format!("{}Ki", facts.host.memory_bytes / 1024)),
        ),
        ("pods".to_string(), Quantity(facts.max_pods.to_string())),
    ]);
    let (reason, message) = if ready {
        ("KubeletReady", "kubelet is posting ready status")
    } else {
        ("KubeletNotReady", "the node agent is shutting down")
    };
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(vec![
            condition(
                prev,
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                now,
            ),
            condition(
                prev,
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
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

/// The Node object to create at `now`.
pub fn node_object(facts: &NodeFacts, now: DateTime<Utc>) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(facts.name.clone()),
            labels: Some(facts.labels()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: facts.pod_cidr.clone(),
            pod_cidrs: facts.pod_cidr.clone().map(|c| vec![c]),
            ..Default::default()
        }),
        status: Some(node_status(facts, None, true, now)),
    }
}

/// `stored` (the Node object) with a fresh status, for a read-modify-write of the status part.
pub fn with_status(
    stored: Value,
    facts: &NodeFacts,
    ready: bool,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let mut node: Node = serde_json::from_value(stored).map_err(ApiError::internal)?;
    node.status = Some(node_status(facts, node.status.as_ref(), ready, now));
    serde_json::to_value(&node).map_err(ApiError::internal)
}

/// `stored` (the Node object) with the agent's labels set (others stay) and its pod CIDR (a restarted agent may
/// have another), for a read-modify-write of the object.
pub fn with_labels(stored: Value, facts: &NodeFacts) -> Result<Value, ApiError> {
    let mut node: Node = serde_json::from_value(stored).map_err(ApiError::internal)?;
    node.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(facts.labels());
    let spec = node.spec.get_or_insert_with(Default::default);
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
        }
    }

    #[test]
    fn the_node_object_describes_the_host() {
        let t = parse_time("2026-11-27T12:00:00Z").unwrap();
        let node = serde_json::to_value(node_object(&facts(), t)).unwrap();
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], "n1");
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/os"], "linux");
        assert_eq!(node["metadata"]["labels"]["kubernetes.io/arch"], "amd64");
        assert_eq!(node["metadata"]["labels"]["zone"], "a");
        assert_eq!(node["spec"]["podCIDR"], "10.88.0.0/24");
        assert_eq!(node["spec"]["podCIDRs"][0], "10.88.0.0/24");
        let status = &node["status"];
        assert_eq!(status["capacity"]["cpu"], "2");
        assert_eq!(status["allocatable"]["memory"], "4194304Ki");
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
        let stored = serde_json::to_value(node_object(&facts(), t1)).unwrap();
        let next = with_status(stored.clone(), &facts(), true, t2).unwrap();
        let ready = &next["status"]["conditions"][3];
        assert_eq!(ready["lastHeartbeatTime"], "2026-11-27T12:00:10Z");
        assert_eq!(ready["lastTransitionTime"], "2026-11-27T12:00:00Z");
        let not_ready = with_status(stored, &facts(), false, t2).unwrap();
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
}
