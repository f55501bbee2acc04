//! The replica calculator for Resource metrics, as kube-controller-manager's `replica_calculator.go`: how many
//! replicas bring the pods' average CPU or memory to the target, counting only pods whose measurement can be
//! trusted and reasoning conservatively about the others (pending, unready, unmeasured). Pure.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::chrono::{DateTime, Utc};
use navarch_bus::api::quantity::Quantity;

/// A change smaller than this fraction of the target is no change (`--horizontal-pod-autoscaler-tolerance`).
pub const TOLERANCE: f64 = 0.1;

/// A pod this young may still be warming up: its CPU only counts once it is ready and measured since
/// (`--horizontal-pod-autoscaler-cpu-initialization-period`, 5 min).
pub const CPU_INITIALIZATION_PERIOD: Duration = Duration::from_secs(300);

/// A pod that turned unready this soon after it started is taken as never ready yet
/// (`--horizontal-pod-autoscaler-initial-readiness-delay`, 30 s).
pub const INITIAL_READINESS_DELAY: Duration = Duration::from_secs(30);

/// The resources a Resource metric can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `cpu` (usage in millicores).
    Cpu,
    /// `memory` (usage in thousandths of a byte, so both resources share milli-units as Kubernetes' code does).
    Memory,
}

impl Resource {
    /// The resource a metric names, if one the agents measure.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "cpu" => Some(Resource::Cpu),
            "memory" => Some(Resource::Memory),
            _ => None,
        }
    }

    /// Its name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
        }
    }
}

/// What a Resource metric aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Average usage as a percentage of the pods' requests.
    Utilization(i32),
    /// Average usage per pod, in milli-units.
    AverageValue(i64),
}

/// One pod's measured usage of one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodMetric {
    /// Usage summed over its containers, in milli-units.
    pub value: i64,
    /// When the measurement window ended.
    pub timestamp: DateTime<Utc>,
    /// How long the window was.
    pub window: Duration,
}

/// The calculator's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    /// Replicas proposed.
    pub replicas: i32,
    /// The current average utilization in percent (Utilization targets only).
    pub utilization: Option<i32>,
    /// The current average usage per measured pod, in milli-units.
    pub average: i64,
}

fn since(later: DateTime<Utc>, earlier: DateTime<Utc>) -> Duration {
    (later - earlier).to_std().unwrap_or_default()
}

/// Requests of `resource` per pod (by name), summed over its containers: an error names the first container
/// without one, as Utilization needs them all.
fn requests(pods: &[&Pod], resource: Resource) -> Result<HashMap<String, i64>, String> {
    let mut out = HashMap::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let mut sum: i64 = 0;
        for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
            let request = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource.name()))
                .and_then(|q| Quantity::parse(&q.0).ok())
                .map(|q| q.milli());
            let Some(request) = request else {
                return Err(format!(
                    "missing request for {} in container {} of Pod {name}",
                    resource.name(),
                    c.name
                ));
            };
            sum = sum.saturating_add(i64::try_from(request).unwrap_or(i64::MAX));
        }
        out.insert(name, sum);
    }
    Ok(out)
}

/// How the pods fall, as `groupPods`: counted (ready and measured), unready, unmeasured and ignored (being deleted
/// or failed).
struct Groups {
    ready: usize,
    unready: Vec<String>,
    missing: Vec<String>,
    ignored: Vec<String>,
}

fn group(
    pods: &[&Pod],
    metrics: &HashMap<String, PodMetric>,
    resource: Resource,
    now: DateTime<Utc>,
) -> Groups {
    let mut g = Groups {
        ready: 0,
        unready: Vec::new(),
        missing: Vec::new(),
        ignored: Vec::new(),
    };
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref());
        if pod.metadata.deletion_timestamp.is_some() || phase == Some("Failed") {
            g.ignored.push(name);
            continue;
        }
        if phase == Some("Pending") {
            g.unready.push(name);
            continue;
        }
        let Some(metric) = metrics.get(&name) else {
            g.missing.push(name);
            continue;
        };
        if resource == Resource::Cpu {
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
            let start = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
            let unready = match (ready, start) {
                (Some(ready), Some(start)) => {
                    let transition = ready.last_transition_time.as_ref().map_or(start, |t| t.0);
                    if since(now, start) < CPU_INITIALIZATION_PERIOD {
                        // Warming up: only a window measured wholly while ready counts.
                        ready.status == "False"
                            || metric.timestamp
                                < transition
                                    + k8s_openapi::chrono::Duration::from_std(metric.window)
                                        .unwrap_or(k8s_openapi::chrono::Duration::zero())
                    } else {
                        ready.status == "False"
                            && since(transition, start) < INITIAL_READINESS_DELAY
                    }
                }
                _ => true,
            };
            if unready {
                g.unready.push(name);
                continue;
            }
        }
        g.ready += 1;
    }
    g
}

