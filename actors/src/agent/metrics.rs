//! Measures the node's and its containers' CPU and memory every [`SAMPLE_INTERVAL`] and answers usage requests
//! ([`MetricsRequest`] on `agent.<node>.metrics`) with the rates over the last window, as the kubelet's
//! `/metrics/resource` does for metrics-server.
//!
//! Accepts: [`MetricsRequest`] on [`navarch_bus::Subjects::agent_metrics`]. Emits: a [`MetricsReply`] to each.
//! [`usage`] (rates from two samples) is pure; the sampler reads `/proc` and cgroups through
//! [`crate::runtime::usage`] on a blocking thread.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use navarch_bus::metrics::{ContainerUsage, MetricsReply, MetricsRequest, NodeUsage, PodUsage};
use navarch_bus::{codec, Bus, Subscription};

use crate::informer::Cache;
use crate::runtime::usage::{self, CgroupUsage, Counters};
use crate::runtime::{ContainerId, ContainerState, Runtime};

/// How often usage is sampled; CPU rates are averaged over the time between the last two samples. 5 s: short
/// enough for an autoscaler syncing every 15 s to see a change within one sync (the kubelet's cAdvisor samples
/// every 10-15 s).
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// Largest request accepted: a request is a list of pod uids.
const MAX_REQUEST: usize = 256 * 1024;

/// The counters of the node and of each running container at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// When it was taken, on a monotonic clock, in milliseconds since the sampler began.
    pub mono_ms: u64,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub wall_ms: i64,
    /// The node's counters.
    pub node: Option<Counters>,
    /// Each running container's counters.
    pub containers: BTreeMap<ContainerId, Counters>,
}

fn rate(older: u64, newer: u64, window_ms: u64) -> u64 {
    // nanoseconds of CPU per second of window = billionths of a core.
    let used = u128::from(newer.saturating_sub(older));
    u64::try_from(used * 1000 / u128::from(window_ms.max(1))).unwrap_or(u64::MAX)
}

/// The usage between two samples: per pod (named through `pods`: uid to namespace and name; pods not there are
/// left out), only those in `wanted` when given; a container must be in both samples (the same run) to count.
pub fn usage(
    older: &Sample,
    newer: &Sample,
    pods: &HashMap<String, (String, String)>,
    wanted: Option<&[String]>,
) -> MetricsReply {
    let window_ms = newer.mono_ms.saturating_sub(older.mono_ms);
    if window_ms == 0 {
        return MetricsReply::default();
    }
    let node = match (older.node, newer.node) {
        (Some(o), Some(n)) => Some(NodeUsage {
            cpu_nanocores: rate(o.cpu_ns, n.cpu_ns, window_ms),
            memory_bytes: n.memory_bytes,
            timestamp_ms: newer.wall_ms,
            window_ms,
        }),
        _ => None,
    };
    let mut by_pod: BTreeMap<&str, Vec<ContainerUsage>> = BTreeMap::new();
    for (id, now) in &newer.containers {
        if wanted.is_some_and(|w| !w.contains(&id.pod_uid)) {
            continue;
        }
        let Some(before) = older.containers.get(id) else {
            continue;
        };
        by_pod
            .entry(id.pod_uid.as_str())
            .or_default()
            .push(ContainerUsage {
                name: id.container.clone(),
                cpu_nanocores: rate(before.cpu_ns, now.cpu_ns, window_ms),
                memory_bytes: now.memory_bytes,
            });
    }
    let pods = by_pod
        .into_iter()
        .filter_map(|(uid, containers)| {
            let (namespace, name) = pods.get(uid)?.clone();
            Some(PodUsage {
                namespace,
                name,
                uid: uid.to_string(),
                containers,
                timestamp_ms: newer.wall_ms,
                window_ms,
            })
        })
        .collect();
    MetricsReply {
        node,
        pods,
        error: None,
    }
}

/// The last two samples.
#[derive(Default)]
struct Window {
    older: Option<Sample>,
    newer: Option<Sample>,
}

/// Samples every [`SAMPLE_INTERVAL`] and answers requests on `requests` until the task is aborted.
pub(super) async fn serve(
    bus: Bus,
    mut requests: Subscription,
    runtime: Arc<dyn Runtime>,
    pods: Cache<Pod>,
) {
    let window = Arc::new(Mutex::new(Window::default()));
    let sampler = tokio::spawn(sample_forever(runtime, window.clone()));
    while let Some(message) = requests.next().await {
        let reply = if message.payload.len() > MAX_REQUEST {
            MetricsReply {
                error: Some("metrics request too large".into()),
                ..Default::default()
            }
        } else {
            match codec::decode::<MetricsRequest>(&message.payload) {
                Ok(request) => answer(&window, &pods, &request),
                Err(e) => MetricsReply {
                    error: Some(format!("bad metrics request: {e}")),
                    ..Default::default()
                },
            }
        };
        if let Err(e) = bus.respond_encoded(&message, &reply).await {
            tracing::debug!(error = %e, "cannot answer a metrics request");
        }
    }
    sampler.abort();
}

