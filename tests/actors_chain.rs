//! The control loops against the real store, all on one embedded bus in one actix system: a Deployment becomes
//! running `sleep` processes through the deployment controller, the scheduler and the node agent; it scales up and
//! down, and deleting it leaves no process behind. Agent shutdown stops every process it started.
//!
//! Processes are found by scanning `/proc` for a command line no other test uses, so the checks see the operating
//! system, not the agent's bookkeeping. Waits have generous deadlines; nothing asserts on timing.

mod util;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use navarch_actors::{AgentConfig, ControllersConfig, SchedulerConfig};
use navarch_bus::api::admission::Part;
use navarch_bus::api::k8s_openapi::api::apps::v1::Deployment;
use navarch_bus::api::k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use navarch_bus::api::{resource, DeleteOptions, Objects};
use navarch_bus::store::StoreClient;
use navarch_bus::transport::embedded::Embedded;
use navarch_bus::Bus;
use navarch_store::{StoreConfig, StoreMember};
use serde_json::json;
use util::run_in_system as run;

const CLUSTER: &str = "actors-chain";
const WAIT: Duration = Duration::from_secs(60);

/// Polls `check` until it yields a value, for up to [`WAIT`]; fails naming `what` and the last observation.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(last) if tokio::time::Instant::now() >= deadline => {
                bail!("gave up waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Live (non-zombie) processes whose command line is exactly `argv`.
fn processes(argv: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(") ")
                        .and_then(|(_, rest)| rest.chars().next())
                })
                .is_some_and(|state| state != 'Z' && state != 'X')
        })
        .collect()
}

/// One store member, the scheduler, the controllers and an agent named `node`, each on its own connection to one
/// embedded router; and an API client.
struct Cluster {
    store: actix::Addr<StoreMember>,
    scheduler: navarch_actors::SchedulerHandle,
    controllers: navarch_actors::ControllersHandle,
    agent: Option<navarch_actors::AgentHandle>,
    objects: Objects,
}

impl Cluster {
    async fn start(dir: &Path, node: &str) -> anyhow::Result<Self> {
        let router = Arc::new(Embedded::new());
        let bus = || Bus::new(router.clone(), CLUSTER);
        let store_config = StoreConfig {
            data_dir: dir.join("store"),
            progress_interval: Duration::from_millis(100),
            heartbeat_interval: Duration::from_millis(50),
            election_timeout: Duration::from_millis(300),
            ..Default::default()
        };
        let store = StoreMember::start(bus().await?, store_config).await?;
        let scheduler = navarch_actors::start_scheduler(bus().await?, SchedulerConfig::default())?;
        let controllers = navarch_actors::start_controllers(
            bus().await?,
            ControllersConfig {
                resync_interval: Duration::from_secs(5),
                ..Default::default()
            },
        )?;
        let agent_config = AgentConfig {
            node_name: node.into(),
            data_dir: dir.join("agent"),
            node_ip: Some("127.0.0.1".parse()?),
            shutdown_grace: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(1),
            ..Default::default()
        };
        let agent = navarch_actors::start_agent(bus().await?, agent_config).await?;
        let objects = Objects::new(StoreClient::new(bus().await?));
        Ok(Self {
            store,
            scheduler,
            controllers,
            agent: Some(agent),
            objects,
        })
    }

    /// Creates namespace `demo` (once the store has a leader) and waits for the node to be Ready.
    async fn prepare(&self, node: &str) -> anyhow::Result<()> {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "demo"}}))?;
        wait_for("namespace demo to be created", || async {
            self.objects
                .create_as(&ns)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await?;
        self.prepare_node(node).await
    }

    /// Waits for the node to exist and be Ready.
    async fn prepare_node(&self, node: &str) -> anyhow::Result<()> {
        wait_for(&format!("node {node} to be Ready"), || async {
            let n: Node = self
                .objects
                .get_as(None, node)
                .await
                .map_err(|e| e.to_string())?;
            let ready = n
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .into_iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(()).ok_or_else(|| "not ready".to_string())
        })
        .await
    }

    async fn pods(&self) -> anyhow::Result<Vec<Pod>> {
        Ok(self.objects.list_as::<Pod>(Some("demo")).await?.0)
    }

    /// Waits until namespace `demo` holds exactly `n` pods, all Running and Ready on `node`, and exactly `n` live
    /// processes run `argv`.
    async fn wait_running(&self, n: usize, node: &str, argv: &[&str]) -> anyhow::Result<Vec<Pod>> {
        wait_for(&format!("{n} running pods and {n} processes"), || async {
            let pods = self.pods().await.map_err(|e| e.to_string())?;
            let running = pods
                .iter()
                .filter(|p| {
                    let status = p.status.clone().unwrap_or_default();
                    status.phase.as_deref() == Some("Running")
                        && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
                        && status
                            .conditions
                            .unwrap_or_default()
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                })
                .count();
            let live = processes(argv).len();
            if pods.len() == n && running == n && live == n {
                Ok(pods)
            } else {
                Err(format!(
                    "{} pods, {running} running and ready, {live} processes",
                    pods.len()
                ))
            }
        })
        .await
    }

    async fn set_replicas(&self, name: &str, replicas: i32) -> anyhow::Result<()> {
        self.objects
            .update_with(
                resource::of::<Deployment>(),
                Some("demo"),
                name,
                Part::Main,
                |mut d| {
                    d["spec"]["replicas"] = json!(replicas);
                    Ok(d)
                },
            )
            .await?;
        Ok(())
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(agent) = self.agent.take() {
            agent.shutdown().await;
        }
        self.controllers.shutdown().await;
        self.scheduler.shutdown().await;
        self.store.send(navarch_store::Shutdown).await??;
        Ok(())
    }
}

