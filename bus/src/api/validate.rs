//! Validation of typed objects, returning Kubernetes' field causes. Pure: no I/O, no clock.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::apps::v1::{Deployment, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{Container, Node, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::error::Cause;
use super::quantity::Quantity;

/// Collects causes under a field path.
#[derive(Default)]
pub(crate) struct Errors(pub Vec<Cause>);

impl Errors {
    pub fn invalid(&mut self, field: &str, value: impl std::fmt::Display, why: &str) {
        self.0.push(Cause {
            reason: "FieldValueInvalid".into(),
            field: field.into(),
            message: format!("Invalid value: {value}: {why}"),
        });
    }

    pub fn required(&mut self, field: &str, why: &str) {
        let message = if why.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {why}")
        };
        self.0.push(Cause {
            reason: "FieldValueRequired".into(),
            field: field.into(),
            message,
        });
    }

    pub fn not_supported(&mut self, field: &str, value: &str, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        self.0.push(Cause {
            reason: "FieldValueNotSupported".into(),
            field: field.into(),
            message: format!(
                "Unsupported value: \"{value}\": supported values: {}",
                list.join(", ")
            ),
        });
    }

    pub fn duplicate(&mut self, field: &str, value: &str) {
        self.0.push(Cause {
            reason: "FieldValueDuplicate".into(),
            field: field.into(),
            message: format!("Duplicate value: \"{value}\""),
        });
    }

    pub fn forbidden(&mut self, field: &str, why: &str) {
        self.0.push(Cause {
            reason: "FieldValueForbidden".into(),
            field: field.into(),
            message: format!("Forbidden: {why}"),
        });
    }
}

pub(crate) const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

pub(crate) const DNS1035_LABEL: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// RFC 1035 label: an RFC 1123 label that starts with a letter.
pub(crate) fn is_dns1035_label(s: &str) -> bool {
    is_dns_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// RFC 1123 label: at most 63 of `[a-z0-9-]`, alphanumeric at both ends.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: at most 253 characters of dot-separated labels.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

pub(crate) fn is_label_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// Whether `s` is a label key or other qualified name (`[prefix/]name`).
pub fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(s),
    }
}

/// Whether `s` is a label value (empty, or a name of at most 63 characters).
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_label_name(s)
}

/// Checks a name with `rule`: "label" (RFC 1123 label) or "subdomain".
pub(crate) fn name(errors: &mut Errors, field: &str, name: &str, label: bool) {
    if label && !is_dns_label(name) {
        errors.invalid(field, format!("\"{name}\""), DNS1123_LABEL);
    } else if !label && !is_dns_subdomain(name) {
        errors.invalid(field, format!("\"{name}\""), DNS1123_SUBDOMAIN);
    }
}

