//! Navarch's control loops as actix actors: the scheduler, the controllers and the node agent with its container
//! runtimes. Each role decides in pure functions and state machines (no bus, no disk, no clock inside) and its
//! actor only carries the decisions out through the bus.
//!
//! # Layout
//! - [`informer`]: lists and watches one kind into a shared cache and tells an actor what changed.
//! - [`conditions`]: pod conditions the Kubernetes way (transition times move only when the status flips).
//! - [`events`]: records Kubernetes Events about objects, deduplicated (a repeat bumps the count).
//! - [`scheduler`]: binds pending pods to nodes ([`scheduler::placement`] decides, the `Scheduler` actor binds).
//! - [`controllers`]: control loops (deployments, ReplicaSets, endpoints, namespaces, garbage collection), with a
//!   shared work queue and expectations.
//! - [`election`]: leader election by a Lease, so that one of several schedulers or controller managers is active,
//!   with fenced writes.
//! - [`agent`]: the node agent: registers its Node, runs its pods ([`agent::lifecycle`] decides per pod,
//!   [`agent::config`] resolves env and volume files, [`agent::volumes`] lays volumes out on disk).
//! - [`runtime`]: how the agent runs containers: the `Runtime` contract, the process runtime (with, as root, pod
//!   network namespaces in `runtime::netns`, cgroup limits in `runtime::cgroup` and volume mounts in a private
//!   mount namespace per container in `runtime::mounts`) and the Docker runtime (`runtime::docker`).
//! - [`publisher`]: the public event stream: every committed change of an API object as a JSON watch event on
//!   NATS (`docs/events.md`).
//! - [`error`]: the crate's error type.
//!
//! # Starting the roles
//! Inside a running actix `System` on a tokio multi-thread runtime (`actix::System::with_tokio_rt`), with a
//! [`navarch_bus::Bus`]: [`start_scheduler`], [`start_controllers`], [`start_agent`]; each returns a handle whose
//! `shutdown` stops the role (the agent's also stops every container it started).

pub mod agent;
pub mod conditions;
pub mod controllers;
pub mod election;
pub mod error;
pub mod events;
pub mod informer;
pub mod publisher;
pub mod runtime;
pub mod scheduler;

use k8s_openapi::chrono::{DateTime, SubsecRound, Utc};

pub use agent::{start_agent, start_agent_with_runtime, AgentConfig, AgentHandle};
pub use controllers::{start_controllers, ControllersConfig, ControllersHandle};
pub use error::{Error, Result};
pub use scheduler::{start_scheduler, SchedulerConfig, SchedulerHandle};

/// Asks an actor of this crate to stop.
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "()")]
pub struct Stop;

/// The wall-clock time in whole seconds, as API timestamps hold it (so that a decision compared with what it
/// wrote earlier sees no difference in sub-seconds).
pub(crate) fn now() -> DateTime<Utc> {
    navarch_bus::api::meta::now().trunc_subsecs(0)
}
