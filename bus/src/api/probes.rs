//! A container's probes and lifecycle hooks as kube-apiserver defaults and validates them. Pure.

use k8s_openapi::api::core::v1::{
    Container, ExecAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::validate::Errors;

/// Kubernetes' probe defaults: timeout 1 s, period 10 s, success threshold 1, failure threshold 3 (zero counts as
/// unset, as a protobuf body always carries the fields); an HTTP GET's path `/` and scheme `HTTP`.
pub(crate) fn default(c: &mut Container) {
    let probes = [
        c.liveness_probe.as_mut(),
        c.readiness_probe.as_mut(),
        c.startup_probe.as_mut(),
    ];
    for probe in probes.into_iter().flatten() {
        for (field, default) in [
            (&mut probe.timeout_seconds, 1),
            (&mut probe.period_seconds, 10),
            (&mut probe.success_threshold, 1),
            (&mut probe.failure_threshold, 3),
        ] {
            if field.unwrap_or(0) == 0 {
                *field = Some(default);
            }
        }
        if let Some(get) = probe.http_get.as_mut() {
            default_http_get(get);
        }
    }
    let hooks = c
        .lifecycle
        .iter_mut()
        .flat_map(|l| [l.post_start.as_mut(), l.pre_stop.as_mut()]);
    for hook in hooks.flatten() {
        if let Some(get) = hook.http_get.as_mut() {
            default_http_get(get);
        }
    }
}

fn default_http_get(get: &mut HTTPGetAction) {
    if get.path.as_deref().unwrap_or("").is_empty() {
        get.path = Some("/".into());
    }
    if get.scheme.as_deref().unwrap_or("").is_empty() {
        get.scheme = Some("HTTP".into());
    }
}

/// Checks the probes and hooks of container `c` at `field` (e.g. `spec.containers[0]`).
pub(crate) fn validate(errors: &mut Errors, field: &str, c: &Container) {
    let probes = [
        ("livenessProbe", c.liveness_probe.as_ref()),
        ("readinessProbe", c.readiness_probe.as_ref()),
        ("startupProbe", c.startup_probe.as_ref()),
    ];
    for (name, probe) in probes {
        if let Some(probe) = probe {
            validate_probe(errors, &format!("{field}.{name}"), name, probe);
        }
    }
    if let Some(lifecycle) = &c.lifecycle {
        for (name, hook) in [
            ("postStart", &lifecycle.post_start),
            ("preStop", &lifecycle.pre_stop),
        ] {
            if let Some(hook) = hook {
                validate_hook(errors, &format!("{field}.lifecycle.{name}"), hook);
            }
        }
    }
}

fn validate_probe(errors: &mut Errors, field: &str, name: &str, probe: &Probe) {
    let handlers = usize::from(probe.grpc.is_some());
    validate_handler(
        errors,
        field,
        handlers,
        probe.exec.as_ref(),
        probe.http_get.as_ref(),
        probe.tcp_socket.as_ref(),
    );
    for (key, value) in [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        if let Some(v) = value.filter(|v| *v < 0) {
            errors.invalid(
                &format!("{field}.{key}"),
                v,
                "must be greater than or equal to 0",
            );
        }
    }
    if name != "readinessProbe" {
        if let Some(v) = probe.success_threshold.filter(|v| *v != 1) {
            errors.invalid(&format!("{field}.successThreshold"), v, "must be 1");
        }
    }
    match probe.termination_grace_period_seconds {
        Some(_) if name == "readinessProbe" => errors.invalid(
            &format!("{field}.terminationGracePeriodSeconds"),
            probe.termination_grace_period_seconds.unwrap_or_default(),
            "must not be set for readinessProbes",
        ),
        Some(v) if v <= 0 => errors.invalid(
            &format!("{field}.terminationGracePeriodSeconds"),
            v,
            "must be greater than 0",
        ),
        _ => {}
    }
}

fn validate_hook(errors: &mut Errors, field: &str, hook: &LifecycleHandler) {
    if let Some(sleep) = &hook.sleep {
        if sleep.seconds < 0 {
            errors.invalid(
                &format!("{field}.sleep.seconds"),
                sleep.seconds,
                "must be greater than or equal to 0",
            );
        }
    }
    validate_handler(
        errors,
        field,
        usize::from(hook.sleep.is_some()),
        hook.exec.as_ref(),
        hook.http_get.as_ref(),
        hook.tcp_socket.as_ref(),
    );
}

/// Exactly one handler (`others` counts the kinds not passed here, e.g. `grpc` or `sleep`).
fn validate_handler(
    errors: &mut Errors,
    field: &str,
    others: usize,
    exec: Option<&ExecAction>,
    http_get: Option<&HTTPGetAction>,
    tcp_socket: Option<&TCPSocketAction>,
) {
    let count = others
        + usize::from(exec.is_some())
        + usize::from(http_get.is_some())
        + usize::from(tcp_socket.is_some());
    if count == 0 {
        errors.required(field, "must specify a handler type");
    } else if count > 1 {
        errors.forbidden(field, "may not specify more than 1 handler type");
    }
    if let Some(exec) = exec {
        if exec.command.as_ref().is_none_or(Vec::is_empty) {
            errors.required(&format!("{field}.exec.command"), "");
        }
    }
    if let Some(get) = http_get {
        port(errors, &format!("{field}.httpGet.port"), &get.port);
        if let Some(scheme) = get.scheme.as_deref() {
            if scheme != "HTTP" && scheme != "HTTPS" {
                errors.not_supported(
                    &format!("{field}.httpGet.scheme"),
                    scheme,
                    &["HTTP", "HTTPS"],
                );
            }
        }
    }
    if let Some(tcp) = tcp_socket {
        port(errors, &format!("{field}.tcpSocket.port"), &tcp.port);
    }
}

fn port(errors: &mut Errors, field: &str, port: &IntOrString) {
    match port {
        IntOrString::Int(n) if !(1..=65535).contains(n) => {
            errors.invalid(field, n, "must be between 1 and 65535, inclusive")
        }
        IntOrString::String(name) if !is_port_name(name) => errors.invalid(
            field,
            format!("\"{name}\""),
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        ),
        _ => {}
    }
}

/// An IANA service name, as a named port must be: at most 15 of `[a-z0-9-]`, a letter somewhere, no `--`, no `-`
/// at either end.
fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.contains("--")
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(extra: serde_json::Value) -> Container {
        let mut c = json!({"name": "main", "image": "busybox"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        serde_json::from_value(c).unwrap()
    }

    fn causes(c: &Container) -> Vec<(String, String)> {
        let mut errors = Errors::default();
        validate(&mut errors, "spec.containers[0]", c);
        errors.0.into_iter().map(|c| (c.field, c.message)).collect()
    }

    #[test]
    fn probes_get_kubernetes_defaults() {
        let mut c = container(json!({
            "livenessProbe": {"httpGet": {"port": 8080}, "periodSeconds": 0},
            "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/quit"}}}
        }));
        default(&mut c);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v["livenessProbe"],
            json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                   "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(
            v["lifecycle"]["preStop"]["httpGet"],
            json!({"port": 80, "path": "/quit", "scheme": "HTTP"})
        );
        assert!(causes(&c).is_empty());
    }

    #[test]
    fn bad_probes_are_refused_with_kubernetes_causes() {
        let c = container(json!({
            "livenessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}, "successThreshold": 2},
            "readinessProbe": {"periodSeconds": -1, "terminationGracePeriodSeconds": 5},
            "startupProbe": {"httpGet": {"port": "Not_A_Name"}},
            "lifecycle": {"preStop": {"tcpSocket": {"port": 0}}}
        }));
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            causes(&c),
            vec![
                s(
                    "spec.containers[0].livenessProbe",
                    "Forbidden: may not specify more than 1 handler type"
                ),
                s(
                    "spec.containers[0].livenessProbe.successThreshold",
                    "Invalid value: 2: must be 1"
                ),
                s(
                    "spec.containers[0].readinessProbe",
                    "Required value: must specify a handler type"
                ),
                s(
                    "spec.containers[0].readinessProbe.periodSeconds",
                    "Invalid value: -1: must be greater than or equal to 0"
                ),
                s(
                    "spec.containers[0].readinessProbe.terminationGracePeriodSeconds",
                    "Invalid value: 5: must not be set for readinessProbes"
                ),
                s(
                    "spec.containers[0].startupProbe.httpGet.port",
                    "Invalid value: \"Not_A_Name\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
                ),
                s(
                    "spec.containers[0].lifecycle.preStop.tcpSocket.port",
                    "Invalid value: 0: must be between 1 and 65535, inclusive"
                ),
            ]
        );
    }
}
