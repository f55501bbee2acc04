//! Wiring: connect to the bus, start the roles a command asks for, wait for Ctrl-C or SIGTERM, stop them in order
//! (agents first, so pod processes are gone before anything else stops; the store last).

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use navarch_actors::runtime::netns::PodCidr;
use navarch_bus::api::encryption::key_file;
use navarch_bus::api::EncryptionKeys;
use navarch_bus::transport::embedded::Embedded;
use navarch_bus::Bus;

use crate::cli::{
    AgentArgs, Command, CommonArgs, EncryptionArgs, GatewayArgs, RuntimeKind, StoreArgs, UpArgs,
};
use crate::kubeconfig;

/// Where `navarch up` keeps the key file it generates when it is given none.
const GENERATED_KEY_FILE: &str = "encryption-keys.yaml";

/// Runs `command` until it is told to stop.
pub async fn run(command: Command) -> Result<()> {
    match command {
        Command::Up(args) => up(args).await,
        Command::Store(args) => store(args).await,
        Command::Gateway(args) => gateway(args).await,
        Command::Scheduler(args) => {
            let bus = connect(&args.common, "scheduler").await?;
            let mut roles = Roles::default();
            let election = args
                .election
                .config(navarch_actors::election::SCHEDULER_LEASE);
            match election {
                Some(election) => {
                    println!(
                        "scheduler: campaigning for lease {}/{} as {}",
                        election.lease_namespace, election.lease_name, election.identity
                    );
                    let identity = election.identity.clone();
                    let campaign =
                        navarch_actors::election::campaign(bus.clone(), election, move |fence| {
                            println!("scheduler: leading as {identity}");
                            let config = navarch_actors::SchedulerConfig {
                                fence: Some(fence),
                                ..Default::default()
                            };
                            navarch_actors::start_scheduler(bus.clone(), config)
                        })?;
                    roles.campaigns.push(campaign);
                }
                None => {
                    roles.scheduler =
                        Some(navarch_actors::start_scheduler(bus, Default::default())?)
                }
            }
            roles.serve().await
        }
        Command::Controllers(args) => {
            let encryption = keys_from_flag(&args.encryption)?;
            let bus = connect(&args.common, "controllers").await?;
            let config = navarch_actors::ControllersConfig {
                encryption,
                node_monitor_grace_period: args.node_monitor_grace_period,
                hpa_sync_period: args.horizontal_pod_autoscaler_sync_period,
                ..Default::default()
            };
            let mut roles = Roles::default();
            match args
                .election
                .config(navarch_actors::election::CONTROLLERS_LEASE)
            {
                Some(election) => {
                    println!(
                        "controllers: campaigning for lease {}/{} as {}",
                        election.lease_namespace, election.lease_name, election.identity
                    );
                    let identity = election.identity.clone();
                    let campaign =
                        navarch_actors::election::campaign(bus.clone(), election, move |fence| {
                            println!("controllers: leading as {identity}");
                            let config = navarch_actors::ControllersConfig {
                                fence: Some(fence),
                                ..config.clone()
                            };
                            navarch_actors::start_controllers(bus.clone(), config)
                        })?;
                    roles.campaigns.push(campaign);
                }
                None => roles.controllers = Some(navarch_actors::start_controllers(bus, config)?),
            }
            roles.serve().await
        }
        Command::Agent(args) => agent(args).await,
        Command::Secrets(args) => crate::secrets_tools::run(args.tool).await,
    }
}

/// The keys of `--encryption-key-file`, if given; says on stdout how Secrets are stored.
fn keys_from_flag(args: &EncryptionArgs) -> Result<Option<EncryptionKeys>> {
    match &args.encryption_key_file {
        Some(path) => read_keys(path).map(Some),
        None => {
            println!("Secrets: stored unencrypted (no --encryption-key-file)");
            Ok(None)
        }
    }
}

/// The keys in the key file at `path`.
fn read_keys(path: &Path) -> Result<EncryptionKeys> {
    let keys = key_file::read(path)?;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the encryption key file can be read by others than its owner; chmod 600 it");
        }
    }
    println!(
        "Secrets: encrypted at rest with key {} from {}",
        keys.write_key(),
        path.display()
    );
    Ok(keys)
}

