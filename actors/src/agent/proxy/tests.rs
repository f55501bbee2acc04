//! What the proxy routes, read from Service and Endpoints objects.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::model::{proxied_ports, Protocol, ProxiedPort};

fn meta() -> ObjectMeta {
    ObjectMeta {
        namespace: Some("demo".into()),
        name: Some("web".into()),
        ..Default::default()
    }
}

fn port(name: &str, port: i32, protocol: &str, node_port: Option<i32>) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        protocol: Some(protocol.into()),
        node_port,
        ..Default::default()
    }
}

fn service(type_: &str, cluster_ip: &str) -> Service {
    Service {
        metadata: meta(),
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            cluster_ip: Some(cluster_ip.into()),
            ports: Some(vec![
                port("http", 8080, "TCP", Some(30080)),
                port("dns", 53, "UDP", Some(30053)),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn address(ip: &str) -> EndpointAddress {
    EndpointAddress {
        ip: ip.into(),
        ..Default::default()
    }
}

fn endpoints() -> Endpoints {
    let ep_port = |name: &str, port, protocol: &str| EndpointPort {
        name: Some(name.into()),
        port,
        protocol: Some(protocol.into()),
        ..Default::default()
    };
    Endpoints {
        metadata: meta(),
        subsets: Some(vec![
            EndpointSubset {
                addresses: Some(vec![address("10.88.0.3"), address("10.88.0.2")]),
                not_ready_addresses: Some(vec![address("10.88.0.9")]),
                ports: Some(vec![
                    ep_port("http", 80, "TCP"),
                    ep_port("dns", 5353, "UDP"),
                ]),
            },
            // Pods whose named target port resolved to another number.
            EndpointSubset {
                addresses: Some(vec![address("10.88.1.5")]),
                not_ready_addresses: None,
                ports: Some(vec![ep_port("http", 81, "TCP")]),
            },
        ]),
    }
}

#[test]
fn each_port_gets_its_ready_endpoints_and_node_port() {
    let ports = proxied_ports(&service("NodePort", "10.96.0.20"), Some(&endpoints()));
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    assert_eq!(
        ports,
        vec![
            ProxiedPort {
                namespace: "demo".into(),
                service: "web".into(),
                protocol: Protocol::Tcp,
                cluster_ip: ip("10.96.0.20"),
                port: 8080,
                node_port: Some(30080),
                endpoints: vec![
                    (ip("10.88.0.2"), 80),
                    (ip("10.88.0.3"), 80),
                    (ip("10.88.1.5"), 81)
                ],
            },
            ProxiedPort {
                namespace: "demo".into(),
                service: "web".into(),
                protocol: Protocol::Udp,
                cluster_ip: ip("10.96.0.20"),
                port: 53,
                node_port: Some(30053),
                endpoints: vec![(ip("10.88.0.2"), 5353), (ip("10.88.0.3"), 5353)],
            },
        ]
    );
}

#[test]
fn cluster_ip_services_have_no_node_ports_and_headless_ones_are_not_proxied() {
    let ports = proxied_ports(&service("ClusterIP", "10.96.0.20"), None);
    assert_eq!(ports.len(), 2);
    assert!(ports
        .iter()
        .all(|p| p.node_port.is_none() && p.endpoints.is_empty()));
    assert!(proxied_ports(&service("ClusterIP", "None"), Some(&endpoints())).is_empty());
    assert!(proxied_ports(&service("ExternalName", ""), None).is_empty());
}
