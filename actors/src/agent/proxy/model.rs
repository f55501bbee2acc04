//! What the proxy routes, read from Services and their Endpoints: one [`ProxiedPort`] per Service port with a
//! cluster IP, with its node port and ready endpoints. Pure.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Endpoints, Service};

/// A transport protocol a Service port uses, as nftables names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (a Service port's default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// The protocol a Service or Endpoints port names (`TCP` when unset); None for one nftables cannot match.
    pub fn parse(name: Option<&str>) -> Option<Self> {
        match name.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// nftables' name (`meta l4proto` and `inet_proto` values).
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One Service port as the proxy routes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProxiedPort {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// The port's protocol.
    pub protocol: Protocol,
    /// The Service's cluster IP.
    pub cluster_ip: Ipv4Addr,
    /// The Service port (`port`).
    pub port: u16,
    /// Its node port, for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
    /// The ready endpoints serving it (address, target port), sorted, without duplicates.
    pub endpoints: Vec<(Ipv4Addr, u16)>,
}

/// The ports of `service` the proxy routes, with the ready addresses of `endpoints` (the Endpoints of the same
/// name). None for ExternalName and headless Services (they have no cluster IP to route; DNS serves them), nor for
/// a cluster IP that is not IPv4.
pub fn proxied_ports(service: &Service, endpoints: Option<&Endpoints>) -> Vec<ProxiedPort> {
    let Some(spec) = &service.spec else {
        return vec![];
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return vec![];
    }
    let Some(cluster_ip) = spec
        .cluster_ip
        .as_deref()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
    else {
        return vec![];
    };
    let with_node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    let (namespace, name) = (
        service.metadata.namespace.clone().unwrap_or_default(),
        service.metadata.name.clone().unwrap_or_default(),
    );
    spec.ports
        .iter()
        .flatten()
        .filter_map(|sp| {
            let protocol = Protocol::parse(sp.protocol.as_deref())?;
            let port = u16::try_from(sp.port).ok()?;
            let node_port = sp
                .node_port
                .filter(|_| with_node_ports)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0);
            let port_name = sp.name.as_deref().unwrap_or_default();
            Some(ProxiedPort {
                namespace: namespace.clone(),
                service: name.clone(),
                protocol,
                cluster_ip,
                port,
                node_port,
                endpoints: ready_endpoints(endpoints, port_name, protocol),
            })
        })
        .collect()
}

/// The ready addresses of `endpoints` for the Service port named `port_name` (empty for the only, unnamed port),
/// each with the target port its subset gives.
fn ready_endpoints(
    endpoints: Option<&Endpoints>,
    port_name: &str,
    protocol: Protocol,
) -> Vec<(Ipv4Addr, u16)> {
    let mut found = BTreeSet::new();
    for subset in endpoints.iter().flat_map(|e| e.subsets.iter().flatten()) {
        let Some(port) = subset.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or_default() == port_name
                && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
        }) else {
            continue;
        };
        let Ok(port) = u16::try_from(port.port) else {
            continue;
        };
        for address in subset.addresses.iter().flatten() {
            if let Ok(ip) = address.ip.parse::<Ipv4Addr>() {
                found.insert((ip, port));
            }
        }
    }
    found.into_iter().collect()
}
