//! Event, Lease and ServiceAccount: the small kinds controllers, agents and tokens lean on.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, ServiceAccount};

use super::non_negative;
use crate::api::validate::{self, Errors};

/// Validates a core/v1 Event: it lives in its object's namespace, and its type is Normal or Warning.
pub(crate) fn event(ev: &mut Event, errors: &mut Errors) {
    let namespace = ev.metadata.namespace.as_deref().unwrap_or("");
    let involved = ev.involved_object.namespace.as_deref().unwrap_or("");
    if !involved.is_empty() && involved != namespace {
        errors.invalid(
            "involvedObject.namespace",
            format!("\"{involved}\""),
            "does not match event.namespace",
        );
    }
    if let Some(kind) = ev.type_.as_deref().filter(|t| !t.is_empty()) {
        if kind != "Normal" && kind != "Warning" {
            errors.not_supported("type", kind, &["Normal", "Warning"]);
        }
    }
    if ev.reason.as_deref().is_some_and(|r| r.len() > 128) {
        errors.invalid("reason", "", "can have at most 128 characters");
    }
    non_negative(errors, "count", ev.count);
}

/// Validates a Lease: positive duration, non-negative transitions.
pub(crate) fn lease(lease: &mut Lease, errors: &mut Errors) {
    let Some(spec) = &lease.spec else { return };
    if let Some(d) = spec.lease_duration_seconds.filter(|d| *d <= 0) {
        errors.invalid("spec.leaseDurationSeconds", d, "must be greater than 0");
    }
    non_negative(errors, "spec.leaseTransitions", spec.lease_transitions);
}

/// Validates a ServiceAccount: the secrets it names are object names.
pub(crate) fn service_account(sa: &mut ServiceAccount, errors: &mut Errors) {
    for (i, secret) in sa.secrets.iter().flatten().enumerate() {
        if let Some(name) = secret.name.as_deref() {
            validate::name(errors, &format!("secrets[{i}].name"), name, false);
        }
    }
    for (i, secret) in sa.image_pull_secrets.iter().flatten().enumerate() {
        validate::name(
            errors,
            &format!("imagePullSecrets[{i}].name"),
            &secret.name,
            false,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_stay_in_their_objects_namespace() {
        let mut ev: Event = serde_json::from_value(json!({
            "metadata": {"name": "e", "namespace": "a"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "b"},
            "type": "Fatal"
        }))
        .unwrap();
        let mut errors = Errors::default();
        event(&mut ev, &mut errors);
        let fields: Vec<&str> = errors.0.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["involvedObject.namespace", "type"]);
    }

    #[test]
    fn leases_need_a_positive_duration() {
        let mut l: Lease = serde_json::from_value(json!({
            "metadata": {"name": "n"}, "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 0}
        }))
        .unwrap();
        let mut errors = Errors::default();
        lease(&mut l, &mut errors);
        assert_eq!(errors.0[0].field, "spec.leaseDurationSeconds");
    }
}
