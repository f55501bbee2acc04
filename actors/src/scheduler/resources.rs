//! What a node has room for: CPU, memory, a pod count and host ports (kube-scheduler's `NodeResourcesFit` and
//! `NodePorts` filters), and the two resource scores, `LeastAllocated` and `NodeResourcesBalancedAllocation`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use navarch_bus::api::quantity::Quantity;

pub const INSUFFICIENT_CPU: &str = "Insufficient cpu";
pub const INSUFFICIENT_MEMORY: &str = "Insufficient memory";
pub const TOO_MANY_PODS: &str = "Too many pods";
pub const PORTS: &str = "node(s) didn't have free ports for the requested pod ports";

/// Kubernetes' defaults for scoring a container that requests nothing (not for fitting).
const DEFAULT_CPU_MILLI: i128 = 100;
const DEFAULT_MEMORY_MILLI: i128 = 200 * 1024 * 1024 * 1000;

/// CPU (millicores), memory (milli-bytes) and a pod count.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Amounts {
    pub cpu: i128,
    pub memory: i128,
    pub pods: i128,
}

impl std::ops::AddAssign for Amounts {
    fn add_assign(&mut self, o: Self) {
        self.cpu += o.cpu;
        self.memory += o.memory;
        self.pods += o.pods;
    }
}

/// What a pod asks of a node.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Requests {
    /// Its requests, for fitting and for the balanced-allocation score.
    pub fit: Amounts,
    /// Its requests with the scoring defaults for what it leaves unset, for the least-allocated score.
    pub score: Amounts,
}

fn quantity(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    key: &str,
) -> Option<i128> {
    map?.get(key)
        .and_then(|q| Quantity::parse(&q.0).ok())
        .map(|q| q.milli().max(0))
}

/// What a container requests (a limit stands for a missing request, as Kubernetes defaults it).
fn container_requests(c: &Container) -> Requests {
    let res = c.resources.as_ref();
    let get = |key| {
        quantity(res.and_then(|r| r.requests.as_ref()), key)
            .or_else(|| quantity(res.and_then(|r| r.limits.as_ref()), key))
    };
    let (cpu, memory) = (get("cpu"), get("memory"));
    Requests {
        fit: Amounts {
            cpu: cpu.unwrap_or(0),
            memory: memory.unwrap_or(0),
            pods: 0,
        },
        score: Amounts {
            cpu: cpu.unwrap_or(DEFAULT_CPU_MILLI),
            memory: memory.unwrap_or(DEFAULT_MEMORY_MILLI),
            pods: 0,
        },
    }
}

/// A pod's requests: the sum over its containers, or the largest init container if that is more, plus one pod.
pub fn pod_requests(pod: &Pod) -> Requests {
    let mut sum = Requests::default();
    let mut init_max = Requests::default();
    if let Some(spec) = &pod.spec {
        for c in &spec.containers {
            let r = container_requests(c);
            sum.fit += r.fit;
            sum.score += r.score;
        }
        for c in spec.init_containers.iter().flatten() {
            let r = container_requests(c);
            init_max.fit.cpu = init_max.fit.cpu.max(r.fit.cpu);
            init_max.fit.memory = init_max.fit.memory.max(r.fit.memory);
            init_max.score.cpu = init_max.score.cpu.max(r.score.cpu);
            init_max.score.memory = init_max.score.memory.max(r.score.memory);
        }
    }
    let max = |a: Amounts, b: Amounts| Amounts {
        cpu: a.cpu.max(b.cpu),
        memory: a.memory.max(b.memory),
        pods: 1,
    };
    Requests {
        fit: max(sum.fit, init_max.fit),
        score: max(sum.score, init_max.score),
    }
}

