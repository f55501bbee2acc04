//! The controllers role: control loops that drive objects toward their spec: the deployment controller (which owns
//! ReplicaSets), the ReplicaSet controller (which owns pods), the namespace controller, the endpoints controller, the
//! garbage collector (which deletes objects whose owners are gone, such as the pods of a deleted Deployment, and
//! carries out Orphan and Foreground deletion), the node lifecycle controller (unreachable nodes tainted, their pods
//! evicted), the horizontal pod autoscaler (`hpa`, which sizes Deployments by their pods' usage), and the public event
//! stream's publisher ([`crate::publisher`]). Each controller
//! is a folder with its
//! pure decisions and its actor, sharing [`queue`] and [`expectations`].

pub mod deployment;
pub mod endpoints;
pub mod expectations;
pub mod gc;
pub mod hpa;
pub mod namespace;
pub mod nodelifecycle;
pub mod queue;
pub mod replicaset;
pub mod wake;

use std::time::Duration;

use actix::{Actor, Addr};
use navarch_bus::api::{EncryptionKeys, Fence, Objects};
use navarch_bus::store::StoreClient;
use navarch_bus::Bus;

pub use deployment::DeploymentController;
pub use endpoints::EndpointsController;
pub use gc::GarbageCollector;
pub use hpa::HpaController;
pub use namespace::NamespaceController;
pub use nodelifecycle::NodeLifecycleController;
pub use replicaset::ReplicaSetController;

use crate::error::{Error, Result};

/// How the controllers behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllersConfig {
    /// Every object is reconciled again this often even without events, so a missed event only delays
    /// convergence. Default 30 s (kube-controller-manager's is hours; a short one suits a young system).
    pub resync_interval: Duration,
    /// Objects reconciled at once per controller. Default 5: kube-controller-manager's
    /// `--concurrent-deployment-syncs`.
    pub workers: usize,
    /// First retry delay after a failed reconcile, doubling per consecutive failure. Default 5 ms: client-go's
    /// per-item rate limiter.
    pub retry_base: Duration,
    /// Longest retry delay. Default 60 s (client-go's 1000 s cap is cut: the resync requeues every key anyway).
    pub retry_max: Duration,
    /// Keys to read (and write) Secrets encrypted at rest: the namespace controller lists and deletes a namespace's
    /// Secrets, and cannot while they are encrypted with keys it lacks. Default none (plain Secrets only).
    pub encryption: Option<EncryptionKeys>,
    /// How long a node's Lease and status may go unrenewed before the node is judged Unknown and tainted
    /// unreachable. Default 50 s: kube-controller-manager's `--node-monitor-grace-period`.
    pub node_monitor_grace_period: Duration,
    /// The fence of an elected leader's writes ([`crate::election`]); None: unfenced (a lone controller manager).
    pub fence: Option<Fence>,
    /// How often each HorizontalPodAutoscaler is synced. Default 15 s: kube-controller-manager's
    /// `--horizontal-pod-autoscaler-sync-period`.
    pub hpa_sync_period: Duration,
}

impl Default for ControllersConfig {
    fn default() -> Self {
        Self {
            resync_interval: Duration::from_secs(30),
            workers: 5,
            retry_base: Duration::from_millis(5),
            retry_max: Duration::from_secs(60),
            encryption: None,
            node_monitor_grace_period: Duration::from_secs(50),
            fence: None,
            hpa_sync_period: hpa::SYNC_PERIOD,
        }
    }
}

impl ControllersConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field, reason: &str| {
            Err(Error::InvalidConfig {
                field,
                reason: reason.into(),
            })
        };
        if self.resync_interval.is_zero() {
            return invalid("resync_interval", "must be positive");
        }
        if self.workers == 0 {
            return invalid("workers", "must be at least 1");
        }
        if self.hpa_sync_period.is_zero() {
            return invalid("hpa_sync_period", "must be positive");
        }
        if self.retry_base.is_zero() {
            return invalid("retry_base", "must be positive");
        }
        if self.retry_max < self.retry_base {
            return invalid("retry_max", "must be at least retry_base");
        }
        if self.node_monitor_grace_period.is_zero() {
            return invalid("node_monitor_grace_period", "must be positive");
        }
        Ok(())
    }
}

/// The running controllers.
#[derive(Debug, Clone)]
pub struct ControllersHandle {
    deployment: Addr<DeploymentController>,
    replica_set: Addr<ReplicaSetController>,
    namespace: Addr<NamespaceController>,
    endpoints: Addr<EndpointsController>,
    gc: Addr<GarbageCollector>,
    publisher: Addr<crate::publisher::EventPublisher>,
    node_lifecycle: Addr<NodeLifecycleController>,
    hpa: Addr<HpaController>,
}

impl ControllersHandle {
    /// The deployment controller.
    pub fn deployment(&self) -> &Addr<DeploymentController> {
        &self.deployment
    }

    /// Stops every controller (their informers stop with them). Writes in flight may or may not land.
    pub async fn shutdown(self) {
        let _ = self.deployment.send(crate::Stop).await;
        let _ = self.replica_set.send(crate::Stop).await;
        let _ = self.namespace.send(crate::Stop).await;
        let _ = self.endpoints.send(crate::Stop).await;
        let _ = self.gc.send(crate::Stop).await;
        let _ = self.publisher.send(crate::Stop).await;
        let _ = self.node_lifecycle.send(crate::Stop).await;
        let _ = self.hpa.send(crate::Stop).await;
    }
}

/// Starts the controllers on `bus`. Call inside a running actix `System` (on a tokio runtime).
pub fn start_controllers(bus: Bus, config: ControllersConfig) -> Result<ControllersHandle> {
    config.validate()?;
    let objects = Objects::new(StoreClient::new(bus))
        .with_encryption(config.encryption.clone())
        .with_fence(config.fence.clone());
    let node_lifecycle =
        NodeLifecycleController::new(objects.clone(), config.node_monitor_grace_period).start();
    let endpoints = EndpointsController::new(objects.clone(), config.clone()).start();
    let deployment = DeploymentController::new(objects.clone(), config.clone()).start();
    let replica_set = ReplicaSetController::new(objects.clone(), config.clone()).start();
    let hpa = HpaController::new(objects.clone(), config.hpa_sync_period).start();
    let gc = GarbageCollector::new(objects.clone(), config).start();
    let publisher = crate::publisher::EventPublisher::new(objects.clone()).start();
    let namespace = NamespaceController::new(objects).start();
    Ok(ControllersHandle {
        deployment,
        replica_set,
        namespace,
        endpoints,
        gc,
        publisher,
        node_lifecycle,
        hpa,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_validation_catches_nonsense() {
        assert!(ControllersConfig::default().validate().is_ok());
        let bad = ControllersConfig {
            workers: 0,
            ..Default::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(Error::InvalidConfig {
                field: "workers",
                ..
            })
        ));
        let bad = ControllersConfig {
            retry_max: Duration::from_millis(1),
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}
