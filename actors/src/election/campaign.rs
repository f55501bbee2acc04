//! The campaign: a task that carries out one candidate's [`Election`]: reads the Lease every retry period, writes
//! what the election decides, starts the role (with its writes fenced) when this candidate becomes leader and stops
//! it when it no longer is.
//!
//! Accepts: nothing but [`Campaign::shutdown`] (which stops the role and releases the Lease).
//! Emits, through `Objects` on `store.rpc`: reads and compare-and-swap writes of the Lease
//! `<lease_namespace>/<lease_name>`; acquisitions also put the Lease's fence key.

use std::future::Future;

use k8s_openapi::api::coordination::v1::Lease;
use navarch_bus::api::admission::{FieldValidation, Part};
use navarch_bus::api::{meta, resource, ApiError, Fence, Objects, Reason};
use navarch_bus::store::StoreClient;
use navarch_bus::Bus;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Action, Election, ElectionConfig, LeaderRecord, Observed, Outcome, Transition};
use crate::error::Result;

/// A role that runs only while its process leads.
pub trait Role {
    /// Stops the role's actors. Writes in flight may land only while the fence still holds.
    fn stop(self) -> impl Future<Output = ()>;
}

impl Role for crate::ControllersHandle {
    fn stop(self) -> impl Future<Output = ()> {
        self.shutdown()
    }
}

impl Role for crate::SchedulerHandle {
    fn stop(self) -> impl Future<Output = ()> {
        self.shutdown()
    }
}