/// What a node offers: `status.allocatable`, or its capacity where allocatable is unset.
pub fn allocatable(node: &Node) -> Amounts {
    let status = node.status.as_ref();
    let get = |key| {
        quantity(status.and_then(|s| s.allocatable.as_ref()), key)
            .or_else(|| quantity(status.and_then(|s| s.capacity.as_ref()), key))
            .unwrap_or(0)
    };
    Amounts {
        cpu: get("cpu"),
        memory: get("memory"),
        pods: get("pods") / 1000,
    }
}

/// Why a pod requesting `req` does not fit a node offering `allocatable` with `used` taken; empty when it fits.
pub fn misfits(allocatable: Amounts, used: Amounts, req: Amounts) -> Vec<&'static str> {
    let mut why = Vec::new();
    if used.pods + 1 > allocatable.pods {
        why.push(TOO_MANY_PODS);
    }
    if req.cpu > 0 && used.cpu + req.cpu > allocatable.cpu {
        why.push(INSUFFICIENT_CPU);
    }
    if req.memory > 0 && used.memory + req.memory > allocatable.memory {
        why.push(INSUFFICIENT_MEMORY);
    }
    why
}

/// A host port a container asks for: protocol, host IP and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    protocol: String,
    ip: String,
    port: i32,
}

impl HostPort {
    /// Two uses of a port clash when protocol and port agree and either binds every address or both bind the same.
    fn clashes(&self, other: &HostPort) -> bool {
        const ANY: &str = "0.0.0.0";
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == ANY || other.ip == ANY || self.ip == other.ip)
    }
}

/// The host ports `pod`'s containers ask for (protocol defaults to TCP, host IP to 0.0.0.0).
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice());
    containers
        .unwrap_or_default()
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| HostPort {
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            ip: p
                .host_ip
                .clone()
                .filter(|ip| !ip.is_empty())
                .unwrap_or_else(|| "0.0.0.0".into()),
            port: p.host_port.unwrap_or(0),
        })
        .collect()
}

/// Whether any of `wanted` clashes with a port in `used`.
pub fn ports_clash(wanted: &[HostPort], used: &[HostPort]) -> bool {
    wanted.iter().any(|w| used.iter().any(|u| w.clashes(u)))
}

/// Kubernetes' LeastAllocated score (0..=100) of a node with `used` once it also holds `req` (both with the
/// scoring defaults): the mean over CPU and memory of the free share.
pub fn least_allocated(allocatable: Amounts, used: Amounts, req: Amounts) -> i64 {
    let part = |capacity: i128, requested: i128| {
        if capacity <= 0 || requested > capacity {
            0
        } else {
            (capacity - requested) * 100 / capacity
        }
    };
    let cpu = part(allocatable.cpu, used.cpu + req.cpu);
    let memory = part(allocatable.memory, used.memory + req.memory);
    i64::try_from((cpu + memory) / 2).unwrap_or(0)
}

/// Kubernetes' NodeResourcesBalancedAllocation score (0..=100): 100 times one minus the standard deviation of the
/// CPU and memory fractions in use once the node also holds `req` (actual requests, no scoring defaults). None for
/// a pod that requests neither: kube-scheduler skips the plugin for such pods since kubernetes/kubernetes#129138
/// (after 1.32), as otherwise it packs them onto one node.
pub fn balanced_allocation(allocatable: Amounts, used: Amounts, req: Amounts) -> Option<i64> {
    if req.cpu == 0 && req.memory == 0 {
        return None;
    }
    let fraction = |capacity: i128, requested: i128| {
        (capacity > 0).then(|| (requested as f64 / capacity as f64).min(1.0))
    };
    let fractions: Vec<f64> = [
        fraction(allocatable.cpu, used.cpu + req.cpu),
        fraction(allocatable.memory, used.memory + req.memory),
    ]
    .into_iter()
    .flatten()
    .collect();
    let std = match fractions.as_slice() {
        [a, b] => ((a - b) / 2.0).abs(),
        _ => 0.0,
    };
    Some(((1.0 - std) * 100.0) as i64)
}
