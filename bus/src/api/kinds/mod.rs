//! Defaults and validation of the kinds beyond Pod, Deployment, Node and Namespace (those live in
//! [`super::admission`] and [`super::validate`]): one file per family, each function `(new, old, errors)` and pure.
//!
//! Rules follow kube-apiserver's (pkg/apis/<group>/validation and the v1 defaulters); messages use its wording so
//! clients and people recognise them.

pub(crate) mod cluster;
pub(crate) mod config;
pub(crate) mod rbac;
pub(crate) mod service;
pub(crate) mod workload;

use super::validate::{self, Errors};

/// How a kind's object names are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameRule {
    /// RFC 1123 label (Namespace).
    Label,
    /// RFC 1035 label: starts with a letter (Service).
    Dns1035,
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// Any path segment: not `.` or `..`, no `/` or `%` (RBAC kinds).
    PathSegment,
}

/// The name rule of `kind`, as kube-apiserver applies it.
pub(crate) fn name_rule(kind: &str) -> NameRule {
    match kind {
        "Namespace" => NameRule::Label,
        "Service" => NameRule::Dns1035,
        "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding" => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

/// Checks `name` (at `field`) by `rule`.
pub(crate) fn check_name(errors: &mut Errors, field: &str, name: &str, rule: NameRule) {
    match rule {
        NameRule::Label => validate::name(errors, field, name, true),
        NameRule::Subdomain => validate::name(errors, field, name, false),
        NameRule::Dns1035 => {
            if !validate::is_dns1035_label(name) {
                errors.invalid(field, format!("\"{name}\""), validate::DNS1035_LABEL);
            }
        }
        NameRule::PathSegment => {
            if name.is_empty() {
                errors.required(field, "name or generateName is required");
            } else if name == "." || name == ".." {
                errors.invalid(
                    field,
                    format!("\"{name}\""),
                    &format!("may not be '{name}'"),
                );
            } else if let Some(bad) = ["/", "%"].into_iter().find(|c| name.contains(c)) {
                errors.invalid(
                    field,
                    format!("\"{name}\""),
                    &format!("may not contain '{bad}'"),
                );
            }
        }
    }
}

/// Field is immutable: `errors` gets Kubernetes' message when `old` is set and differs from `new`.
pub(crate) fn immutable<T: PartialEq>(errors: &mut Errors, field: &str, old: Option<&T>, new: &T) {
    if old.is_some_and(|old| old != new) {
        errors.invalid(field, "", "field is immutable");
    }
}

/// A non-negative integer field.
pub(crate) fn non_negative(errors: &mut Errors, field: &str, value: Option<i32>) {
    if let Some(v) = value.filter(|v| *v < 0) {
        errors.invalid(field, v, "must be greater than or equal to 0");
    }
}

/// A port number field (1..=65535).
pub(crate) fn port_number(errors: &mut Errors, field: &str, port: i32) {
    if !(1..=65535).contains(&port) {
        errors.invalid(field, port, "must be between 1 and 65535, inclusive");
    }
}

/// A protocol field: TCP, UDP or SCTP.
pub(crate) fn protocol(errors: &mut Errors, field: &str, protocol: Option<&str>) {
    if let Some(p) = protocol.filter(|p| !["TCP", "UDP", "SCTP"].contains(p)) {
        errors.not_supported(field, p, &["SCTP", "TCP", "UDP"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn causes(rule: NameRule, name: &str) -> usize {
        let mut errors = Errors::default();
        check_name(&mut errors, "metadata.name", name, rule);
        errors.0.len()
    }

    #[test]
    fn names_follow_each_kinds_rule() {
        assert_eq!(name_rule("Service"), NameRule::Dns1035);
        assert_eq!(causes(NameRule::Dns1035, "web"), 0);
        assert_eq!(causes(NameRule::Dns1035, "1web"), 1);
        assert_eq!(causes(NameRule::Subdomain, "1web.example"), 0);
        assert_eq!(causes(NameRule::PathSegment, "system:controller:x"), 0);
        assert_eq!(causes(NameRule::PathSegment, "a/b"), 1);
        assert_eq!(causes(NameRule::PathSegment, ".."), 1);
        assert_eq!(causes(NameRule::Label, "a.b"), 1);
    }
}