pub(crate) fn labels(errors: &mut Errors, field: &str, labels: Option<&BTreeMap<String, String>>) {
    for (k, v) in labels.into_iter().flatten() {
        if !is_qualified_name(k) {
            errors.invalid(field, format!("\"{k}\""), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character");
        }
        if !is_label_value(v) {
            errors.invalid(field, format!("\"{v}\""), "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character");
        }
    }
}

/// Checks labels and annotation keys of `meta`.
pub(crate) fn object_meta(errors: &mut Errors, meta: &ObjectMeta, prefix: &str) {
    labels(errors, &format!("{prefix}labels"), meta.labels.as_ref());
    let mut size = 0;
    for (k, v) in meta.annotations.iter().flatten() {
        size += k.len() + v.len();
        if !is_qualified_name(k) {
            errors.invalid(&format!("{prefix}annotations"), format!("\"{k}\""), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character");
        }
    }
    if size > 256 * 1024 {
        errors.invalid(
            &format!("{prefix}annotations"),
            "",
            "must have at most 262144 bytes",
        );
    }
}

pub(crate) fn quantity(errors: &mut Errors, field: &str, q: &str) {
    match Quantity::parse(q) {
        Ok(v) if v.milli() < 0 => errors.invalid(
            field,
            format!("\"{q}\""),
            "must be greater than or equal to 0",
        ),
        Ok(_) => {}
        Err(why) => errors.invalid(field, format!("\"{q}\""), &why),
    }
}

fn container(errors: &mut Errors, field: &str, c: &Container, names: &mut HashSet<String>) {
    if c.name.is_empty() {
        errors.required(&format!("{field}.name"), "");
    } else if !is_dns_label(&c.name) {
        errors.invalid(
            &format!("{field}.name"),
            format!("\"{}\"", c.name),
            DNS1123_LABEL,
        );
    } else if !names.insert(c.name.clone()) {
        errors.duplicate(&format!("{field}.name"), &c.name);
    }
    if c.image.as_deref().unwrap_or("").trim().is_empty() {
        errors.required(&format!("{field}.image"), "");
    }
    for (i, port) in c.ports.iter().flatten().enumerate() {
        if !(1..=65535).contains(&port.container_port) {
            errors.invalid(
                &format!("{field}.ports[{i}].containerPort"),
                port.container_port,
                "must be between 1 and 65535, inclusive",
            );
        }
        if let Some(p) = &port.protocol {
            if !["TCP", "UDP", "SCTP"].contains(&p.as_str()) {
                errors.not_supported(
                    &format!("{field}.ports[{i}].protocol"),
                    p,
                    &["SCTP", "TCP", "UDP"],
                );
            }
        }
    }
    for (i, env) in c.env.iter().flatten().enumerate() {
        if env.name.is_empty() || env.name.contains('=') {
            errors.invalid(&format!("{field}.env[{i}].name"), format!("\"{}\"", env.name), "a valid environment variable name must consist only of printable ASCII characters other than '='");
        }
    }
    if let Some(res) = &c.resources {
        for (which, list) in [("limits", &res.limits), ("requests", &res.requests)] {
            for (k, q) in list.iter().flatten() {
                quantity(errors, &format!("{field}.resources.{which}[{k}]"), &q.0);
            }
        }
    }
    super::probes::validate(errors, field, c);
    if let Some(policy) = &c.image_pull_policy {
        if !["Always", "IfNotPresent", "Never"].contains(&policy.as_str()) {
            errors.not_supported(
                &format!("{field}.imagePullPolicy"),
                policy,
                &["Always", "IfNotPresent", "Never"],
            );
        }
    }
}

/// Checks a pod spec under `field` (e.g. `spec` or `spec.template.spec`).
pub(crate) fn pod_spec(errors: &mut Errors, field: &str, spec: &PodSpec) {
    if spec.containers.is_empty() {
        errors.required(&format!("{field}.containers"), "");
    }
    let mut names = HashSet::new();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        container(
            errors,
            &format!("{field}.initContainers[{i}]"),
            c,
            &mut names,
        );
    }
    for (i, c) in spec.containers.iter().enumerate() {
        container(errors, &format!("{field}.containers[{i}]"), c, &mut names);
    }
    if let Some(policy) = &spec.restart_policy {
        if !["Always", "OnFailure", "Never"].contains(&policy.as_str()) {
            errors.not_supported(
                &format!("{field}.restartPolicy"),
                policy,
                &["Always", "OnFailure", "Never"],
            );
        }
    }
    if let Some(grace) = spec.termination_grace_period_seconds {
        if grace < 0 {
            errors.invalid(
                &format!("{field}.terminationGracePeriodSeconds"),
                grace,
                "must be greater than or equal to 0",
            );
        }
    }
    if let Some(node) = &spec.node_name {
        if !node.is_empty() && !is_dns_subdomain(node) {
            errors.invalid(
                &format!("{field}.nodeName"),
                format!("\"{node}\""),
                DNS1123_SUBDOMAIN,
            );
        }
    }
}

fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

pub(crate) fn template(
    errors: &mut Errors,
    field: &str,
    template: &PodTemplateSpec,
    selector: Option<&LabelSelector>,
) {
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    if let Some(meta) = &template.metadata {
        object_meta(errors, meta, &format!("{field}.metadata."));
    }
    if let Some(selector) = selector {
        if !selector_matches(selector, &labels) {
            let shown: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("\"{k}\":\"{v}\""))
                .collect();
            errors.invalid(
                &format!("{field}.metadata.labels"),
                format!("map[string]string{{{}}}", shown.join(", ")),
                "`selector` does not match template `labels`",
            );
        }
    }
    match &template.spec {
        Some(spec) => {
            pod_spec(errors, &format!("{field}.spec"), spec);
            if let Some(policy) = &spec.restart_policy {
                if policy != "Always" {
                    errors.not_supported(
                        &format!("{field}.spec.restartPolicy"),
                        policy,
                        &["Always"],
                    );
                }
            }
        }
        None => errors.required(&format!("{field}.spec"), ""),
    }
}

/// Whether a label selector selects everything (no labels, no expressions): invalid for workloads.
pub(crate) fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|m| m.is_empty())
}

