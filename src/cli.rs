//! The command line: one binary, one subcommand per role, and `up` for all of them in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Navarch: a Kubernetes-style orchestration platform built as actors on a message bus.
#[derive(Debug, Parser)]
#[command(name = "navarch", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The roles and tools.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every role in one process: store, gateway, scheduler, controllers and one node agent.
    Up(UpArgs),
    /// One member of the consensus store; with a subcommand, a tool for the store cluster.
    Store(StoreArgs),
    /// The HTTP front door speaking the Kubernetes API.
    Gateway(GatewayArgs),
    /// The scheduler: binds pending pods to nodes.
    Scheduler(SchedulerArgs),
    /// The controllers: deployments, namespaces, garbage collection and node lifecycle.
    Controllers(ControllersArgs),
    /// A node agent: registers a node and runs the pods bound to it.
    Agent(AgentArgs),
    /// Tools for Secrets, which are encrypted at rest.
    Secrets(SecretsArgs),
}

/// The encryption keys of the roles that read or write Secrets (the gateway, the controllers and the node agents).
#[derive(Debug, Args, Clone)]
pub struct EncryptionArgs {
    /// YAML file of the keys that encrypt Secrets at rest: `keys:` then a list of `- name: ID` / `secret: BASE64`
    /// of 32 random bytes. The first key encrypts every write; every key listed decrypts (keep the old key after a
    /// new one until `navarch secrets reencrypt` has run).
    #[arg(long, env = "NAVARCH_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,
}

/// Flags every role shares.
#[derive(Debug, Args, Clone)]
pub struct CommonArgs {
    /// NATS server(s) to connect to, e.g. nats://127.0.0.1:4222 (comma-separated for a cluster).
    #[arg(long, env = "NAVARCH_NATS")]
    pub nats: Option<String>,
    /// Cluster name: subjects start with `navarch.<cluster>.` so clusters can share a NATS.
    #[arg(long, env = "NAVARCH_CLUSTER", default_value = "default")]
    pub cluster: String,
}

/// How many API requests each client (by address) may make; over it the API answers 429 with `Retry-After`.
#[derive(Debug, Args)]
pub struct ApiLimitArgs {
    /// Requests per second each client is allowed on average (0: no limit).
    #[arg(long, default_value_t = 500)]
    pub api_rate_limit_qps: u32,
    /// Requests each client may make at once, above the average.
    #[arg(long, default_value_t = 1000)]
    pub api_rate_limit_burst: u32,
}

impl ApiLimitArgs {
    /// The limit the gateway enforces (None: unlimited).
    pub fn rate_limit(&self) -> Option<navarch_gateway::RateLimit> {
        (self.api_rate_limit_qps > 0).then_some(navarch_gateway::RateLimit {
            qps: self.api_rate_limit_qps,
            burst: self.api_rate_limit_burst.max(1),
        })
    }
}

/// `navarch up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Bus, cluster name. Without `--nats` the roles talk over the embedded in-process bus.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where the store, the agent's pod logs, the kubeconfig and the API's CA and certificate (`pki/`) live.
    #[arg(long, default_value = ".navarch")]
    pub data_dir: PathBuf,
    /// Address of the Kubernetes API (port 0 picks a free port; the kubeconfig holds the real one).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub api_listen: SocketAddr,
    /// The API's per-client rate limit.
    #[command(flatten)]
    pub api_limit: ApiLimitArgs,
    /// Where Services' cluster IPs come from, as kube-apiserver's flag (its first address is the `kubernetes`
    /// Service's). Every gateway of a cluster needs the same range.
    #[arg(long, default_value = "10.96.0.0/16")]
    pub service_cluster_ip_range: navarch_bus::api::ServiceCidr,
    /// Name of the node the built-in agent registers (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Give each pod its own network namespace and an IP from this CIDR (e.g. 10.88.0.0/24) on a node bridge;
    /// `auto` picks a free 10.88.N.0/24, `none` keeps pods on the host's network. Default: `auto` as root, else
    /// `none` (without root pods always share the host's network).
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// How the built-in agent runs containers.
    #[arg(long, value_enum, default_value_t = RuntimeKind::Process)]
    pub runtime: RuntimeKind,
    /// Also serve the etcd v3 gRPC API of the store on this address (off unless given; port 0 picks a free port).
    #[arg(long)]
    pub etcd_listen: Option<SocketAddr>,
    /// Encryption keys for Secrets. Without a key file, `up` uses `<data-dir>/encryption-keys.yaml`, generating it
    /// (mode 0600, one random key) on the first start.
    #[command(flatten)]
    pub encryption: EncryptionArgs,
    /// How long a node may go without renewing its Lease before it is marked Unknown and tainted unreachable
    /// (kube-controller-manager's flag).
    #[arg(long, value_parser = parse_duration, default_value = "50s")]
    pub node_monitor_grace_period: Duration,
    /// How often each HorizontalPodAutoscaler is synced, e.g. `15s` (kube-controller-manager's flag and default).
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub horizontal_pod_autoscaler_sync_period: Duration,
}

