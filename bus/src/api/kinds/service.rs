//! Service and Endpoints: defaults (type ClusterIP, TCP, targetPort = port...), port rules, and the fields an
//! update may not change. Addresses are allocated when the Service is stored (`super::super::allocation`), not here.

use std::collections::HashSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Endpoints, Service, ServiceSpec, ServiceStatus};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{port_number, protocol};
use crate::api::validate::{self, Errors};

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

/// The node port range kube-apiserver uses by default (`--service-node-port-range`).
pub(crate) const NODE_PORTS: std::ops::RangeInclusive<i32> = 30000..=32767;

/// An IANA service name, as a named `targetPort` must be: at most 15 of `[a-z0-9-]`, a letter somewhere, no `--`,
/// no `-` at either end.
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

fn defaults(spec: &mut ServiceSpec) {
    let kind = spec.type_.get_or_insert_with(|| "ClusterIP".into()).clone();
    if kind == "ExternalName" {
        return;
    }
    spec.session_affinity.get_or_insert_with(|| "None".into());
    spec.internal_traffic_policy
        .get_or_insert_with(|| "Cluster".into());
    if kind == "NodePort" || kind == "LoadBalancer" {
        spec.external_traffic_policy
            .get_or_insert_with(|| "Cluster".into());
    }
    for port in spec.ports.iter_mut().flatten() {
        port.protocol.get_or_insert_with(|| "TCP".into());
        // Zero and "" mean unset too: a protobuf body always carries the field.
        let unset = match &port.target_port {
            None | Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(s)) => s.is_empty(),
            Some(IntOrString::Int(_)) => false,
        };
        if unset {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
}

/// Keeps what the cluster assigned (cluster IPs, node ports) when an update leaves it out, as kube-apiserver does
/// for a PUT of an object without them.
fn keep_assigned(spec: &mut ServiceSpec, old: &ServiceSpec) {
    if spec.cluster_ip.as_deref().unwrap_or("").is_empty() {
        spec.cluster_ip.clone_from(&old.cluster_ip);
        if spec.cluster_ips.as_ref().is_none_or(Vec::is_empty) {
            spec.cluster_ips.clone_from(&old.cluster_ips);
        }
    }
    if spec.ip_families.as_ref().is_none_or(Vec::is_empty) {
        spec.ip_families.clone_from(&old.ip_families);
    }
    if spec.ip_family_policy.is_none() {
        spec.ip_family_policy.clone_from(&old.ip_family_policy);
    }
    let node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    for port in spec.ports.iter_mut().flatten() {
        if node_ports && port.node_port.is_none() {
            port.node_port = old
                .ports
                .iter()
                .flatten()
                .find(|o| o.port == port.port && o.protocol == port.protocol)
                .and_then(|o| o.node_port);
        }
    }
}

fn check_spec(errors: &mut Errors, spec: &ServiceSpec) {
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    if !TYPES.contains(&kind) {
        errors.not_supported("spec.type", kind, TYPES);
    }
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or("");
    let headless = cluster_ip == "None";
    if !cluster_ip.is_empty() && !headless && cluster_ip.parse::<IpAddr>().is_err() {
        errors.invalid(
            "spec.clusterIPs[0]",
            format!("\"{cluster_ip}\""),
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        );
    }
    let ports = spec.ports.as_deref().unwrap_or_default();
    if kind == "ExternalName" {
        match spec.external_name.as_deref() {
            Some(name) if validate::is_dns_subdomain(name) => {}
            Some(name) if !name.is_empty() => errors.invalid(
                "spec.externalName",
                format!("\"{name}\""),
                "must be a valid DNS subdomain",
            ),
            _ => errors.required("spec.externalName", ""),
        }
    } else if ports.is_empty() && !headless {
        errors.required("spec.ports", "");
    }
    if headless && kind != "ClusterIP" && kind != "ExternalName" {
        errors.invalid(
            "spec.clusterIPs[0]",
            "\"None\"",
            &format!("may not be set to 'None' for {kind} services"),
        );
    }
    let mut names = HashSet::new();
    let mut seen = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        let name = port.name.as_deref().unwrap_or("");
        if name.is_empty() {
            if ports.len() > 1 {
                errors.required(&format!("{field}.name"), "");
            }
        } else if !validate::is_dns_label(name) {
            errors.invalid(
                &format!("{field}.name"),
                format!("\"{name}\""),
                validate::DNS1123_LABEL,
            );
        } else if !names.insert(name.to_string()) {
            errors.duplicate(&format!("{field}.name"), name);
        }
        port_number(errors, &format!("{field}.port"), port.port);
        protocol(
            errors,
            &format!("{field}.protocol"),
            port.protocol.as_deref(),
        );
        if !seen.insert((port.port, port.protocol.clone())) {
            errors.duplicate(
                &field,
                &format!(
                    "{}/{}",
                    port.port,
                    port.protocol.as_deref().unwrap_or("TCP")
                ),
            );
        }
        match &port.target_port {
            Some(IntOrString::Int(p)) => port_number(errors, &format!("{field}.targetPort"), *p),
            Some(IntOrString::String(s)) if !is_port_name(s) => errors.invalid(
                &format!("{field}.targetPort"),
                format!("\"{s}\""),
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-), at most 15 characters, at least one letter, and no consecutive or leading/trailing hyphens",
            ),
            _ => {}
        }
        if let Some(node_port) = port.node_port {
            if kind != "NodePort" && kind != "LoadBalancer" {
                errors.forbidden(
                    &format!("{field}.nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                );
            } else if !NODE_PORTS.contains(&node_port) {
                errors.invalid(
                    &format!("{field}.nodePort"),
                    node_port,
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                );
            }
        }
    }
    if let Some(affinity) = &spec.session_affinity {
        if !["None", "ClientIP"].contains(&affinity.as_str()) {
            errors.not_supported("spec.sessionAffinity", affinity, &["ClientIP", "None"]);
        }
    }
    validate::labels(errors, "spec.selector", spec.selector.as_ref());
}

/// Defaults and validates a Service (and its change from `old`).
pub(crate) fn service(svc: &mut Service, old: Option<&Service>, errors: &mut Errors) {
    let Some(spec) = svc.spec.as_mut() else {
        errors.required("spec", "");
        return;
    };
    defaults(spec);
    if let Some(old_spec) = old.and_then(|o| o.spec.as_ref()) {
        keep_assigned(spec, old_spec);
        let (before, after) = (
            old_spec.cluster_ip.as_deref().unwrap_or(""),
            spec.cluster_ip.as_deref().unwrap_or(""),
        );
        // An ExternalName service has no address; changing to or from it is how the address goes and comes.
        let external = |s: &ServiceSpec| s.type_.as_deref() == Some("ExternalName");
        if !before.is_empty() && before != after && !external(old_spec) && !external(spec) {
            errors.invalid(
                "spec.clusterIPs[0]",
                format!("\"{after}\""),
                "may not change once set",
            );
        }
    }
    check_spec(errors, spec);
    if old.is_none() {
        svc.status = Some(ServiceStatus {
            load_balancer: Some(Default::default()),
            ..Default::default()
        });
    }
}

/// Validates Endpoints: addresses are IPs, ports are ports.
pub(crate) fn endpoints(ep: &mut Endpoints, errors: &mut Errors) {
    for (i, subset) in ep.subsets.iter().flatten().enumerate() {
        let addresses = subset
            .addresses
            .iter()
            .flatten()
            .map(|a| ("addresses", a))
            .chain(
                subset
                    .not_ready_addresses
                    .iter()
                    .flatten()
                    .map(|a| ("notReadyAddresses", a)),
            );
        for (j, (list, address)) in addresses.enumerate() {
            if address.ip.parse::<IpAddr>().is_err() {
                errors.invalid(
                    &format!("subsets[{i}].{list}[{j}].ip"),
                    format!("\"{}\"", address.ip),
                    "must be a valid IP address",
                );
            }
        }
        for (j, port) in subset.ports.iter().flatten().enumerate() {
            port_number(errors, &format!("subsets[{i}].ports[{j}].port"), port.port);
            protocol(
                errors,
                &format!("subsets[{i}].ports[{j}].protocol"),
                port.protocol.as_deref(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn admit(value: serde_json::Value, old: Option<&Service>) -> (Service, Vec<String>) {
        let mut svc: Service = serde_json::from_value(value).unwrap();
        let mut errors = Errors::default();
        service(&mut svc, old, &mut errors);
        (svc, errors.0.into_iter().map(|c| c.field).collect())
    }

    #[test]
    fn defaults_fill_type_protocol_and_target_port() {
        let (svc, errors) = admit(
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "targetPort": 0}]}}),
            None,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let spec = svc.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.session_affinity.as_deref(), Some("None"));
        let ports = spec.ports.unwrap();
        assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
        assert_eq!(ports[0].target_port, Some(IntOrString::Int(80)));
        assert_eq!(
            ports[1].target_port,
            Some(IntOrString::Int(81)),
            "0 is unset"
        );
    }

    #[test]
    fn bad_ports_are_refused_with_their_fields() {
        let (_, errors) = admit(
            json!({"metadata": {"name": "web"}, "spec": {"ports": [
                {"port": 0, "name": "a"}, {"port": 80, "protocol": "HTTP", "name": "a"},
                {"port": 81, "targetPort": "Not_A_Name", "name": "c", "nodePort": 30001}
            ]}}),
            None,
        );
        assert_eq!(
            errors,
            vec![
                "spec.ports[0].port",
                "spec.ports[0].targetPort",
                "spec.ports[1].name",
                "spec.ports[1].protocol",
                "spec.ports[2].targetPort",
                "spec.ports[2].nodePort"
            ]
        );
        let (_, errors) = admit(json!({"metadata": {"name": "web"}, "spec": {}}), None);
        assert_eq!(errors, vec!["spec.ports"]);
    }

    #[test]
    fn assigned_addresses_survive_an_update_that_leaves_them_out_and_cannot_change() {
        let (old, _) = admit(
            json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
                   "ports": [{"port": 80, "nodePort": 30080}]}}),
            None,
        );
        let (new, errors) = admit(
            json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
            Some(&old),
        );
        assert!(errors.is_empty(), "{errors:?}");
        let spec = new.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
        assert_eq!(spec.ports.unwrap()[0].node_port, Some(30080));
        let (_, errors) = admit(
            json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.11",
                   "ports": [{"port": 80}]}}),
            Some(&old),
        );
        assert_eq!(errors, vec!["spec.clusterIPs[0]"]);
    }
}