/// For `navarch up`: the key file given, or else `<data-dir>/encryption-keys.yaml`, generated with one random key
/// (readable by its owner only) when it does not exist yet, so Secrets are encrypted with no set-up.
fn up_keys(args: &EncryptionArgs, data_dir: &Path) -> Result<EncryptionKeys> {
    if let Some(path) = &args.encryption_key_file {
        return read_keys(path);
    }
    let path: PathBuf = data_dir.join(GENERATED_KEY_FILE);
    let text = key_file::generate(&key_file::random_name()?)?;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            println!(
                "generated an encryption key for Secrets in {}",
                path.display()
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    }
    read_keys(&path)
}

/// The roles running in this process.
#[derive(Default)]
struct Roles {
    store: Option<actix::Addr<navarch_store::StoreMember>>,
    gateway: Option<navarch_gateway::RunningGateway>,
    scheduler: Option<navarch_actors::SchedulerHandle>,
    controllers: Option<navarch_actors::ControllersHandle>,
    agent: Option<navarch_actors::AgentHandle>,
    /// Leader elections of the scheduler and controllers, each running its role while it leads.
    campaigns: Vec<navarch_actors::election::Campaign>,
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
        for campaign in self.campaigns {
            campaign.shutdown().await;
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

/// The API's CA and serving certificate in `dir`, generated on the first start and reused after, covering the
/// listen address (unless it is 0.0.0.0 or ::) and this host's name besides loopback.
fn generated_pki(dir: &Path, listen: std::net::SocketAddr) -> Result<navarch_gateway::Pki> {
    let mut hosts = Vec::new();
    if !listen.ip().is_unspecified() {
        hosts.push(listen.ip().to_string());
    }
    let name = host_name();
    // A host name no certificate can hold (e.g. with a space) is left out rather than stopping the start.
    if rustls::pki_types::ServerName::try_from(name.as_str()).is_ok() {
        hosts.push(name);
    }
    navarch_gateway::ensure_pki(dir, &hosts)
        .with_context(|| format!("preparing the API's certificates in {}", dir.display()))
}

/// The address a local client reaches a listener at: loopback for 0.0.0.0 or ::, which the serving certificate
/// does not name and no client can connect to.
fn reachable(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    let ip: std::net::IpAddr = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    std::net::SocketAddr::new(ip, addr.port())
}

fn absolute(path: &Path) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    path.canonicalize()
        .with_context(|| format!("resolving {}", path.display()))
}

async fn up(args: UpArgs) -> Result<()> {
    let data_dir = absolute(&args.data_dir)?;
    let encryption = up_keys(&args.encryption, &data_dir)?;
    let (authentication, admin_token) = crate::credentials::up_authentication(&data_dir)?;
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
        let pki = generated_pki(&data_dir.join("pki"), args.api_listen)?;
        let gateway_config = navarch_gateway::GatewayConfig {
            listen: args.api_listen,
            rate_limit: args.api_limit.rate_limit(),
            service_cidr: args.service_cluster_ip_range,
            encryption: Some(encryption.clone()),
            authentication,
            tls: Some(pki.serving.clone()),
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
            navarch_actors::ControllersConfig {
                encryption: Some(encryption.clone()),
                node_monitor_grace_period: args.node_monitor_grace_period,
                hpa_sync_period: args.horizontal_pod_autoscaler_sync_period,
                ..Default::default()
            },
        )?);
        let agent_config = navarch_actors::AgentConfig {
            node_name: args.node_name.clone().unwrap_or_else(host_name),
            data_dir: data_dir.join("agent"),
            pod_cidr: pod_cidr(
                args.pod_cidr.as_deref(),
                navarch_actors::runtime::running_as_root(),
            )?,
            encryption: Some(encryption.clone()),
            ..Default::default()
        };
        roles.agent = Some(start_agent(bus_for("agent").await?, agent_config, args.runtime).await?);