pub(crate) fn deployment(errors: &mut Errors, d: &Deployment) {
    let Some(spec) = &d.spec else {
        errors.required("spec", "");
        return;
    };
    if let Some(r) = spec.replicas {
        if r < 0 {
            errors.invalid("spec.replicas", r, "must be greater than or equal to 0");
        }
    }
    let selector_empty = selector_is_empty(&spec.selector);
    if selector_empty {
        errors.invalid("spec.selector", "v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}", "empty selector is invalid for deployment");
    } else {
        labels(
            errors,
            "spec.selector.matchLabels",
            spec.selector.match_labels.as_ref(),
        );
    }
    template(
        errors,
        "spec.template",
        &spec.template,
        (!selector_empty).then_some(&spec.selector),
    );
    if let Some(strategy) = &spec.strategy {
        if let Some(t) = &strategy.type_ {
            if !["RollingUpdate", "Recreate"].contains(&t.as_str()) {
                errors.not_supported("spec.strategy.type", t, &["Recreate", "RollingUpdate"]);
            }
        }
        if strategy.type_.as_deref() == Some("Recreate") && strategy.rolling_update.is_some() {
            errors.forbidden(
                "spec.strategy.rollingUpdate",
                "may not be specified when strategy `type` is 'Recreate'",
            );
        }
        if let Some(rolling) = &strategy.rolling_update {
            rolling_update(errors, rolling);
        }
    }
    if let Some(deadline) = spec.progress_deadline_seconds {
        if deadline <= spec.min_ready_seconds.unwrap_or(0) && deadline >= 0 {
            errors.invalid(
                "spec.progressDeadlineSeconds",
                deadline,
                "must be greater than minReadySeconds",
            );
        }
    }
    for (field, value) in [
        ("spec.revisionHistoryLimit", spec.revision_history_limit),
        ("spec.minReadySeconds", spec.min_ready_seconds),
        (
            "spec.progressDeadlineSeconds",
            spec.progress_deadline_seconds,
        ),
    ] {
        if let Some(v) = value {
            if v < 0 {
                errors.invalid(field, v, "must be greater than or equal to 0");
            }
        }
    }
}

/// An int-or-percent as Kubernetes reads it for validation: `Some((value, is_percent))`, None when malformed.
fn int_or_percent(value: &IntOrString) -> Option<(i64, bool)> {
    match value {
        IntOrString::Int(n) => Some((i64::from(*n), false)),
        IntOrString::String(s) => {
            let digits = s.strip_suffix('%')?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((digits.parse().ok()?, true))
        }
    }
}

/// Kubernetes' `ValidateRollingUpdateDeployment`: non-negative ints or percents, not both zero, maxUnavailable at
/// most 100%.
fn rolling_update(errors: &mut Errors, rolling: &RollingUpdateDeployment) {
    let show = |v: &IntOrString| match v {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => format!("\"{s}\""),
    };
    let mut value_of = |field: &str, value: Option<&IntOrString>| -> i64 {
        let Some(value) = value else { return 0 };
        match int_or_percent(value) {
            Some((n, _)) if n < 0 => {
                errors.invalid(field, show(value), "must be greater than or equal to 0");
                n
            }
            Some((n, _)) => n,
            None => {
                errors.invalid(
                    field,
                    show(value),
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                );
                -1
            }
        }
    };
    let unavailable = value_of(
        "spec.strategy.rollingUpdate.maxUnavailable",
        rolling.max_unavailable.as_ref(),
    );
    let surge = value_of(
        "spec.strategy.rollingUpdate.maxSurge",
        rolling.max_surge.as_ref(),
    );
    let shown = rolling
        .max_unavailable
        .as_ref()
        .map(show)
        .unwrap_or_else(|| "0".into());
    if unavailable == 0 && surge == 0 {
        errors.invalid(
            "spec.strategy.rollingUpdate.maxUnavailable",
            &shown,
            "may not be 0 when `maxSurge` is 0",
        );
    }
    if let Some((n, true)) = rolling.max_unavailable.as_ref().and_then(int_or_percent) {
        if n > 100 {
            errors.invalid(
                "spec.strategy.rollingUpdate.maxUnavailable",
                &shown,
                "must not be greater than 100%",
            );
        }
    }
}

pub(crate) fn node(errors: &mut Errors, n: &Node) {
    for (i, taint) in n
        .spec
        .iter()
        .flat_map(|s| s.taints.iter().flatten())
        .enumerate()
    {
        if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&taint.effect.as_str()) {
            errors.not_supported(
                &format!("spec.taints[{i}].effect"),
                &taint.effect,
                &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            );
        }
    }
}

/// Whether `selector` selects `labels` (matchLabels and matchExpressions, as Kubernetes evaluates them).
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    selector_matches(selector, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dns_label("web-1"));
        assert!(!is_dns_label("Web"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("web.example-1.com"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(is_qualified_name("app"));
        assert!(!is_qualified_name("bad key"));
        assert!(!is_qualified_name("a/b/c"));
    }
}
