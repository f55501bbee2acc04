//! The horizontal pod autoscaler (autoscaling/v2, Resource metrics on cpu and memory): every sync period, each
//! HPA's target is sized so that its pods' average usage meets the target, as kube-controller-manager's
//! `podautoscaler` does. [`reconcile`] decides (pure: the HPA, the target's scale, its pods, their usage and the
//! HPA's [`History`] in; the new status, the scale to write and the Events out); [`replicas`] computes a metric's
//! proposal, [`behavior`] stabilizes and rate-limits it; [`HpaController`] gathers the inputs and carries the
//! decision out.
//!
//! Simpler than Kubernetes: only Resource metrics (Pods, Object, External and ContainerResource metrics make
//! `ScalingActive` False with `InvalidMetricSourceType`); an HPA without `behavior` is normalized with
//! autoscaling/v2's default behavior (Kubernetes' older path, with `--horizontal-pod-autoscaler-downscale-
//! stabilization` and a 2x-or-4-pods scale-up limit, gives the same results in practice).

pub mod actor;
pub mod behavior;
pub mod replicas;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
    MetricStatus, MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::chrono::{DateTime, Utc};

pub use actor::HpaController;
pub use behavior::History;
use replicas::{PodMetric, Resource, Target};

use crate::events::EventType;

/// How often each HPA is synced: kube-controller-manager's `--horizontal-pod-autoscaler-sync-period`.
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);

/// What the target's `/scale` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    /// `spec.replicas`.
    pub replicas: i32,
}

/// One pod's measured usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// CPU in millicores.
    pub cpu_milli: i64,
    /// Memory working set in bytes.
    pub memory_bytes: i64,
    /// When the measurement window ended.
    pub timestamp: DateTime<Utc>,
    /// How long the window was.
    pub window: Duration,
}

/// An Event to record about the HPA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Normal or Warning.
    pub type_: EventType,
    /// The Event's reason.
    pub reason: &'static str,
    /// The Event's message.
    pub message: String,
}

/// A change of the target's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rescale {
    /// The size before.
    pub from: i32,
    /// The size to write.
    pub to: i32,
    /// Why, for the `SuccessfulRescale` Event.
    pub reason: String,
}

/// What one sync decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The status to write (as if the rescale, if any, succeeds; see [`failed_rescale`]).
    pub status: HorizontalPodAutoscalerStatus,
    /// The scale to write, if the size changes.
    pub rescale: Option<Rescale>,
    /// Events to record.
    pub events: Vec<Note>,
}

/// Sets a condition as Kubernetes' `setConditionInList`: the transition time moves only when the status flips.
pub fn set_condition(
    conditions: &mut Vec<HorizontalPodAutoscalerCondition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    now: DateTime<Utc>,
) {
    let status = if status { "True" } else { "False" };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Some(Time(now));
            }
            c.status = status.into();
            c.reason = Some(reason.into());
            c.message = Some(message);
        }
        None => conditions.push(HorizontalPodAutoscalerCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(Time(now)),
        }),
    }
}

/// A milli-unit amount as a quantity (`250m`, `64`).
pub fn milli_quantity(milli: i64) -> Quantity {
    if milli % 1000 == 0 {
        Quantity((milli / 1000).to_string())
    } else {
        Quantity(format!("{milli}m"))
    }
}