        let kubeconfig = data_dir.join("kubeconfig");
        let credentials = kubeconfig::Credentials {
            ca_pem: pki.ca_pem.clone(),
            token: Some(admin_token.clone()),
        };
        kubeconfig::write(
            &kubeconfig,
            &args.common.cluster,
            reachable(addr),
            &credentials,
        )
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
        let bus = if args.common.nats.is_some() {
            "NATS"
        } else {
            "embedded"
        };
        println!("navarch is up: every role in one process on the {bus} bus");
        println!("API: https://{addr}");
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
    let encryption = keys_from_flag(&args.encryption)?;
    let authentication = crate::credentials::authentication(
        args.token_auth_file.as_deref(),
        args.service_account_key_file.as_deref(),
    )?;
    let (tls, ca_pem) = match (&args.tls_cert_file, &args.tls_private_key_file) {
        (Some(cert), Some(key)) => {
            let tls = navarch_gateway::TlsConfig::from_files(cert, key)
                .context("loading --tls-cert-file and --tls-private-key-file")?;
            // The CA behind given files is unknown here; clients trusting the chain itself accept it (its last
            // certificate is the root when the file holds the whole chain).
            let ca_pem = tls.cert_chain_pem.clone();
            (tls, ca_pem)
        }
        (None, None) => {
            let pki = generated_pki(&args.pki_dir, args.api_listen)?;
            (pki.serving, pki.ca_pem)
        }
        _ => bail!("--tls-cert-file and --tls-private-key-file go together: give both, or neither to generate a CA in --pki-dir"),
    };
    let bus = connect(&args.common, "gateway").await?;
    let config = navarch_gateway::GatewayConfig {
        listen: args.api_listen,
        rate_limit: args.api_limit.rate_limit(),
        service_cidr: args.service_cluster_ip_range,
        encryption,
        authentication,
        tls: Some(tls),
        ..Default::default()
    };
    let gateway = navarch_gateway::start(bus, config)
        .await
        .with_context(|| format!("starting the API on {}", args.api_listen))?;
    let addr = gateway.addr();
    println!("API: https://{addr}");
    if let Some(path) = &args.kubeconfig {
        // The kubeconfig of a gateway authenticates as the first `system:masters` member of its token file.
        let credentials = kubeconfig::Credentials {
            ca_pem,
            token: crate::credentials::masters_token(args.token_auth_file.as_deref())?,
        };
        kubeconfig::write(path, &args.common.cluster, reachable(addr), &credentials)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("kubeconfig: {}", path.display());
    }
    let roles = Roles {
        gateway: Some(gateway),
        ..Default::default()
    };
    roles.serve().await
}

/// The agent's pod CIDR from `--pod-cidr` (`auto`, `none` or a CIDR); without the flag, `auto` if `auto_default`.
fn pod_cidr(flag: Option<&str>, auto_default: bool) -> Result<Option<PodCidr>> {
    match flag {
        None if auto_default => Ok(Some(PodCidr::Auto)),
        None | Some("none") => Ok(None),
        Some(value) => value
            .parse()
            .map(Some)
            .with_context(|| "--pod-cidr".to_string()),
    }
}

/// Starts a node agent on the runtime `kind`.
async fn start_agent(
    bus: Bus,
    config: navarch_actors::AgentConfig,
    kind: RuntimeKind,
) -> Result<navarch_actors::AgentHandle> {
    match kind {
        RuntimeKind::Process => Ok(navarch_actors::start_agent(bus, config).await?),
        RuntimeKind::Docker => {
            tokio::fs::create_dir_all(&config.data_dir)
                .await
                .with_context(|| format!("creating {}", config.data_dir.display()))?;
            let runtime = navarch_actors::runtime::DockerRuntime::connect(config.data_dir.clone())
                .await
                .context("connecting to the Docker Engine (--runtime docker)")?;
            Ok(navarch_actors::start_agent_with_runtime(bus, config, Arc::new(runtime)).await?)
        }
    }
}

async fn agent(args: AgentArgs) -> Result<()> {
    if let Some(count) = args.simulate {
        return hollow_nodes(&args.common, count, args.node_prefix).await;
    }
    let Some(data_dir) = &args.data_dir else {
        bail!("--data-dir is required to run a node agent")
    };
    let flags = registration(&args)?;
    let bus = connect(&args.common, "agent").await?;
    let config = navarch_actors::AgentConfig {
        node_name: args.node_name.unwrap_or_else(host_name),
        data_dir: absolute(data_dir)?,
        pod_cidr: pod_cidr(args.pod_cidr.as_deref(), false)?,
        // The agent only reads Secrets; without keys it can read plain ones only (no need to say so on stdout).
        encryption: match &args.encryption.encryption_key_file {
            Some(path) => Some(read_keys(path)?),
            None => None,
        },
        ..flags
    };
    let node = config.node_name.clone();
    let roles = Roles {
        agent: Some(start_agent(bus, config, args.runtime).await?),
        ..Default::default()
    };
    println!("node agent {node} is running");
    roles.serve().await
}

