//! Wiring: connect to the bus, start the roles a command asks for, wait for Ctrl-C or SIGTERM, stop them in order
//! (agents first, so pod processes are gone before anything else stops; the store last).

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use navarch_bus::transport::embedded::Embedded;
use navarch_bus::Bus;

use crate::cli::{AgentArgs, Command, CommonArgs, GatewayArgs, StoreArgs, UpArgs};
use crate::kubeconfig;

/// Runs `command` until it is told to stop.
pub async fn run(command: Command) -> Result<()> {
    match command {
        Command::Up(args) => up(args).await,
        Command::Store(args) => store(args).await,
        Command::Gateway(args) => gateway(args).await,
        Command::Scheduler(args) => {
            let bus = connect(&args, "scheduler").await?;
            let roles = Roles {
                scheduler: Some(navarch_actors::start_scheduler(bus, Default::default())?),
                ..Default::default()
            };
            roles.serve().await
        }
        Command::Controllers(args) => {
            let bus = connect(&args, "controllers").await?;
            let roles = Roles {
                controllers: Some(navarch_actors::start_controllers(bus, Default::default())?),
                ..Default::default()
            };
            roles.serve().await
        }
        Command::Agent(args) => agent(args).await,
    }
}

/// The roles running in this process.
#[derive(Default)]
struct Roles {
    store: Option<actix::Addr<navarch_store::StoreMember>>,
    gateway: Option<navarch_gateway::RunningGateway>,
    scheduler: Option<navarch_actors::SchedulerHandle>,
    controllers: Option<navarch_actors::ControllersHandle>,
    agent: Option<navarch_actors::AgentHandle>,
}

impl Roles {
    /// Waits for Ctrl-C or SIGTERM, then stops every role.
    async fn serve(self) -> Result<()> {
        shutdown_signal().await?;
        tracing::info!("stopping");
        self.stop().await
    }

    async fn stop(self) -> Result<()> {
        if let Some(agent) = self.agent {
            agent.shutdown().await;
        }
        if let Some(controllers) = self.controllers {
            controllers.shutdown().await;
        }
        if let Some(scheduler) = self.scheduler {
            scheduler.shutdown().await;
        }
        if let Some(gateway) = self.gateway {
            gateway.shutdown().await.context("stopping the gateway")?;
        }
        if let Some(store) = self.store {
            store
                .send(navarch_store::Shutdown)
                .await
                .context("stopping the store")?
                .context("stopping the store")?;
        }
        Ok(())
    }
}

async fn shutdown_signal() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// A bus connection for one role process; roles other than `up` need a NATS server.
pub(crate) async fn connect(common: &CommonArgs, role: &str) -> Result<Bus> {
    let Some(url) = &common.nats else {
        bail!("--nats URL (or NAVARCH_NATS) is required: a {role} on its own reaches the other roles through NATS")
    };
    Bus::nats(url, &common.cluster, &format!("navarch-{role}"))
        .await
        .with_context(|| format!("connecting to NATS at {url}"))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn absolute(path: &Path) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    path.canonicalize()
        .with_context(|| format!("resolving {}", path.display()))
}

async fn up(args: UpArgs) -> Result<()> {
    let data_dir = absolute(&args.data_dir)?;
    // With the embedded bus every role gets its own connection to one in-process router, as separate processes
    // would have to one NATS server.
    let router = Arc::new(Embedded::new());
    let bus_for = |role: &'static str| {
        let router = router.clone();
        let common = args.common.clone();
        async move {
            match &common.nats {
                Some(url) => Bus::nats(url, &common.cluster, &format!("navarch-up-{role}"))
                    .await
                    .with_context(|| format!("connecting to NATS at {url}")),
                None => Ok(Bus::new(router, &common.cluster).await?),
            }
        }
    };

    let mut roles = Roles::default();
    let started: Result<()> = async {
        let mut store_config = navarch_store::StoreConfig {
            data_dir: data_dir.join("store"),
            ..Default::default()
        };
        store_config.etcd.listen = args.etcd_listen;
        let store =
            navarch_store::StoreMember::start(bus_for("store").await?, store_config).await?;
        print_etcd_address(&store).await;
        roles.store = Some(store);
        let gateway_config = navarch_gateway::GatewayConfig {
            listen: args.api_listen,
            rate_limit: args.api_limit.rate_limit(),
            ..Default::default()
        };
        let gateway = navarch_gateway::start(bus_for("gateway").await?, gateway_config)
            .await
            .with_context(|| format!("starting the API on {}", args.api_listen))?;
        let addr = gateway.addr();
        roles.gateway = Some(gateway);
        roles.scheduler = Some(navarch_actors::start_scheduler(
            bus_for("scheduler").await?,
            Default::default(),
        )?);
        roles.controllers = Some(navarch_actors::start_controllers(
            bus_for("controllers").await?,
            Default::default(),
        )?);
        let agent_config = navarch_actors::AgentConfig {
            node_name: args.node_name.clone().unwrap_or_else(host_name),
            data_dir: data_dir.join("agent"),
            ..Default::default()
        };
        roles.agent =
            Some(navarch_actors::start_agent(bus_for("agent").await?, agent_config).await?);

        let kubeconfig = data_dir.join("kubeconfig");
        kubeconfig::write(&kubeconfig, &args.common.cluster, addr)
            .with_context(|| format!("writing {}", kubeconfig.display()))?;
        let bus = if args.common.nats.is_some() {
            "NATS"
        } else {
            "embedded"
        };
        println!("navarch is up: every role in one process on the {bus} bus");
        println!("API: http://{addr}");
        println!("kubeconfig: {}", kubeconfig.display());
        println!(
            "try: export KUBECONFIG={}; kubectl get nodes",
            kubeconfig.display()
        );
        Ok(())
    }
    .await;
    if let Err(e) = started {
        let _ = roles.stop().await;
        return Err(e);
    }
    roles.serve().await
}