/// The outcome of one metric: a proposal and its status, or the condition reason and error.
type MetricOutcome = Result<(i32, String, MetricStatus), (&'static str, String)>;

fn compute_metric(
    spec: &k8s_openapi::api::autoscaling::v2::MetricSpec,
    current: i32,
    pods: &[&Pod],
    usage: &HashMap<String, Usage>,
    now: DateTime<Utc>,
) -> MetricOutcome {
    let Some(source) = spec.resource.as_ref().filter(|_| spec.type_ == "Resource") else {
        return Err((
            "InvalidMetricSourceType",
            format!(
                "the HPA was unable to compute the replica count: unsupported metric source type {:?}",
                spec.type_
            ),
        ));
    };
    let failed = |e: String| ("FailedGetResourceMetric", e);
    let resource = Resource::parse(&source.name).ok_or_else(|| {
        failed(format!(
            "unable to get metrics for resource {}: no metrics known for this resource",
            source.name
        ))
    })?;
    let target = match (
        &source.target.average_value,
        source.target.average_utilization,
    ) {
        (Some(v), _) => navarch_bus::api::quantity::Quantity::parse(&v.0)
            .map(|q| Target::AverageValue(i64::try_from(q.milli()).unwrap_or(i64::MAX)))
            .map_err(failed)?,
        (None, Some(u)) => Target::Utilization(u),
        (None, None) => {
            return Err(failed("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set".into()));
        }
    };
    let metrics: HashMap<String, PodMetric> = usage
        .iter()
        .map(|(pod, u)| {
            let value = match resource {
                Resource::Cpu => u.cpu_milli,
                Resource::Memory => u.memory_bytes.saturating_mul(1000),
            };
            let metric = PodMetric {
                value,
                timestamp: u.timestamp,
                window: u.window,
            };
            (pod.clone(), metric)
        })
        .collect();
    let proposal = replicas::resource_replicas(current, resource, target, pods, &metrics, now)
        .map_err(|e| match target {
            Target::Utilization(_) => failed(format!(
                "failed to get {} utilization: {e}",
                resource.name()
            )),
            Target::AverageValue(_) => {
                failed(format!("failed to get {} usage: {e}", resource.name()))
            }
        })?;
    let name = match target {
        Target::Utilization(_) => format!(
            "{} resource utilization (percentage of request)",
            resource.name()
        ),
        Target::AverageValue(_) => format!("{} resource", resource.name()),
    };
    let status = MetricStatus {
        type_: "Resource".into(),
        resource: Some(ResourceMetricStatus {
            name: resource.name().into(),
            current: MetricValueStatus {
                average_utilization: proposal.utilization,
                average_value: Some(milli_quantity(proposal.average)),
                value: None,
            },
        }),
        ..Default::default()
    };
    Ok((proposal.replicas, name, status))
}

/// One sync of `hpa`: `scale` is its target's size (or why it could not be read), `pods` those the target's
/// selector matches, `usage` their measurements by pod name. `history` is the HPA's memory across syncs.
pub fn reconcile(
    hpa: &HorizontalPodAutoscaler,
    scale: Result<Scale, String>,
    pods: &[&Pod],
    usage: &HashMap<String, Usage>,
    history: &mut History,
    now: DateTime<Utc>,
) -> Decision {
    let spec = hpa.spec.clone().unwrap_or_default();
    let previous = hpa.status.clone().unwrap_or_default();
    let mut conditions = previous.conditions.clone().unwrap_or_default();
    let mut events = Vec::new();
    let scale = match scale {
        Ok(scale) => scale,
        Err(e) => {
            let message =
                format!("the HPA controller was unable to get the target's current scale: {e}");
            set_condition(
                &mut conditions,
                "AbleToScale",
                false,
                "FailedGetScale",
                message,
                now,
            );
            events.push(Note {
                type_: EventType::Warning,
                reason: "FailedGetScale",
                message: e,
            });
            let status = HorizontalPodAutoscalerStatus {
                conditions: Some(conditions),
                ..previous
            };
            return Decision {
                status,
                rescale: None,
                events,
            };
        }
    };
    set_condition(
        &mut conditions,
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale".into(),
        now,
    );
    let current = scale.replicas;
    history.start(current, now);
    let min = spec.min_replicas.unwrap_or(1);
    let max = spec.max_replicas;
    let mut statuses = Vec::new();
    let (desired, reason) = if current == 0 && min != 0 {
        set_condition(
            &mut conditions,
            "ScalingActive",
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero".into(),
            now,
        );
        (0, String::new())
    } else if current > max {
        (
            max,
            "Current number of replicas above Spec.MaxReplicas".to_string(),
        )
    } else if current < min {
        (
            min,
            "Current number of replicas below Spec.MinReplicas".to_string(),
        )
    } else {
        let mut best: Option<(i32, String)> = None;
        let mut invalid: Vec<(&'static str, String)> = Vec::new();
        for metric in spec.metrics.iter().flatten() {
            match compute_metric(metric, current, pods, usage, now) {
                Ok((replicas, name, status)) => {
                    statuses.push(status);
                    if best.as_ref().is_none_or(|(r, _)| replicas > *r) {
                        best = Some((replicas, name));
                    }
                }
                Err((reason, error)) => {
                    events.push(Note {
                        type_: EventType::Warning,
                        reason,
                        message: error.clone(),
                    });
                    invalid.push((reason, error));
                }
            }
        }
        let count = spec.metrics.as_ref().map_or(0, Vec::len);
        let proposed = best.as_ref().map_or(0, |(r, _)| *r);
        if let Some((reason, first)) = invalid.first() {
            if invalid.len() >= count || proposed < current {
                let message = format!("the HPA was unable to compute the replica count: {first}");
                set_condition(
                    &mut conditions,
                    "ScalingActive",
                    false,
                    reason,
                    message,
                    now,
                );
                events.push(Note {
                    type_: EventType::Warning,
                    reason: "FailedComputeMetricsReplicas",
                    message: format!(
                        "invalid metrics ({} invalid out of {count}), first error is: {first}",
                        invalid.len()
                    ),
                });
                let status = HorizontalPodAutoscalerStatus {
                    current_replicas: Some(current),
                    current_metrics: (!statuses.is_empty()).then_some(statuses),
                    conditions: Some(conditions),
                    ..previous
                };
                return Decision {
                    status,
                    rescale: None,
                    events,
                };
            }
        }
        let (proposed, metric) = best.unwrap_or((current, String::new()));
        set_condition(
            &mut conditions,
            "ScalingActive",
            true,
            "ValidMetricFound",
            format!("the HPA was able to successfully calculate a replica count from {metric}"),
            now,
        );
        let reason = if proposed > current {
            format!("{metric} above target")
        } else {
            "All metrics below target".to_string()
        };
        let normalized =
            history.normalize(spec.behavior.as_ref(), current, proposed, (min, max), now);
        set_condition(
            &mut conditions,
            "AbleToScale",
            true,
            normalized.able.0,
            normalized.able.1.into(),
            now,
        );
        let (limited, why, message) = normalized.limited;
        set_condition(
            &mut conditions,
            "ScalingLimited",
            limited,
            why,
            message.into(),
            now,
        );
        (normalized.replicas, reason)
    };
    let rescale = (desired != current && !(current == 0 && min != 0)).then_some(Rescale {
        from: current,
        to: desired,
        reason,
    });
    if let Some(r) = &rescale {
        set_condition(
            &mut conditions,
            "AbleToScale",
            true,
            "SucceededRescale",
            format!(
                "the HPA controller was able to update the target scale to {}",
                r.to
            ),
            now,
        );
        events.push(Note {
            type_: EventType::Normal,
            reason: "SuccessfulRescale",
            message: format!("New size: {}; reason: {}", r.to, r.reason),
        });
    }
    let status = HorizontalPodAutoscalerStatus {
        current_replicas: Some(current),
        desired_replicas: if rescale.is_some() { desired } else { current },
        current_metrics: (!statuses.is_empty()).then_some(statuses),
        last_scale_time: if rescale.is_some() {
            Some(Time(now))
        } else {
            previous.last_scale_time
        },
        conditions: Some(conditions),
        observed_generation: hpa.metadata.generation,
    };
    Decision {
        status,
        rescale,
        events,
    }
}

/// The decision's status and events once writing the scale failed with `error`, as Kubernetes reports it.
pub fn failed_rescale(
    mut decision: Decision,
    previous: &HorizontalPodAutoscalerStatus,
    error: &str,
    now: DateTime<Utc>,
) -> Decision {
    let Some(r) = decision.rescale.take() else {
        return decision;
    };
    let mut conditions = decision.status.conditions.take().unwrap_or_default();
    set_condition(
        &mut conditions,
        "AbleToScale",
        false,
        "FailedUpdateScale",
        format!("the HPA controller was unable to update the target scale: {error}"),
        now,
    );
    decision.events.retain(|e| e.reason != "SuccessfulRescale");
    decision.events.push(Note {
        type_: EventType::Warning,
        reason: "FailedRescale",
        message: format!("New size: {}; reason: {}; error: {error}", r.to, r.reason),
    });
    decision.status.conditions = Some(conditions);
    decision.status.desired_replicas = previous.desired_replicas;
    decision.status.last_scale_time = previous.last_scale_time.clone();
    decision
}