/// A running campaign; [`Campaign::shutdown`] ends it.
#[derive(Debug)]
pub struct Campaign {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Campaign {
    /// Stops the role if this candidate leads, gives the Lease up so a standby takes over at once, and ends the
    /// campaign.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Starts campaigning for the Lease of `config` on `bus`: `start` is called with the fence to give the role's
/// writes each time this candidate becomes leader; the role it returns is stopped when leadership ends. Call inside
/// a running actix `System` (the campaign and the roles it starts run on its arbiter).
pub fn campaign<R, F>(bus: Bus, config: ElectionConfig, start: F) -> Result<Campaign>
where
    R: Role + 'static,
    F: FnMut(Fence) -> Result<R> + 'static,
{
    config.validate()?;
    let objects = Objects::new(StoreClient::new(bus));
    let (stop, stopped) = oneshot::channel();
    let task = actix::spawn(run(objects, config, start, stopped));
    Ok(Campaign { stop, task })
}

fn lease_info() -> &'static navarch_bus::api::ResourceInfo {
    resource::of::<Lease>()
}

/// The Lease as read (with the object itself, for the next write), or None when the read failed.
async fn read(objects: &Objects, config: &ElectionConfig) -> Option<(Observed, Option<Value>)> {
    let got = objects
        .get(
            lease_info(),
            Some(&config.lease_namespace),
            &config.lease_name,
        )
        .await;
    match got {
        Ok(object) => {
            let lease: Lease = serde_json::from_value(object.clone()).ok()?;
            let resource_version = meta::resource_version(&object)
                .and_then(|rv| rv.parse().ok())
                .unwrap_or_default();
            let record = LeaderRecord::of(&lease);
            Some((
                Observed::Found {
                    record,
                    resource_version,
                },
                Some(object),
            ))
        }
        Err(e) if e.reason == Reason::NotFound => Some((Observed::Missing, None)),
        Err(e) => {
            tracing::warn!(lease = %config.lease_name, error = %e, "cannot read the leader lease");
            None
        }
    }
}

fn outcome_of(result: std::result::Result<Option<Value>, ApiError>) -> Outcome {
    match result {
        Ok(Some(object)) => meta::resource_version(&object)
            .and_then(|rv| rv.parse().ok())
            .map_or(Outcome::Failed, Outcome::Written),
        Ok(None) => Outcome::Conflict,
        Err(e) if e.reason == Reason::Conflict || e.reason == Reason::AlreadyExists => {
            Outcome::Conflict
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot write the leader lease");
            Outcome::Failed
        }
    }
}

/// Writes `action`'s record over `stored` (the Lease read) or as a new Lease.
async fn write(
    objects: &Objects,
    config: &ElectionConfig,
    fence: &Fence,
    action: &Action,
    stored: Option<&Value>,
) -> Outcome {
    let info = lease_info();
    let over = |record: &LeaderRecord| -> std::result::Result<Value, ApiError> {
        let stored = stored.ok_or_else(|| ApiError::internal("no Lease read"))?;
        record.apply_to(stored).map_err(ApiError::internal)
    };
    let result = match action {
        Action::Wait => return Outcome::Failed,
        Action::Create(record) => {
            let lease = record.new_lease(&config.lease_namespace, &config.lease_name);
            match serde_json::to_value(&lease) {
                Ok(lease) => objects.write_acquiring(info, lease, None, fence).await,
                Err(e) => Err(ApiError::internal(e)),
            }
        }
        Action::Acquire {
            record,
            resource_version,
        } => match over(record) {
            Ok(lease) => {
                objects
                    .write_acquiring(info, lease, Some(*resource_version), fence)
                    .await
            }
            Err(e) => Err(e),
        },
        Action::Renew { record, .. } => match over(record) {
            // The object carries the resourceVersion read: a Conflict if anyone wrote since.
            Ok(lease) => objects
                .update(
                    info,
                    Some(&config.lease_namespace),
                    &config.lease_name,
                    lease,
                    Part::Main,
                    FieldValidation::Strict,
                )
                .await
                .map(|admitted| Some(admitted.object)),
            Err(e) => Err(e),
        },
    };
    outcome_of(result)
}

/// A number in [0, 1) that differs between candidates and reads, for the standbys' jitter (no randomness crate
/// needed for this).
fn jitter() -> f64 {
    f64::from(meta::now().timestamp_subsec_nanos() % 1000) / 1000.0
}

async fn run<R, F>(
    objects: Objects,
    config: ElectionConfig,
    mut start: F,
    mut stopped: oneshot::Receiver<()>,
) where
    R: Role,
    F: FnMut(Fence) -> Result<R>,
{
    let fence = Fence::new(&config.lease_namespace, &config.lease_name);
    let mut election = Election::new(config.clone());
    let mut role: Option<R> = None;
    let lease = format!("{}/{}", config.lease_namespace, config.lease_name);
    let mut wait = std::time::Duration::ZERO; // the first read at once
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            () = tokio::time::sleep(wait) => {}
        }
        let mut transitions = Vec::new();
        if let Some((observed, stored)) = read(&objects, &config).await {
            let (action, transition) = election.decide(&observed, Instant::now(), meta::now());
            transitions.extend(transition);
            // A leader that lost the Lease stops before anything else happens.
            carry_out(&mut transitions, &fence, &mut role, &mut start, &lease).await;
            if action != Action::Wait {
                let outcome = write(&objects, &config, &fence, &action, stored.as_ref()).await;
                transitions.extend(election.written(&action, outcome, Instant::now()));
            }
        }
        transitions.extend(election.expire(Instant::now()));
        carry_out(&mut transitions, &fence, &mut role, &mut start, &lease).await;
        if election.is_leader() && role.is_none() {
            // The role failed to start earlier: try again while leading.
            if let Some(revision) = fence.revision() {
                transitions.push(Transition::Started { revision });
                carry_out(&mut transitions, &fence, &mut role, &mut start, &lease).await;
            }
        }
        wait = election.next_wait(jitter());
    }
    // Orderly stop: writes refused, the role stopped, then the Lease given up.
    fence.release();
    if let Some(role) = role.take() {
        role.stop().await;
    }
    if let Some(record) = election.release(meta::now()) {
        if let Some((
            Observed::Found {
                record: current, ..
            },
            Some(stored),
        )) = read(&objects, &config).await
        {
            if current.holder == config.identity {
                let action = Action::Renew {
                    record,
                    resource_version: 0,
                };
                let _ = write(&objects, &config, &fence, &action, Some(&stored)).await;
                tracing::info!(%lease, "leader lease released");
            }
        }
    }
}

async fn carry_out<R, F>(
    transitions: &mut Vec<Transition>,
    fence: &Fence,
    role: &mut Option<R>,
    start: &mut F,
    lease: &str,
) where
    R: Role,
    F: FnMut(Fence) -> Result<R>,
{
    for transition in transitions.drain(..) {
        match transition {
            Transition::Stopped(reason) => {
                // Writes are refused from here on, before the role is even told to stop.
                fence.release();
                tracing::warn!(%lease, ?reason, "stopped leading; stopping the role");
                if let Some(role) = role.take() {
                    role.stop().await;
                }
            }
            Transition::Started { revision } => {
                fence.hold(revision);
                tracing::info!(%lease, revision, "became leader; starting the role");
                match start(fence.clone()) {
                    Ok(started) => *role = Some(started),
                    Err(e) => tracing::error!(%lease, error = %e, "the role did not start"),
                }
            }
        }
    }
}
