//! The service table: NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE (+ SELECTOR).
//!
//! Where kube-apiserver defaults a field before printing (`type` ClusterIP, a port's `protocol` TCP, `clusterIPs`
//! from `clusterIP`), a missing field reads as that default, so a Service stored as written prints as it would
//! from Kubernetes.

use k8s_openapi::chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age_of, format_labels, items, name, text, Column, AGE, NAME};

/// Kubernetes' service columns (`serviceColumnDefinitions`).
pub const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Type", "type determines how the Service is exposed."),
    Column::new("Cluster-IP", "clusterIP is the IP address of the service and is usually assigned randomly."),
    Column::new("External-IP", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    Column::new("Port(s)", "The list of ports that are exposed by this service."),
    AGE,
    Column::new("Selector", "Route service traffic to pods with label keys and values matching this selector.").wide(),
];

/// The service's type, `ClusterIP` when unset (the API default).
fn service_type(svc: &Value) -> &str {
    svc["spec"]["type"]
        .as_str()
        .filter(|t| !t.is_empty())
        .unwrap_or("ClusterIP")
}

/// CLUSTER-IP: the first of `clusterIPs` (`None` for a headless service), `<none>` without one.
fn cluster_ip(spec: &Value) -> String {
    items(&spec["clusterIPs"])
        .first()
        .map(|ip| text(ip).to_string())
        .or_else(|| spec["clusterIP"].as_str().map(str::to_string))
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| "<none>".into())
}

/// The load balancer's ingress points (IP, else hostname), sorted and deduplicated, joined with ",".
///
/// kubectl clips this to 16 characters without `-o wide`, but the server fills Tables as for wide output.
fn load_balancer_ingress(svc: &Value) -> String {
    let mut points: Vec<&str> = items(&svc["status"]["loadBalancer"]["ingress"])
        .iter()
        .filter_map(|i| {
            [text(&i["ip"]), text(&i["hostname"])]
                .into_iter()
                .find(|s| !s.is_empty())
        })
        .collect();
    points.sort_unstable();
    points.dedup();
    points.join(",")
}

/// EXTERNAL-IP, as `getServiceExternalIP` computes it.
fn external_ip(svc: &Value) -> String {
    let spec = &svc["spec"];
    let external: Vec<&str> = items(&spec["externalIPs"]).iter().map(text).collect();
    match service_type(svc) {
        "ClusterIP" | "NodePort" if !external.is_empty() => external.join(","),
        "ClusterIP" | "NodePort" => "<none>".into(),
        "LoadBalancer" => {
            let ingress = load_balancer_ingress(svc);
            match (ingress.is_empty(), external.is_empty()) {
                (true, true) => "<pending>".into(),
                (false, true) => ingress,
                (true, false) => external.join(","),
                (false, false) => format!("{ingress},{}", external.join(",")),
            }
        }
        "ExternalName" => text(&spec["externalName"]).to_string(),
        _ => "<unknown>".into(),
    }
}

/// PORT(S): `port/protocol`, or `port:nodePort/protocol` with a node port, joined with ","; `<none>` without ports.
fn ports(spec: &Value) -> String {
    let ports: Vec<String> = items(&spec["ports"])
        .iter()
        .map(|p| {
            let port = p["port"].as_i64().unwrap_or(0);
            let protocol = p["protocol"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(node_port) if node_port > 0 => format!("{port}:{node_port}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    }
}

/// The cells of one service.
pub fn cells(svc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let spec = &svc["spec"];
    vec![
        json!(name(svc)),
        json!(service_type(svc)),
        json!(cluster_ip(spec)),
        json!(external_ip(svc)),
        json!(ports(spec)),
        json!(age_of(svc, now)),
        json!(format_labels(&spec["selector"])),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::meta::parse_time;

    fn now() -> DateTime<Utc> {
        parse_time("2026-01-02T00:00:00Z").unwrap()
    }

    fn service(spec: Value, status: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
               "spec": spec, "status": status})
    }

    #[test]
    fn cluster_ip_service() {
        let svc = service(
            json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                   "selector": {"app": "web", "tier": "frontend"},
                   "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                             {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}]}),
            json!({"loadBalancer": {}}),
        );
        assert_eq!(
            cells(&svc, now()),
            vec![
                json!("web"),
                json!("ClusterIP"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80/TCP,53/UDP"),
                json!("24h"),
                json!("app=web,tier=frontend")
            ]
        );
    }

    #[test]
    fn node_ports_and_external_ips() {
        let svc = service(
            json!({"type": "NodePort", "clusterIPs": ["10.96.3.4"], "externalIPs": ["192.0.2.10", "192.0.2.11"],
                   "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
            json!({}),
        );
        let c = cells(&svc, now());
        assert_eq!(c[3], json!("192.0.2.10,192.0.2.11"));
        assert_eq!(c[4], json!("80:30080/TCP"));
        assert_eq!(c[6], json!("<none>"));
    }

    #[test]
    fn load_balancers_show_ingress_or_pending() {
        let spec = json!({"type": "LoadBalancer", "clusterIPs": ["10.96.5.6"],
                          "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]});
        let pending = service(spec.clone(), json!({"loadBalancer": {}}));
        assert_eq!(external_ip(&pending), "<pending>");
        let ready = service(
            spec.clone(),
            json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com"},
                                                {"ip": "203.0.113.7"}]}}),
        );
        // Longer than kubectl's 16-character clip: the server sends it whole.
        assert_eq!(external_ip(&ready), "203.0.113.7,lb.example.com");
        let mut both = ready.clone();
        both["spec"]["externalIPs"] = json!(["192.0.2.1"]);
        assert_eq!(external_ip(&both), "203.0.113.7,lb.example.com,192.0.2.1");
        let mut only_external = pending.clone();
        only_external["spec"]["externalIPs"] = json!(["192.0.2.1"]);
        assert_eq!(external_ip(&only_external), "192.0.2.1");
    }

    #[test]
    fn external_name_and_headless() {
        let ext = service(
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
            json!({}),
        );
        let c = cells(&ext, now());
        assert_eq!(
            c[1..5],
            [
                json!("ExternalName"),
                json!("<none>"),
                json!("db.example.com"),
                json!("<none>")
            ]
        );
        let headless = service(
            json!({"clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "db"},
                   "ports": [{"port": 5432}]}),
            json!({}),
        );
        let c = cells(&headless, now());
        // No type and no protocol read as the API defaults, ClusterIP and TCP.
        assert_eq!(
            c[1..5],
            [
                json!("ClusterIP"),
                json!("None"),
                json!("<none>"),
                json!("5432/TCP")
            ]
        );
        let odd = service(json!({"type": "Weird"}), json!({}));
        assert_eq!(external_ip(&odd), "<unknown>");
    }

    #[test]
    fn clusterip_alone_still_shows() {
        let svc = service(json!({"clusterIP": "10.96.0.1"}), json!({}));
        assert_eq!(cells(&svc, now())[2], json!("10.96.0.1"));
        let bare = cells(&json!({}), now());
        assert_eq!(
            bare,
            vec![
                json!(""),
                json!("ClusterIP"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<unknown>"),
                json!("<none>")
            ]
        );
    }
}
