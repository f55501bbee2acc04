//! Scaling behavior, as kube-controller-manager's `normalizeDesiredReplicasWithBehaviors`: the stabilization
//! windows (the highest recommendation of the scale-down window, the lowest of the scale-up window) and the rate
//! policies (how many pods or what percentage may be added or removed per period), then min and max. Pure: the
//! per-HPA [`History`] of recommendations and scale events is passed in and updated.

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};
use k8s_openapi::chrono::{DateTime, Duration, Utc};

/// A recommendation or a scale event at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timed {
    at: DateTime<Utc>,
    value: i32,
}

/// What the controller remembers of one HPA between syncs (Kubernetes keeps the same in memory).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    recommendations: Vec<Timed>,
    /// Replicas added per successful scale-up.
    ups: Vec<Timed>,
    /// Replicas removed per successful scale-down.
    downs: Vec<Timed>,
}

/// The rules in force: the HPA's (defaulted by admission), or autoscaling/v2's defaults when it has none.
pub fn rules(behavior: Option<&HorizontalPodAutoscalerBehavior>, up: bool) -> HPAScalingRules {
    let given = behavior.and_then(|b| {
        if up {
            b.scale_up.clone()
        } else {
            b.scale_down.clone()
        }
    });
    let policy = |type_: &str, value| k8s_openapi::api::autoscaling::v2::HPAScalingPolicy {
        type_: type_.into(),
        value,
        period_seconds: 15,
    };
    let mut rules = given.unwrap_or_default();
    rules
        .stabilization_window_seconds
        .get_or_insert(if up { 0 } else { 300 });
    rules.select_policy.get_or_insert_with(|| "Max".into());
    if rules.policies.as_ref().is_none_or(Vec::is_empty) {
        rules.policies = Some(if up {
            vec![policy("Percent", 100), policy("Pods", 4)]
        } else {
            vec![policy("Percent", 100)]
        });
    }
    rules
}

/// What normalization decided, with the reasons for the AbleToScale and ScalingLimited conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// Replicas to have.
    pub replicas: i32,
    /// AbleToScale's reason and message (`ReadyForNewScale`, `ScaleUpStabilized`, `ScaleDownStabilized`).
    pub able: (&'static str, &'static str),
    /// Whether the rate or min/max cut the stabilized recommendation, with the reason and message.
    pub limited: (bool, &'static str, &'static str),
}

fn window(seconds: Option<i32>) -> Duration {
    Duration::seconds(i64::from(seconds.unwrap_or(0).max(0)))
}

fn longest_period(rules: &HPAScalingRules) -> Duration {
    Duration::seconds(
        rules
            .policies
            .iter()
            .flatten()
            .map(|p| i64::from(p.period_seconds))
            .max()
            .unwrap_or(0),
    )
}

fn change_in_period(events: &[Timed], period_seconds: i32, now: DateTime<Utc>) -> i32 {
    let cutoff = now - Duration::seconds(i64::from(period_seconds));
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .map(|e| e.value)
        .sum()
}

impl History {
    /// The first sync of an HPA remembers the target's current size as a recommendation, so a fresh controller
    /// does not scale down before a full window has passed.
    pub fn start(&mut self, current: i32, now: DateTime<Utc>) {
        if self.recommendations.is_empty() {
            self.recommendations.push(Timed {
                at: now,
                value: current,
            });
        }
    }

    /// Remembers a successful scale from `from` to `to` for the rate policies; events older than the longest
    /// policy period are dropped.
    pub fn record_scale(
        &mut self,
        behavior: Option<&HorizontalPodAutoscalerBehavior>,
        from: i32,
        to: i32,
        now: DateTime<Utc>,
    ) {
        for (up, events) in [(true, &mut self.ups), (false, &mut self.downs)] {
            let keep = longest_period(&rules(behavior, up));
            events.retain(|e| e.at > now - keep);
        }
        if to > from {
            self.ups.push(Timed {
                at: now,
                value: to - from,
            });
        } else if to < from {
            self.downs.push(Timed {
                at: now,
                value: from - to,
            });
        }
    }