async fn store(args: StoreArgs) -> Result<()> {
    if let Some(tool) = args.tool {
        return crate::store_tools::run(tool).await;
    }
    let Some(data_dir) = args.data_dir else {
        bail!("--data-dir is required to run a store member")
    };
    let bus = connect(&args.common, "store").await?;
    let members = if args.members.is_empty() {
        vec![args.id]
    } else {
        args.members.clone()
    };
    let defaults = navarch_store::StoreConfig::default();
    let mut config = navarch_store::StoreConfig {
        id: args.id,
        data_dir,
        members,
        auto_compaction_retention: args
            .auto_compaction_retention
            .unwrap_or(defaults.auto_compaction_retention),
        quota_bytes: args.quota_backend_bytes.unwrap_or(defaults.quota_bytes),
        snapshot_logs: args.snapshot_count.unwrap_or(defaults.snapshot_logs),
        snapshot_catchup_entries: args
            .snapshot_catchup_entries
            .unwrap_or(defaults.snapshot_catchup_entries),
        bootstrap: !args.join,
        ..defaults
    };
    config.etcd.listen = args.etcd_listen;
    let store = navarch_store::StoreMember::start(bus, config).await?;
    let removed = store.send(navarch_store::UntilRemoved);
    let roles = Roles {
        store: Some(store),
        ..Default::default()
    };
    println!("store member {} is serving", args.id);
    print_etcd_address(roles.store.as_ref().context("the store member")?).await;
    tokio::select! {
        signal = shutdown_signal() => {
            signal?;
            tracing::info!("stopping");
        }
        _ = removed => println!("store member {} was removed from the cluster; stopping", args.id),
    }
    roles.stop().await
}

/// Tells where the member serves the etcd API, if it does.
async fn print_etcd_address(store: &actix::Addr<navarch_store::StoreMember>) {
    if let Ok(Some(address)) = store.send(navarch_store::EtcdAddress).await {
        println!("etcd API: http://{address} (ETCDCTL_API=3 etcdctl --endpoints={address} ...)");
    }
}

async fn gateway(args: GatewayArgs) -> Result<()> {
    let bus = connect(&args.common, "gateway").await?;
    let config = navarch_gateway::GatewayConfig {
        listen: args.api_listen,
        rate_limit: args.api_limit.rate_limit(),
        ..Default::default()
    };
    let gateway = navarch_gateway::start(bus, config)
        .await
        .with_context(|| format!("starting the API on {}", args.api_listen))?;
    let addr = gateway.addr();
    println!("API: http://{addr}");
    if let Some(path) = &args.kubeconfig {
        kubeconfig::write(path, &args.common.cluster, addr)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("kubeconfig: {}", path.display());
    }
    let roles = Roles {
        gateway: Some(gateway),
        ..Default::default()
    };
    roles.serve().await
}

async fn agent(args: AgentArgs) -> Result<()> {
    let bus = connect(&args.common, "agent").await?;
    let config = navarch_actors::AgentConfig {
        node_name: args.node_name.unwrap_or_else(host_name),
        data_dir: absolute(&args.data_dir)?,
        ..Default::default()
    };
    let node = config.node_name.clone();
    let roles = Roles {
        agent: Some(navarch_actors::start_agent(bus, config).await?),
        ..Default::default()
    };
    println!("node agent {node} is running");
    roles.serve().await
}
