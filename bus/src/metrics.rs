//! Resource usage over the bus: what a gateway (for `metrics.k8s.io`) or the autoscaler asks a node agent
//! ([`MetricsRequest`] on [`crate::Subjects::agent_metrics`]) and what it answers ([`MetricsReply`]), as
//! metrics-server asks each kubelet's `/metrics/resource`.
//!
//! CPU is a rate (nanocores: billionths of a core) over the agent's last sampling window; memory is the working
//! set in bytes, as the kubelet reports them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::Bus;
use crate::error::Result;

/// How long an asker waits for one agent: agents answer from memory, so a slow one is a sick one.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks a node agent for the usage of its node and pods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsRequest {
    /// Only these pods (by `metadata.uid`); None: every pod of the node.
    pub pod_uids: Option<Vec<String>>,
}

/// One container's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerUsage {
    /// The container's name.
    pub name: String,
    /// CPU, in billionths of a core, averaged over the window.
    pub cpu_nanocores: u64,
    /// Memory working set, in bytes.
    pub memory_bytes: u64,
}

/// One pod's usage: its running containers'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodUsage {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's `metadata.uid`.
    pub uid: String,
    /// Its containers with a measurement over a full window (a container started since the last sample is left
    /// out until the next one).
    pub containers: Vec<ContainerUsage>,
    /// When the window ended, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// How long the window was, in milliseconds.
    pub window_ms: u64,
}

/// The node's own usage (every process on it, not only pods').
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeUsage {
    /// CPU, in billionths of a core, averaged over the window.
    pub cpu_nanocores: u64,
    /// Memory in use (total less available), in bytes.
    pub memory_bytes: u64,
    /// When the window ended, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// How long the window was, in milliseconds.
    pub window_ms: u64,
}

/// An agent's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsReply {
    /// The node's usage; None until the agent has two samples.
    pub node: Option<NodeUsage>,
    /// The pods asked for that have measurements.
    pub pods: Vec<PodUsage>,
    /// Why there is nothing to say, when the agent cannot measure (e.g. its runtime reports no usage).
    pub error: Option<String>,
}

/// Asks the agent of `node` over `bus`. A node without an agent answering (a hollow node, a dead agent) is an
/// error ([`crate::Error::NoResponders`] or a timeout), for the caller to leave out.
pub async fn fetch(bus: &Bus, node: &str, request: &MetricsRequest) -> Result<MetricsReply> {
    bus.request_encoded(
        &bus.subjects().agent_metrics(node),
        request,
        REQUEST_TIMEOUT,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    #[test]
    fn replies_round_trip_through_the_codec() {
        let reply = MetricsReply {
            node: Some(NodeUsage {
                cpu_nanocores: 1_500_000_000,
                memory_bytes: 1 << 30,
                timestamp_ms: 1_700_000_000_000,
                window_ms: 10_000,
            }),
            pods: vec![PodUsage {
                namespace: "demo".into(),
                name: "web-1".into(),
                uid: "u1".into(),
                containers: vec![ContainerUsage {
                    name: "main".into(),
                    cpu_nanocores: 250_000_000,
                    memory_bytes: 4096,
                }],
                timestamp_ms: 1_700_000_000_000,
                window_ms: 10_000,
            }],
            error: None,
        };
        let bytes = codec::encode(&reply).unwrap();
        assert_eq!(codec::decode::<MetricsReply>(&bytes).unwrap(), reply);
        let request = MetricsRequest {
            pod_uids: Some(vec!["u1".into()]),
        };
        let bytes = codec::encode(&request).unwrap();
        assert_eq!(codec::decode::<MetricsRequest>(&bytes).unwrap(), request);
    }
}