/// The ratio of usage to target over `metrics` (only pods with a request count for Utilization), with the
/// current utilization and average.
fn ratio(
    metrics: &HashMap<String, i64>,
    requests: &HashMap<String, i64>,
    target: Target,
) -> Result<(f64, Option<i32>, i64), String> {
    match target {
        Target::Utilization(target) => {
            let (mut used, mut requested, mut n) = (0i64, 0i64, 0i64);
            for (pod, value) in metrics {
                let Some(request) = requests.get(pod) else {
                    continue;
                };
                used = used.saturating_add(*value);
                requested = requested.saturating_add(*request);
                n += 1;
            }
            if requested == 0 {
                return Err("no metrics returned matched known pods".into());
            }
            let utilization =
                i32::try_from(used.saturating_mul(100) / requested).unwrap_or(i32::MAX);
            Ok((
                f64::from(utilization) / f64::from(target.max(1)),
                Some(utilization),
                used / n,
            ))
        }
        Target::AverageValue(target) => {
            let n = i64::try_from(metrics.len()).unwrap_or(i64::MAX).max(1);
            let average = metrics.values().sum::<i64>() / n;
            Ok((average as f64 / target.max(1) as f64, None, average))
        }
    }
}

/// Replicas for one Resource metric, as `GetResourceReplicas` (Utilization) and `GetRawResourceReplicas`
/// (AverageValue): `current` is the target's replica count, `pods` those its selector matches, `metrics` the
/// measured pods (by name). Errors are the messages Kubernetes puts in `FailedGetResourceMetric`.
pub fn resource_replicas(
    current: i32,
    resource: Resource,
    target: Target,
    pods: &[&Pod],
    metrics: &HashMap<String, PodMetric>,
    now: DateTime<Utc>,
) -> Result<Proposal, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let requests = match target {
        Target::Utilization(_) => requests(pods, resource)?,
        Target::AverageValue(_) => HashMap::new(),
    };
    let groups = group(pods, metrics, resource, now);
    let mut values: HashMap<String, i64> = metrics
        .iter()
        .filter(|(pod, _)| !groups.ignored.contains(*pod) && !groups.unready.contains(*pod))
        .filter(|(pod, _)| {
            pods.iter()
                .any(|p| p.metadata.name.as_deref() == Some(pod.as_str()))
        })
        .map(|(pod, m)| (pod.clone(), m.value))
        .collect();
    if values.is_empty() {
        return Err("did not receive metrics for any ready pods".into());
    }
    let (usage_ratio, utilization, average) = ratio(&values, &requests, target)?;
    let proposal = |replicas| Proposal {
        replicas,
        utilization,
        average,
    };
    let ceil = |x: f64| x.ceil().clamp(0.0, f64::from(i32::MAX)) as i32;
    let ready = groups.ready as f64;
    let rebalance_unready = !groups.unready.is_empty() && usage_ratio > 1.0;
    if !rebalance_unready && groups.missing.is_empty() {
        if (1.0 - usage_ratio).abs() <= TOLERANCE {
            return Ok(proposal(current));
        }
        return Ok(proposal(ceil(usage_ratio * ready)));
    }
    // Conservatively: unmeasured pods use their whole request (or the target) when scaling down and nothing when
    // scaling up; unready pods use nothing when scaling up.
    let fill = |pod: &str| match target {
        Target::Utilization(_) => requests.get(pod).copied().unwrap_or(0),
        Target::AverageValue(v) => v,
    };
    for pod in &groups.missing {
        let value = if usage_ratio < 1.0 { fill(pod) } else { 0 };
        values.insert(pod.clone(), value);
    }
    if rebalance_unready {
        for pod in &groups.unready {
            values.insert(pod.clone(), 0);
        }
    }
    let (new_ratio, _, _) = ratio(&values, &requests, target)?;
    let unchanged = (1.0 - new_ratio).abs() <= TOLERANCE
        || (usage_ratio < 1.0 && new_ratio > 1.0)
        || (usage_ratio > 1.0 && new_ratio < 1.0);
    if unchanged {
        return Ok(proposal(current));
    }
    let replicas = ceil(new_ratio * values.len() as f64);
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(proposal(current));
    }
    Ok(proposal(replicas))
}
