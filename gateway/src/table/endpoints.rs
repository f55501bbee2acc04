//! The endpoints table: NAME ENDPOINTS AGE.

use k8s_openapi::chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age_of, items, name, text, Column, AGE, NAME};

/// Kubernetes' endpoints columns (`endpointColumnDefinitions`).
pub const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Endpoints",
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];

/// How many endpoints the cell lists before "+ N more...".
const SHOWN: usize = 3;

/// `ip:port`, with the IP bracketed when it is IPv6 (Go's `net.JoinHostPort`).
fn host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// ENDPOINTS, as `formatEndpoints` computes it: every ready address with every port of its subset (the bare IP
/// for a subset without ports), the first three listed and the rest counted; `<none>` without subsets.
pub fn format_endpoints(endpoints: &Value) -> String {
    let subsets = items(&endpoints["subsets"]);
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut all: Vec<String> = Vec::new();
    for subset in subsets {
        let addresses = items(&subset["addresses"]);
        let ports = items(&subset["ports"]);
        if ports.is_empty() {
            all.extend(addresses.iter().map(|a| text(&a["ip"]).to_string()));
        }
        for port in ports {
            let port = port["port"].as_i64().unwrap_or(0);
            all.extend(addresses.iter().map(|a| host_port(text(&a["ip"]), port)));
        }
    }
    let more = all.len().saturating_sub(SHOWN);
    all.truncate(SHOWN);
    let shown = all.join(",");
    if more > 0 {
        format!("{shown} + {more} more...")
    } else {
        // Subsets with only not-ready addresses print as an empty cell, as in Kubernetes.
        shown
    }
}

/// The cells of one Endpoints object.
pub fn cells(endpoints: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(endpoints)),
        json!(format_endpoints(endpoints)),
        json!(age_of(endpoints, now)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::meta::parse_time;

    fn endpoints(subsets: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Endpoints",
               "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
               "subsets": subsets})
    }

    #[test]
    fn endpoint_cells() {
        let e = endpoints(
            json!([{"addresses": [{"ip": "10.0.0.1", "targetRef": {"kind": "Pod", "name": "web-1"}},
                                                {"ip": "10.0.0.2"}],
                                  "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]),
        );
        let now = parse_time("2026-01-01T00:00:05Z").unwrap();
        assert_eq!(
            cells(&e, now),
            vec![
                json!("web"),
                json!("10.0.0.1:8080,10.0.0.2:8080"),
                json!("5s")
            ]
        );
    }

    #[test]
    fn more_than_three_are_counted() {
        // Two ports times three addresses, plus a portless subset: 7 endpoints, 3 shown.
        let e = endpoints(json!([
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}],
             "ports": [{"port": 80}, {"port": 443}]},
            {"addresses": [{"ip": "10.0.1.1"}]}
        ]));
        assert_eq!(
            format_endpoints(&e),
            "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 4 more..."
        );
        let four = endpoints(
            json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"},
                                                   {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}]}]),
        );
        assert_eq!(
            format_endpoints(&four),
            "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."
        );
    }

    #[test]
    fn headless_ipv6_and_empty() {
        let e = endpoints(
            json!([{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 53}]},
                                 {"addresses": [{"ip": "10.0.0.9"}]}]),
        );
        assert_eq!(format_endpoints(&e), "[fd00::1]:53,10.0.0.9");
        assert_eq!(format_endpoints(&endpoints(json!([]))), "<none>");
        assert_eq!(
            format_endpoints(&json!({"metadata": {"name": "x"}})),
            "<none>"
        );
        let not_ready = endpoints(
            json!([{"notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]),
        );
        assert_eq!(format_endpoints(&not_ready), "");
    }
}
