//! The node table: NAME STATUS ROLES AGE VERSION (+ INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION
//! CONTAINER-RUNTIME).

use k8s_openapi::chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age_of, name, Column, AGE, NAME};

/// Kubernetes' node columns.
pub const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Status", "The status of the node"),
    Column::new("Roles", "The roles of the node"),
    AGE,
    Column::new("Version", "Kubelet Version reported by the node."),
    Column::new("Internal-IP", "List of addresses reachable to the node.").wide(),
    Column::new("External-IP", "List of addresses reachable to the node.").wide(),
    Column::new("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).").wide(),
    Column::new("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).").wide(),
    Column::new("Container-Runtime", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).").wide(),
];

/// STATUS: Ready / NotReady from the Ready condition (Unknown without one), `,SchedulingDisabled` when cordoned.
pub fn status(node: &Value) -> String {
    let ready = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready");
    let mut status = match ready {
        Some(c) if c["status"] == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if node["spec"]["unschedulable"] == true {
        status.push_str(",SchedulingDisabled");
    }
    status
}

/// ROLES: from `node-role.kubernetes.io/<role>` and `kubernetes.io/role` labels.
fn roles(node: &Value) -> String {
    let mut roles: Vec<String> = Vec::new();
    for (k, v) in node["metadata"]["labels"].as_object().into_iter().flatten() {
        if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.push(role.to_string());
            }
        } else if k == "kubernetes.io/role" {
            if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                roles.push(v.to_string());
            }
        }
    }
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

fn address(node: &Value, kind: &str) -> String {
    node["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == kind)
        .and_then(|a| a["address"].as_str())
        .unwrap_or("<none>")
        .to_string()
}

/// The cells of one node.
pub fn cells(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let info = &node["status"]["nodeInfo"];
    let or_unknown = |field: &str| {
        info[field]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("<unknown>")
            .to_string()
    };
    vec![
        json!(name(node)),
        json!(status(node)),
        json!(roles(node)),
        json!(age_of(node, now)),
        json!(info["kubeletVersion"].as_str().unwrap_or_default()),
        json!(address(node, "InternalIP")),
        json!(address(node, "ExternalIP")),
        json!(or_unknown("osImage")),
        json!(or_unknown("kernelVersion")),
        json!(or_unknown("containerRuntimeVersion")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::meta::parse_time;

    #[test]
    fn node_status_roles_and_addresses() {
        let mut n = json!({"metadata": {"name": "n1", "creationTimestamp": "2026-01-01T00:00:00Z",
                                        "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"}},
                           "spec": {},
                           "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                      "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                                      "nodeInfo": {"kubeletVersion": "navarch-0.1.0", "osImage": "Debian"}}});
        let now = parse_time("2026-01-01T00:10:00Z").unwrap();
        assert_eq!(
            cells(&n, now),
            vec![
                json!("n1"),
                json!("Ready"),
                json!("control-plane,worker"),
                json!("10m"),
                json!("navarch-0.1.0"),
                json!("10.0.0.1"),
                json!("<none>"),
                json!("Debian"),
                json!("<unknown>"),
                json!("<unknown>")
            ]
        );
        n["spec"]["unschedulable"] = json!(true);
        n["status"]["conditions"][0]["status"] = json!("Unknown");
        assert_eq!(status(&n), "NotReady,SchedulingDisabled");
        assert_eq!(status(&json!({})), "Unknown");
        assert_eq!(roles(&json!({})), "<none>");
    }
}