/// `navarch store`: runs a member, or with a subcommand talks to the store cluster.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct StoreArgs {
    /// Bus and cluster name.
    #[command(flatten)]
    pub common: CommonArgs,
    /// This member's id.
    #[arg(long, default_value_t = 1)]
    pub id: u64,
    /// Ids of the initial voting members, e.g. 1,2,3: started with the same list, they form the cluster on their
    /// very first start (default: just this member). Ignored once the data directory holds a cluster.
    #[arg(long, value_delimiter = ',')]
    pub members: Vec<u64>,
    /// Join an existing cluster: start empty and wait until the cluster adds this member
    /// (`navarch store member add ID`), then catch up from the leader.
    #[arg(long, conflicts_with = "members")]
    pub join: bool,
    /// Where the member keeps its Raft log and key space.
    #[arg(long, required = true)]
    pub data_dir: Option<PathBuf>,
    /// History kept by automatic compaction, e.g. `5m`, `90s`, `1h` (`0`: never compact automatically; default
    /// 5 minutes), like etcd's periodic `--auto-compaction-retention`.
    #[arg(long, value_parser = parse_duration)]
    pub auto_compaction_retention: Option<Duration>,
    /// The space quota in bytes, past which writes are refused with a NOSPACE alarm (default 2 GiB, etcd's).
    #[arg(long)]
    pub quota_backend_bytes: Option<u64>,
    /// Serve the etcd v3 gRPC API on this address, e.g. 127.0.0.1:2379 (port 0 picks a free port).
    #[arg(long)]
    pub etcd_listen: Option<SocketAddr>,
    /// Log entries applied between snapshot points, after which the log behind the point is purged (default
    /// 10,000), like etcd's `--snapshot-count`; one entry may carry many writes proposed together.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_count: Option<u64>,
    /// Log entries kept behind a snapshot point, so a briefly lagging member catches up from the log (default
    /// 5,000), like etcd's `--experimental-snapshot-catchup-entries`.
    #[arg(long)]
    pub snapshot_catchup_entries: Option<u64>,
    /// A tool instead of a member.
    #[command(subcommand)]
    pub tool: Option<StoreTool>,
}

/// Parses `90s`, `5m`, `1h` or `0` (a bare number is seconds).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 5m or 1h"))?;
    let seconds = match unit {
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    };
    seconds
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is not a duration like 90s, 5m or 1h"))
}

/// `navarch store <tool>`: talks to a running store cluster over NATS.
#[derive(Debug, Subcommand)]
pub enum StoreTool {
    /// List, add, remove or promote members.
    Member {
        /// Bus and cluster name.
        #[command(flatten)]
        bus: ToolArgs,
        /// What to do.
        #[command(subcommand)]
        action: MemberAction,
    },
    /// Print the object stored at KEY as YAML (values that are not JSON as text).
    Get {
        /// Bus and cluster name.
        #[command(flatten)]
        bus: ToolArgs,
        /// The key, e.g. /registry/pods/default/web-1.
        key: String,
        /// Print every object whose key starts with KEY.
        #[arg(long)]
        prefix: bool,
    },
    /// Every member's status: leader, term, log and applied index, revision, size.
    Status {
        /// Bus and cluster name.
        #[command(flatten)]
        bus: ToolArgs,
    },
}

/// `navarch store member ...`.
#[derive(Debug, Subcommand)]
pub enum MemberAction {
    /// Every member, voters and learners.
    List,
    /// Add a member (start it with `navarch store --join --id ID`). As a voter it must be running: it votes once
    /// it has caught up; with `--learner` it only receives the log until promoted.
    Add {
        /// Its id.
        id: u64,
        /// Add it as a learner.
        #[arg(long)]
        learner: bool,
        /// Its name (default: member-ID).
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a member (refused when the voters left would have no quorum).
    Remove {
        /// Its id.
        id: u64,
    },
    /// Make a learner that has caught up a voter.
    Promote {
        /// Its id.
        id: u64,
    },
}

/// Bus flags of the store tools; accepted anywhere after the tool's name.
#[derive(Debug, Args, Clone)]
pub struct ToolArgs {
    /// NATS server(s) of the cluster, e.g. nats://127.0.0.1:4222.
    #[arg(long, env = "NAVARCH_NATS", global = true)]
    pub nats: Option<String>,
    /// Cluster name.
    #[arg(
        long,
        env = "NAVARCH_CLUSTER",
        default_value = "default",
        global = true
    )]
    pub cluster: String,
}

impl From<ToolArgs> for CommonArgs {
    fn from(args: ToolArgs) -> Self {
        CommonArgs {
            nats: args.nats,
            cluster: args.cluster,
        }
    }
}

