//! The scheduler role: binds pending pods to nodes. [`placement`] decides; [`Scheduler`] watches and carries out.
//!
//! # Layout
//! - [`placement`]: the pure core: filters, scores and the choice, one round at a time.
//! - `nodes`: what a node says about a pod: readiness, cordons, taints, node selector and node affinity.
//! - `resources`: CPU, memory, pod count and host ports; the two resource scores.
//! - `spread`: topology spread constraints (and the default spreading of a controller's pods).
//! - `affinity`: inter-pod affinity and anti-affinity.
//! - `preemption`: which pods of lower priority to delete when no node fits a pod.
//! - `selectors`: label selectors, node selector terms, pod affinity terms, counts per topology domain.
//! - `actor`: the [`Scheduler`] actor, which watches pods and nodes and writes bindings, conditions and events.

mod actor;
mod affinity;
mod nodes;
pub mod placement;
mod preemption;
mod resources;
mod selectors;
mod spread;

use std::time::Duration;

use actix::{Actor, Addr};
use navarch_bus::api::{Fence, Objects};
use navarch_bus::store::StoreClient;
use navarch_bus::Bus;

pub use actor::Scheduler;

use crate::error::{Error, Result};

/// How the scheduler behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// The `spec.schedulerName` of the pods this scheduler places. Default `default-scheduler`: the name admission
    /// gives pods that name none.
    pub scheduler_name: String,
    /// A node whose Ready condition's `lastHeartbeatTime` is at least this old takes no new pods. Default 40 s:
    /// kube-controller-manager's `--node-monitor-grace-period`.
    pub node_heartbeat_timeout: Duration,
    /// How often unschedulable pods are tried again even if nothing was seen to change. Default 10 s:
    /// kube-scheduler's maximum pod back-off (`podMaxBackoffSeconds`).
    pub retry_interval: Duration,
    /// The fence of an elected leader's writes ([`crate::election`]); None: unfenced (a lone scheduler).
    pub fence: Option<Fence>,
    /// The share of the nodes (in percent) found feasible after which filtering stops and only those are scored.
    /// Default 0, adaptive: kube-scheduler's `percentageOfNodesToScore` default (every node below 100 nodes, else
    /// 50% falling to 5% at 5,625 nodes, at least 100 nodes; see [`placement::feasible_nodes_to_find`]). 100 scores
    /// every feasible node.
    pub percentage_of_nodes_to_score: u32,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            scheduler_name: "default-scheduler".into(),
            node_heartbeat_timeout: Duration::from_secs(40),
            retry_interval: Duration::from_secs(10),
            fence: None,
            percentage_of_nodes_to_score: 0,
        }
    }
}

impl SchedulerConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        if self.scheduler_name.trim().is_empty() {
            return Err(Error::InvalidConfig {
                field: "scheduler_name",
                reason: "must not be empty".into(),
            });
        }
        if self.node_heartbeat_timeout.is_zero() {
            return Err(Error::InvalidConfig {
                field: "node_heartbeat_timeout",
                reason: "must be positive".into(),
            });
        }
        if self.retry_interval.is_zero() {
            return Err(Error::InvalidConfig {
                field: "retry_interval",
                reason: "must be positive".into(),
            });
        }
        if self.percentage_of_nodes_to_score > 100 {
            return Err(Error::InvalidConfig {
                field: "percentage_of_nodes_to_score",
                reason: "must be between 0 and 100".into(),
            });
        }
        Ok(())
    }
}

/// A running scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    addr: Addr<Scheduler>,
}

impl SchedulerHandle {
    /// The scheduler actor.
    pub fn addr(&self) -> &Addr<Scheduler> {
        &self.addr
    }

    /// Stops the scheduler (its informers stop with it). Bindings in flight may or may not land.
    pub async fn shutdown(self) {
        let _ = self.addr.send(crate::Stop).await;
    }
}

/// Starts a scheduler on `bus`. Call inside a running actix `System` (on a tokio runtime).
pub fn start_scheduler(bus: Bus, config: SchedulerConfig) -> Result<SchedulerHandle> {
    config.validate()?;
    let objects = Objects::new(StoreClient::new(bus)).with_fence(config.fence.clone());
    let addr = Scheduler::new(objects, config).start();
    Ok(SchedulerHandle { addr })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_validation_catches_zeroes() {
        assert!(SchedulerConfig::default().validate().is_ok());
        let bad = SchedulerConfig {
            retry_interval: Duration::ZERO,
            ..Default::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(Error::InvalidConfig {
                field: "retry_interval",
                ..
            })
        ));
        let bad = SchedulerConfig {
            percentage_of_nodes_to_score: 101,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}