/// The default agent config with what `--node-labels`, `--register-with-taints` and `--system-reserved` say; a bad
/// flag is refused with what is wrong with it.
fn registration(args: &AgentArgs) -> Result<navarch_actors::AgentConfig> {
    use navarch_actors::agent::registration::{parse_labels, parse_reserved, parse_taints};
    let mut parsed = navarch_actors::AgentConfig::default();
    if let Some(text) = &args.node_labels {
        parsed.labels = parse_labels(text).map_err(|e| anyhow::anyhow!("--node-labels: {e}"))?;
    }
    if let Some(text) = &args.register_with_taints {
        parsed.taints =
            parse_taints(text).map_err(|e| anyhow::anyhow!("--register-with-taints: {e}"))?;
    }
    if let Some(text) = &args.system_reserved {
        parsed.reserved =
            parse_reserved(text).map_err(|e| anyhow::anyhow!("--system-reserved: {e}"))?;
    }
    let size = navarch_bus::api::quantity::Quantity::parse(&args.container_log_max_size)
        .map_err(|e| anyhow::anyhow!("--container-log-max-size: {e}"))?
        .units();
    parsed.log_limits = navarch_actors::runtime::LogLimits {
        max_size: u64::try_from(size)
            .map_err(|_| anyhow::anyhow!("--container-log-max-size: must not be negative"))?,
        max_files: args.container_log_max_files,
    };
    parsed
        .log_limits
        .validate()
        .map_err(|e| anyhow::anyhow!("--container-log-max-size/--container-log-max-files: {e}"))?;
    Ok(parsed)
}

/// `navarch agent --simulate N`: N hollow nodes in this process until told to stop.
async fn hollow_nodes(common: &CommonArgs, count: usize, prefix: String) -> Result<()> {
    let config = navarch_actors::agent::hollow::HollowConfig {
        count,
        prefix,
        ..Default::default()
    };
    config.validate()?;
    let bus = connect(common, "hollow-nodes").await?;
    let first = config.node_name(0);
    let last = config.node_name(count.saturating_sub(1));
    let nodes = navarch_actors::agent::start_hollow_nodes(bus, config)?;
    println!("{count} hollow nodes are running ({first} .. {last})");
    shutdown_signal().await?;
    tracing::info!("stopping");
    nodes.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent_flags(extra: &[&str]) -> Result<navarch_actors::AgentConfig> {
        use clap::Parser as _;
        let args = [&["navarch", "agent", "--data-dir", "d"], extra].concat();
        match crate::cli::Cli::try_parse_from(args)?.command {
            Command::Agent(a) => registration(&a),
            other => bail!("parsed as {other:?}"),
        }
    }

    #[test]
    fn registration_flags() {
        let config = agent_flags(&[
            "--node-labels",
            "disk=ssd,example.com/zone=a",
            "--register-with-taints",
            "dedicated=infra:NoSchedule",
            "--system-reserved",
            "cpu=100m,memory=256Mi",
        ])
        .unwrap();
        assert_eq!(config.labels["disk"], "ssd");
        assert_eq!(config.labels["example.com/zone"], "a");
        assert_eq!(config.taints.len(), 1);
        assert_eq!(config.taints[0].key, "dedicated");
        assert_eq!(config.reserved.cpu_millis, 100);
        assert_eq!(config.reserved.memory_bytes, 256 << 20);
        let none = agent_flags(&[]).unwrap();
        assert!(none.labels.is_empty() && none.taints.is_empty());
        let bad = agent_flags(&["--register-with-taints", "dedicated=infra:Sometimes"]);
        let message = bad.unwrap_err().to_string();
        assert!(message.starts_with("--register-with-taints: "), "{message}");
        assert!(agent_flags(&["--node-labels", "bad label=x"]).is_err());
        assert!(agent_flags(&["--system-reserved", "memory=lots"]).is_err());
    }

    #[test]
    fn pod_cidr_flags() {
        assert_eq!(pod_cidr(None, true).unwrap(), Some(PodCidr::Auto));
        assert_eq!(pod_cidr(None, false).unwrap(), None);
        assert_eq!(pod_cidr(Some("none"), true).unwrap(), None);
        assert_eq!(pod_cidr(Some("auto"), false).unwrap(), Some(PodCidr::Auto));
        assert_eq!(
            pod_cidr(Some("10.88.3.0/24"), false).unwrap(),
            Some(PodCidr::Fixed("10.88.3.0/24".parse().unwrap()))
        );
        assert!(pod_cidr(Some("10.88.3.1/24"), true).is_err());
    }
}