    fn stabilize(
        &mut self,
        up: &HPAScalingRules,
        down: &HPAScalingRules,
        current: i32,
        desired: i32,
        now: DateTime<Utc>,
    ) -> i32 {
        let up_cutoff = now - window(up.stabilization_window_seconds);
        let down_cutoff = now - window(down.stabilization_window_seconds);
        let (mut up_rec, mut down_rec) = (desired, desired);
        let mut old = None;
        for (i, r) in self.recommendations.iter().enumerate() {
            if r.at > up_cutoff {
                up_rec = up_rec.min(r.value);
            }
            if r.at > down_cutoff {
                down_rec = down_rec.max(r.value);
            }
            if r.at < up_cutoff && r.at < down_cutoff {
                old = Some(i);
            }
        }
        let stabilized = current.max(up_rec).min(down_rec);
        let record = Timed {
            at: now,
            value: desired,
        };
        match old {
            Some(i) => self.recommendations[i] = record,
            None => self.recommendations.push(record),
        }
        stabilized
    }

    fn up_limit(&self, current: i32, rules: &HPAScalingRules, now: DateTime<Utc>) -> i32 {
        let select = rules.select_policy.as_deref().unwrap_or("Max");
        if select == "Disabled" {
            return current;
        }
        let proposals = rules.policies.iter().flatten().map(|p| {
            let start = current - change_in_period(&self.ups, p.period_seconds, now)
                + change_in_period(&self.downs, p.period_seconds, now);
            match p.type_.as_str() {
                "Pods" => start.saturating_add(p.value),
                _ => (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32,
            }
        });
        let limit = if select == "Min" {
            proposals.min()
        } else {
            proposals.max()
        };
        limit.unwrap_or(current)
    }

    fn down_limit(&self, current: i32, rules: &HPAScalingRules, now: DateTime<Utc>) -> i32 {
        let select = rules.select_policy.as_deref().unwrap_or("Max");
        if select == "Disabled" {
            return current;
        }
        let proposals = rules.policies.iter().flatten().map(|p| {
            let start = current - change_in_period(&self.ups, p.period_seconds, now)
                + change_in_period(&self.downs, p.period_seconds, now);
            match p.type_.as_str() {
                "Pods" => start.saturating_sub(p.value),
                // Go's int32() truncates.
                _ => (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32,
            }
        });
        // Max picks the policy allowing the biggest change: the lowest limit.
        let limit = if select == "Min" {
            proposals.max()
        } else {
            proposals.min()
        };
        limit.unwrap_or(current)
    }

    /// Stabilizes `desired`, then bounds it by the rate policies and by `min`..=`max`.
    pub fn normalize(
        &mut self,
        behavior: Option<&HorizontalPodAutoscalerBehavior>,
        current: i32,
        desired: i32,
        (min, max): (i32, i32),
        now: DateTime<Utc>,
    ) -> Normalized {
        let (up, down) = (rules(behavior, true), rules(behavior, false));
        let stabilized = self.stabilize(&up, &down, current, desired, now);
        let able = if stabilized == desired {
            ("ReadyForNewScale", "recommended size matches current size")
        } else if desired >= current {
            (
                "ScaleUpStabilized",
                "recent recommendations were lower than current one, applying the lowest recent recommendation",
            )
        } else {
            (
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation",
            )
        };
        let mut bounded = (
            stabilized,
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
        );
        if stabilized > current {
            let limit = self.up_limit(current, &up, now).max(current);
            let (allowed, reason, message) = if max > limit {
                (
                    limit,
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                )
            } else {
                (
                    max,
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                )
            };
            if stabilized > allowed {
                bounded = (allowed, reason, message);
            }
        } else if stabilized < current {
            let limit = self.down_limit(current, &down, now).min(current);
            let (allowed, reason, message) = if min < limit {
                (
                    limit,
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the maximum scale rate",
                )
            } else {
                (
                    min,
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                )
            };
            if stabilized < allowed {
                bounded = (allowed, reason, message);
            }
        }
        Normalized {
            replicas: bounded.0,
            able,
            limited: (bounded.0 != stabilized, bounded.1, bounded.2),
        }
    }
}