/// `navarch gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Bus and cluster name.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address of the Kubernetes API (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub api_listen: SocketAddr,
    /// The API's per-client rate limit.
    #[command(flatten)]
    pub api_limit: ApiLimitArgs,
    /// Where Services' cluster IPs come from, as kube-apiserver's flag (its first address is the `kubernetes`
    /// Service's). Every gateway of a cluster needs the same range.
    #[arg(long, default_value = "10.96.0.0/16")]
    pub service_cluster_ip_range: navarch_bus::api::ServiceCidr,
    /// Write a kubeconfig for this gateway to this file.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The serving certificate (PEM chain, serving certificate first), as kube-apiserver's flag; needs
    /// --tls-private-key-file. Without both, a CA and serving certificate are generated in --pki-dir.
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// The serving certificate's private key (PEM), as kube-apiserver's flag; needs --tls-cert-file.
    #[arg(long)]
    pub tls_private_key_file: Option<PathBuf>,
    /// Where the generated CA (`ca.crt`, `ca.key`) and serving certificate are kept when no --tls-cert-file is
    /// given; reused on the next start.
    #[arg(long, default_value = ".navarch/pki")]
    pub pki_dir: PathBuf,
    /// Encryption keys for Secrets (without a key file, Secrets are stored in plain JSON).
    #[command(flatten)]
    pub encryption: EncryptionArgs,
    /// Bearer tokens the API accepts, in kube-apiserver's format: one `token,user,uid,"group1,group2"` per line
    /// (`system:masters` members may do anything; others get what RBAC grants them).
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// The key that signs and verifies service-account tokens (base64 of 32 random bytes; every gateway of a
    /// cluster needs the same one). Without it, TokenRequest (`kubectl create token`) is not served.
    #[arg(long)]
    pub service_account_key_file: Option<PathBuf>,
}

/// `navarch controllers`.
#[derive(Debug, Args)]
pub struct ControllersArgs {
    /// Bus and cluster name.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Encryption keys for Secrets: the namespace controller lists and deletes a namespace's Secrets, so it needs
    /// the gateway's keys.
    #[command(flatten)]
    pub encryption: EncryptionArgs,
    /// Leader election among several controller managers.
    #[command(flatten)]
    pub election: ElectionArgs,
    /// How long a node may go without renewing its Lease before it is marked Unknown and tainted unreachable
    /// (kube-controller-manager's flag).
    #[arg(long, value_parser = parse_duration, default_value = "50s")]
    pub node_monitor_grace_period: Duration,
    /// How often each HorizontalPodAutoscaler is synced, e.g. `15s` (kube-controller-manager's flag and default).
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub horizontal_pod_autoscaler_sync_period: Duration,
}

/// `navarch scheduler`.
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Bus and cluster name.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Leader election among several schedulers.
    #[command(flatten)]
    pub election: ElectionArgs,
}

/// Leader election, with kube-controller-manager's and kube-scheduler's flags and defaults: of the copies of a role
/// running with the same Lease, one is active.
#[derive(Debug, Args, Clone)]
pub struct ElectionArgs {
    /// Elect a leader among the copies of this role (`--leader-elect=false`: this copy is always active; run only
    /// one then).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// How long a standby waits after the leader's last renewal it saw before taking over.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub leader_elect_lease_duration: Duration,
    /// How long the leader keeps leading without a successful renewal (shorter than the lease duration).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub leader_elect_renew_deadline: Duration,
    /// How often the Lease is read and renewed.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub leader_elect_retry_period: Duration,
    /// Namespace of the Lease.
    #[arg(long, default_value = "kube-system")]
    pub leader_elect_resource_namespace: String,
    /// Name of the Lease (default: `navarch-controllers` or `navarch-scheduler`).
    #[arg(long)]
    pub leader_elect_resource_name: Option<String>,
    /// This copy's holder identity (default: `<hostname>_<pid>`).
    #[arg(long)]
    pub leader_elect_identity: Option<String>,
}

impl ElectionArgs {
    /// The election's configuration for the Lease named `default_name` unless the flags name another; None with
    /// `--leader-elect=false`.
    pub fn config(&self, default_name: &str) -> Option<navarch_actors::election::ElectionConfig> {
        self.leader_elect
            .then(|| navarch_actors::election::ElectionConfig {
                lease_namespace: self.leader_elect_resource_namespace.clone(),
                lease_name: self
                    .leader_elect_resource_name
                    .clone()
                    .unwrap_or_else(|| default_name.to_string()),
                identity: self
                    .leader_elect_identity
                    .clone()
                    .unwrap_or_else(navarch_actors::election::default_identity),
                lease_duration: self.leader_elect_lease_duration,
                renew_deadline: self.leader_elect_renew_deadline,
                retry_period: self.leader_elect_retry_period,
            })
    }
}

