//! The command line: one binary, one subcommand per role, and `up` for all of them in one process.

use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// One member of the consensus store.
    Store(StoreArgs),
    /// The HTTP front door speaking the Kubernetes API.
    Gateway(GatewayArgs),
    /// The scheduler: binds pending pods to nodes.
    Scheduler(CommonArgs),
    /// The controllers: deployments and garbage collection.
    Controllers(CommonArgs),
    /// A node agent: registers a node and runs the pods bound to it.
    Agent(AgentArgs),
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

/// `navarch up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Bus, cluster name. Without `--nats` the roles talk over the embedded in-process bus.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where the store, the agent's pod logs and the kubeconfig live.
    #[arg(long, default_value = ".navarch")]
    pub data_dir: PathBuf,
    /// Address of the Kubernetes API (port 0 picks a free port; the kubeconfig holds the real one).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub api_listen: SocketAddr,
    /// Name of the node the built-in agent registers (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
}

/// `navarch store`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Bus and cluster name.
    #[command(flatten)]
    pub common: CommonArgs,
    /// This member's id.
    #[arg(long, default_value_t = 1)]
    pub id: u64,
    /// Ids of the initial voting members, used on the very first start only (default: just this member).
    #[arg(long, value_delimiter = ',')]
    pub members: Vec<u64>,
    /// Where the member keeps its Raft log and key space.
    #[arg(long)]
    pub data_dir: PathBuf,
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
    /// Write a kubeconfig for this gateway to this file.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

/// `navarch agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Bus and cluster name.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where the agent keeps pod logs.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Name of the node to register (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
}