fn deployment(name: &str, replicas: i32, argv: &[&str]) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 5,
                         "containers": [{"name": "main", "image": "busybox", "command": argv}]}
            }
        }
    }))?)
}

#[test]
fn a_deployment_becomes_processes_scales_and_goes_away() -> anyhow::Result<()> {
    const ARGV: [&str; 2] = ["sleep", "3619"];
    const NEW_ARGV: [&str; 2] = ["sleep", "3623"];
    const NODE: &str = "chain-node";
    run(async {
        let dir = tempfile::tempdir()?;
        let cluster = Cluster::start(dir.path(), NODE).await?;
        let result = async {
            cluster.prepare(NODE).await?;
            cluster
                .objects
                .create_as(&deployment("web", 3, &ARGV)?)
                .await?;

            let pods = cluster.wait_running(3, NODE, &ARGV).await?;
            for pod in &pods {
                let meta = &pod.metadata;
                let name = meta.name.as_deref().unwrap_or_default();
                assert!(name.starts_with("web-"), "{name}");
                let owner = &meta.owner_references.as_ref().context("owner reference")?[0];
                assert_eq!(
                    (owner.kind.as_str(), owner.controller),
                    ("ReplicaSet", Some(true))
                );
                assert!(owner.name.starts_with("web-"), "{}", owner.name);
                assert!(meta
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key("pod-template-hash")));
                let status = pod.status.as_ref().context("status")?;
                assert_eq!(status.pod_ip.as_deref(), Some("127.0.0.1"));
                let scheduled = status
                    .conditions
                    .iter()
                    .flatten()
                    .find(|c| c.type_ == "PodScheduled");
                assert_eq!(scheduled.map(|c| c.status.as_str()), Some("True"));
                let container = &status
                    .container_statuses
                    .as_ref()
                    .context("container statuses")?[0];
                assert!(container
                    .state
                    .as_ref()
                    .is_some_and(|s| s.running.is_some()));
                // Output goes to the log file `kubectl logs` will read.
                let uid = meta.uid.as_deref().unwrap_or_default();
                let log = navarch_actors::runtime::log_path(
                    &dir.path().join("agent"),
                    "demo",
                    name,
                    uid,
                    "main",
                );
                assert!(log.is_file(), "no log file {}", log.display());
            }

            // The Deployment's status reads as `kubectl rollout status` wants it.
            wait_for(
                "the deployment status to show 3 available replicas",
                || async {
                    let d: Deployment = cluster
                        .objects
                        .get_as(Some("demo"), "web")
                        .await
                        .map_err(|e| e.to_string())?;
                    let s = d.status.clone().unwrap_or_default();
                    let progressing = s
                        .conditions
                        .iter()
                        .flatten()
                        .find(|c| c.type_ == "Progressing")
                        .and_then(|c| c.reason.clone());
                    let done = s.observed_generation == d.metadata.generation
                        && s.replicas == Some(3)
                        && s.updated_replicas == Some(3)
                        && s.available_replicas == Some(3)
                        && progressing.as_deref() == Some("NewReplicaSetAvailable");
                    done.then_some(()).ok_or_else(|| format!("{s:?}"))
                },
            )
            .await?;

            // Converged means quiet: no control loop rewrites pods or the Deployment, not even on a resync.
            let versions = |pods: Vec<Pod>, d: Deployment| {
                let mut v: Vec<Option<String>> = pods
                    .into_iter()
                    .map(|p| p.metadata.resource_version)
                    .collect();
                v.push(d.metadata.resource_version);
                v
            };
            let before = versions(
                cluster.pods().await?,
                cluster.objects.get_as(Some("demo"), "web").await?,
            );
            tokio::time::sleep(Duration::from_secs(7)).await; // past one resync (5 s) and several agent ticks (1 s)
            let after = versions(
                cluster.pods().await?,
                cluster.objects.get_as(Some("demo"), "web").await?,
            );
            assert_eq!(before, after, "a converged deployment was rewritten");

            // A new template replaces every pod (the rollout bounds themselves are tested in the core).
            cluster
                .objects
                .update_with(
                    resource::of::<Deployment>(),
                    Some("demo"),
                    "web",
                    Part::Main,
                    |mut d| {
                        d["spec"]["template"]["spec"]["containers"][0]["command"] = json!(NEW_ARGV);
                        Ok(d)
                    },
                )
                .await?;
            cluster.wait_running(3, NODE, &NEW_ARGV).await?;
            wait_for("the old template's processes to be gone", || async {
                let live = processes(&ARGV).len();
                (live == 0)
                    .then_some(())
                    .ok_or_else(|| format!("{live} old processes"))
            })
            .await?;

            cluster.set_replicas("web", 5).await?;
            cluster.wait_running(5, NODE, &NEW_ARGV).await?;

            cluster.set_replicas("web", 1).await?;
            cluster.wait_running(1, NODE, &NEW_ARGV).await?;

            cluster
                .objects
                .delete(
                    resource::of::<Deployment>(),
                    Some("demo"),
                    "web",
                    &DeleteOptions::default(),
                )
                .await?;
            wait_for(
                "every pod and process of the deleted deployment to be gone",
                || async {
                    let pods = cluster.pods().await.map_err(|e| e.to_string())?;
                    let live = processes(&ARGV).len() + processes(&NEW_ARGV).len();
                    (pods.is_empty() && live == 0)
                        .then_some(())
                        .ok_or_else(|| format!("{} pods, {live} processes", pods.len()))
                },
            )
            .await?;
            wait_for("the deleted pods' directories to be removed", || async {
                let left = std::fs::read_dir(dir.path().join("agent").join("pods"))
                    .map(|d| d.count())
                    .unwrap_or(0);
                (left == 0)
                    .then_some(())
                    .ok_or_else(|| format!("{left} pod directories"))
            })
            .await?;
            anyhow::Ok(())
        }
        .await;
        let stopped = cluster.stop().await;
        result.and(stopped)
    })
}