/// `navarch secrets <tool>`.
#[derive(Debug, Args)]
pub struct SecretsArgs {
    /// What to do.
    #[command(subcommand)]
    pub tool: SecretsTool,
}

/// Tools for Secrets, run against a running API.
#[derive(Debug, Subcommand)]
pub enum SecretsTool {
    /// Rewrite every Secret through the API, so each is stored encrypted with the API's current write key (the
    /// first in its key file). Run it after putting a new key first; then the old key can be removed. Each write
    /// is a compare-and-swap on the Secret's resourceVersion: a Secret changed meanwhile is read again and retried.
    Reencrypt {
        /// The kubeconfig of the API (e.g. `.navarch/kubeconfig`); its current context's server is used.
        #[arg(long, env = "KUBECONFIG")]
        kubeconfig: Option<PathBuf>,
    },
}

/// `navarch agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Bus and cluster name.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where the agent keeps pod logs (not needed with --simulate).
    #[arg(long, required_unless_present = "simulate")]
    pub data_dir: Option<PathBuf>,
    /// Name of the node to register (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Give each pod its own network namespace and an IP from this CIDR (e.g. 10.88.0.0/24) on a node bridge
    /// (needs root); `auto` picks a free 10.88.N.0/24. Default: pods share the host's network.
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// The keys that open Secrets encrypted at rest (env from Secrets, secret volumes).
    #[command(flatten)]
    pub encryption: EncryptionArgs,
    /// How the agent runs containers.
    #[arg(long, value_enum, default_value_t = RuntimeKind::Process)]
    pub runtime: RuntimeKind,
    /// Labels to put on the Node, as `key=value,key2=value2` (the kubelet's --node-labels).
    #[arg(long, value_name = "LABELS", conflicts_with = "simulate")]
    pub node_labels: Option<String>,
    /// Taints the Node registers with, as `key=value:Effect,...` with effects NoSchedule, PreferNoSchedule or
    /// NoExecute (the kubelet's --register-with-taints). Re-added if the Node is re-created; never removed.
    #[arg(long, value_name = "TAINTS", conflicts_with = "simulate")]
    pub register_with_taints: Option<String>,
    /// What the node keeps for itself, out of the Node's allocatable, as `cpu=100m,memory=256Mi` (the kubelet's
    /// --system-reserved).
    #[arg(long, value_name = "RESOURCES", conflicts_with = "simulate")]
    pub system_reserved: Option<String>,
    /// A container's log file is rotated once it reaches this size, a quantity such as `10Mi` (the kubelet's
    /// --container-log-max-size).
    #[arg(
        long,
        value_name = "SIZE",
        default_value = "10Mi",
        conflicts_with = "simulate"
    )]
    pub container_log_max_size: String,
    /// Log files kept per container, the one being written included; at least 2 (the kubelet's
    /// --container-log-max-files).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 5,
        conflicts_with = "simulate"
    )]
    pub container_log_max_files: usize,
    /// Run N simulated ("hollow") nodes instead of a real one, like kubemark or KWOK: they register, renew their
    /// heartbeat and report every pod bound to them Running without starting anything. For scale tests.
    #[arg(long, value_name = "N", conflicts_with_all = ["node_name", "pod_cidr", "data_dir"])]
    pub simulate: Option<usize>,
    /// With --simulate, the nodes are named PREFIX-00001, PREFIX-00002, ...
    #[arg(long, default_value = "hollow", requires = "simulate")]
    pub node_prefix: String,
}

/// Which container runtime a node agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// Each container is a process on the host (commands from the pod spec; images are not read).
    Process,
    /// Each container is a Docker container from an image on the node, pods in a sandbox container holding their
    /// network (`--pod-cidr` does not apply: Docker's default bridge gives the IPs).
    Docker,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_etcds_flags() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn the_runtime_flag_defaults_to_processes() {
        use clap::Parser as _;
        let runtime = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Command::Agent(a)) => Ok(a.runtime),
            Ok(Command::Up(a)) => Ok(a.runtime),
            Ok(other) => panic!("parsed as {other:?}"),
            Err(e) => Err(e.kind()),
        };
        let agent = ["navarch", "agent", "--data-dir", "d"];
        assert_eq!(runtime(&agent), Ok(RuntimeKind::Process));
        assert_eq!(
            runtime(&[&agent[..], &["--runtime", "docker"]].concat()),
            Ok(RuntimeKind::Docker)
        );
        assert_eq!(
            runtime(&["navarch", "up", "--runtime", "docker"]),
            Ok(RuntimeKind::Docker)
        );
        assert_eq!(
            runtime(&["navarch", "up", "--runtime", "containerd"]),
            Err(clap::error::ErrorKind::InvalidValue)
        );
    }
}