fn answer(window: &Mutex<Window>, pods: &Cache<Pod>, request: &MetricsRequest) -> MetricsReply {
    let names: HashMap<String, (String, String)> = pods
        .list()
        .iter()
        .filter_map(|p| {
            let m = &p.metadata;
            Some((
                m.uid.clone()?,
                (m.namespace.clone().unwrap_or_default(), m.name.clone()?),
            ))
        })
        .collect();
    let window = window.lock().unwrap_or_else(|e| e.into_inner());
    match (&window.older, &window.newer) {
        (Some(older), Some(newer)) => usage(older, newer, &names, request.pod_uids.as_deref()),
        _ => MetricsReply::default(),
    }
}

async fn sample_forever(runtime: Arc<dyn Runtime>, window: Arc<Mutex<Window>>) {
    let began = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let running: Vec<(ContainerId, u32)> = runtime
            .list()
            .await
            .into_iter()
            .filter(|c| c.state == ContainerState::Running)
            .filter_map(|c| Some((c.id, c.pid?)))
            .collect();
        let mono_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
        let wall_ms = navarch_bus::api::meta::now().timestamp_millis();
        let Ok(sample) = tokio::task::spawn_blocking(move || read(running, mono_ms, wall_ms)).await
        else {
            continue;
        };
        let mut window = window.lock().unwrap_or_else(|e| e.into_inner());
        window.older = window.newer.take();
        window.newer = Some(sample);
    }
}

/// Reads the counters of the node and of `running` containers (id and main pid, which leads its process group).
fn read(running: Vec<(ContainerId, u32)>, mono_ms: u64, wall_ms: i64) -> Sample {
    let groups = if running.is_empty() {
        HashMap::new()
    } else {
        usage::read_processes()
    };
    let containers = running
        .into_iter()
        .filter_map(|(id, pid)| {
            let processes = groups.get(&pid).copied();
            let name = format!("{}-{}", id.container, id.attempt);
            let cgroup = CgroupUsage::find(&id.pod_uid, &name).and_then(|c| c.read());
            let counters = match (cgroup, processes) {
                (Some((memory, Some(cpu))), _) => Counters {
                    cpu_ns: cpu,
                    memory_bytes: memory,
                },
                (Some((memory, None)), Some(p)) => Counters {
                    cpu_ns: p.cpu_ns,
                    memory_bytes: memory,
                },
                (None, Some(p)) => p,
                _ => return None,
            };
            Some((id, counters))
        })
        .collect();
    Sample {
        mono_ms,
        wall_ms,
        node: usage::read_node(),
        containers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(pod: &str, container: &str, attempt: u32) -> ContainerId {
        ContainerId {
            pod_uid: pod.into(),
            container: container.into(),
            attempt,
        }
    }

    fn counters(cpu_ns: u64, memory_bytes: u64) -> Counters {
        Counters {
            cpu_ns,
            memory_bytes,
        }
    }

    #[test]
    fn rates_come_from_two_samples_of_the_same_runs() {
        let older = Sample {
            mono_ms: 1_000,
            wall_ms: 0,
            node: Some(counters(10_000_000_000, 1)),
            containers: BTreeMap::from([
                (id("u1", "web", 0), counters(1_000_000_000, 100)),
                (id("u2", "db", 3), counters(0, 100)),
            ]),
        };
        let newer = Sample {
            mono_ms: 6_000,
            wall_ms: 1_700_000_000_000,
            node: Some(counters(20_000_000_000, 2048)),
            containers: BTreeMap::from([
                // Half a core over five seconds.
                (id("u1", "web", 0), counters(3_500_000_000, 4096)),
                // Restarted: a new run, no rate yet.
                (id("u2", "db", 4), counters(10, 100)),
                // Not a pod the agent knows by name.
                (id("u3", "x", 0), counters(10, 100)),
            ]),
        };
        let names = HashMap::from([
            ("u1".to_string(), ("demo".to_string(), "web-1".to_string())),
            ("u2".to_string(), ("demo".to_string(), "db-1".to_string())),
        ]);
        let reply = usage(&older, &newer, &names, None);
        assert_eq!(
            reply.node,
            Some(NodeUsage {
                cpu_nanocores: 2_000_000_000,
                memory_bytes: 2048,
                timestamp_ms: 1_700_000_000_000,
                window_ms: 5_000,
            })
        );
        assert_eq!(
            reply.pods,
            vec![PodUsage {
                namespace: "demo".into(),
                name: "web-1".into(),
                uid: "u1".into(),
                containers: vec![ContainerUsage {
                    name: "web".into(),
                    cpu_nanocores: 500_000_000,
                    memory_bytes: 4096,
                }],
                timestamp_ms: 1_700_000_000_000,
                window_ms: 5_000,
            }]
        );
        let only_u2 = usage(&older, &newer, &names, Some(&["u2".to_string()]));
        assert!(only_u2.pods.is_empty());
        assert_eq!(usage(&newer, &newer, &names, None), MetricsReply::default());
    }

    #[test]
    fn a_live_process_group_is_sampled() {
        let me = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|t| usage::parse_proc_stat(&t))
            .unwrap();
        let sample = read(vec![(id("u1", "c", 0), me.pgid)], 1, 2);
        let mine = sample.containers.get(&id("u1", "c", 0)).unwrap();
        assert!(mine.memory_bytes > 0);
        assert!(sample.node.is_some());
    }
}