#[test]
fn agent_shutdown_leaves_no_process_running() -> anyhow::Result<()> {
    const ARGV: [&str; 2] = ["sleep", "3621"];
    const NODE: &str = "shutdown-node";
    run(async {
        let dir = tempfile::tempdir()?;
        let mut cluster = Cluster::start(dir.path(), NODE).await?;
        let result = async {
            cluster.prepare(NODE).await?;
            cluster
                .objects
                .create_as(&deployment("keep", 2, &ARGV)?)
                .await?;
            cluster.wait_running(2, NODE, &ARGV).await?;
            let pids = processes(&ARGV);
            assert_eq!(pids.len(), 2);

            let agent = cluster.agent.take().context("agent")?;
            agent.shutdown().await;
            // `shutdown` returns only once the processes are gone: no waiting here.
            assert_eq!(
                processes(&ARGV),
                Vec::<u32>::new(),
                "processes outlived agent shutdown"
            );
            anyhow::Ok(())
        }
        .await;
        let stopped = cluster.stop().await;
        result.and(stopped)
    })
}

#[test]
fn the_agent_recreates_its_node_and_kills_pods_whose_object_vanishes() -> anyhow::Result<()> {
    const ARGV: [&str; 2] = ["sleep", "3625"];
    const NODE: &str = "vanish-node";
    run(async {
        let dir = tempfile::tempdir()?;
        let cluster = Cluster::start(dir.path(), NODE).await?;
        let result = async {
            cluster.prepare(NODE).await?;

            // A deleted Node object comes back with the next heartbeat.
            cluster.objects.delete(resource::of::<Node>(), None, NODE, &DeleteOptions::default()).await?;
            cluster.prepare_node(NODE).await?;

            // A pod bound by hand (no scheduler, no owner) runs; force-deleting its object kills its process.
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": "lonely", "namespace": "demo"},
                "spec": {"nodeName": NODE, "containers": [{"name": "main", "image": "busybox", "command": ARGV}]}
            }))?;
            cluster.objects.create_as(&pod).await?;
            cluster.wait_running(1, NODE, &ARGV).await?;
            let force = DeleteOptions {
                grace_period_seconds: Some(0),
                ..Default::default()
            };
            cluster.objects.delete(resource::of::<Pod>(), Some("demo"), "lonely", &force).await?;
            wait_for("the vanished pod's process to be gone", || async {
                let live = processes(&ARGV).len();
                (live == 0).then_some(()).ok_or_else(|| format!("{live} processes"))
            })
            .await?;
            anyhow::Ok(())
        }
        .await;
        let stopped = cluster.stop().await;
        result.and(stopped)
    })
}
