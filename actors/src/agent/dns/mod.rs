//! Cluster DNS served by every node agent, as CoreDNS's `kubernetes` plugin answers: `<service>.<namespace>.svc.
//! cluster.local` is the Service's cluster IP (a headless Service's ready endpoint IPs; an ExternalName Service a
//! CNAME), `_<port>._<proto>.<service>.<namespace>.svc.cluster.local` an SRV record per named port, other names in
//! `cluster.local` NXDOMAIN; names outside it go to the host's resolvers (REFUSED when it has none). [`Records`]
//! holds what the caches say, [`answer`] decides (pure), `server` serves UDP and TCP on the pod bridge's address
//! and forwards; [`resolv_conf`] is what pods with `dnsPolicy: ClusterFirst` get as `/etc/resolv.conf`.

mod server;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, RwLock};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};

pub use server::{start, DnsServer};

use crate::agent::proxy::model::Protocol;

/// The cluster's DNS domain (the kubelet's `--cluster-domain` default).
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// The TTL of every answer (CoreDNS's `kubernetes` plugin default): short, as endpoints come and go.
pub const TTL: u32 = 5;

/// A Service as DNS shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceRecord {
    /// Its A records: the cluster IP, or a headless Service's ready endpoint IPs (sorted).
    pub addresses: Vec<Ipv4Addr>,
    /// An ExternalName Service's name (answered as a CNAME).
    pub external_name: Option<String>,
    /// Its named ports (name, protocol, port): SRV records. For a headless Service the endpoints' port.
    pub ports: Vec<(String, Protocol, u16)>,
}

/// What DNS knows: Services by (namespace, name).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Records {
    services: BTreeMap<(String, String), ServiceRecord>,
}

impl Records {
    /// The records of `services`, each with the Endpoints of its name.
    pub fn from_objects<'a>(
        services: impl IntoIterator<Item = (&'a Service, Option<&'a Endpoints>)>,
    ) -> Self {
        let mut records = Records::default();
        for (service, endpoints) in services {
            let Some(spec) = &service.spec else { continue };
            let key = (
                service.metadata.namespace.clone().unwrap_or_default(),
                service.metadata.name.clone().unwrap_or_default(),
            );
            let mut record = ServiceRecord::default();
            if spec.type_.as_deref() == Some("ExternalName") {
                record.external_name = spec.external_name.clone().filter(|n| !n.is_empty());
            } else if spec.cluster_ip.as_deref() == Some("None") {
                let mut ips: Vec<Ipv4Addr> = endpoints
                    .iter()
                    .flat_map(|e| e.subsets.iter().flatten())
                    .flat_map(|s| s.addresses.iter().flatten())
                    .filter_map(|a| a.ip.parse().ok())
                    .collect();
                ips.sort();
                ips.dedup();
                record.addresses = ips;
                // A headless Service's SRV records point at its endpoints' ports.
                let mut ports: Vec<(String, Protocol, u16)> = endpoints
                    .iter()
                    .flat_map(|e| e.subsets.iter().flatten())
                    .flat_map(|s| s.ports.iter().flatten())
                    .filter_map(|p| {
                        let name = p.name.clone().filter(|n| !n.is_empty())?;
                        let protocol = Protocol::parse(p.protocol.as_deref())?;
                        Some((name, protocol, u16::try_from(p.port).ok()?))
                    })
                    .collect();
                ports.sort();
                ports.dedup();
                record.ports = ports;
            } else if let Some(ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok()) {
                record.addresses = vec![ip];
                record.ports = spec
                    .ports
                    .iter()
                    .flatten()
                    .filter_map(|p| {
                        let name = p.name.clone().filter(|n| !n.is_empty())?;
                        let protocol = Protocol::parse(p.protocol.as_deref())?;
                        Some((name, protocol, u16::try_from(p.port).ok()?))
                    })
                    .collect();
            } else {
                continue;
            }
            records.services.insert(key, record);
        }
        records
    }

    /// The record of Service `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<&ServiceRecord> {
        self.services
            .get(&(namespace.to_string(), name.to_string()))
    }
}

/// The records the DNS server answers from; the proxy replaces them as Services and Endpoints change. Cheap to
/// clone; clones share the records.
#[derive(Debug, Clone, Default)]
pub struct SharedRecords(Arc<RwLock<Arc<Records>>>);

impl SharedRecords {
    /// The records now.
    pub fn current(&self) -> Arc<Records> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the records.
    pub fn replace(&self, records: Records) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(records);
    }
}

/// What to do with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Send this answer.
    Answer(Box<Message>),
    /// Forward the query, as it is, to the host's resolvers (a name outside the cluster domain).
    Forward,
}

/// The answer to `query` from `records`; names outside the cluster domain are forwarded when `can_forward` (the
/// host has resolvers), else REFUSED, as a server that does not recurse for anyone says.
pub fn answer(query: &Message, records: &Records, can_forward: bool) -> Reply {
    let mut response = Message::response(query.metadata.id, query.metadata.op_code);
    response.metadata.recursion_desired = query.metadata.recursion_desired;
    response.metadata.checking_disabled = query.metadata.checking_disabled;
    response.metadata.recursion_available = can_forward;
    let reply = |mut response: Message, code| {
        response.metadata.response_code = code;
        Reply::Answer(Box::new(response))
    };
    if query.metadata.message_type != MessageType::Query {
        return reply(response, ResponseCode::FormErr);
    }
    if query.metadata.op_code != OpCode::Query {
        return reply(response, ResponseCode::NotImp);
    }
    let [question] = query.queries.as_slice() else {
        response.add_queries(query.queries.clone());
        return reply(response, ResponseCode::FormErr);
    };
    response.add_query(question.clone());
    let name = question.name().to_lowercase().to_ascii();
    let name = name.trim_end_matches('.');
    let Some(labels) = in_cluster_domain(name) else {
        return if can_forward {
            Reply::Forward
        } else {
            reply(response, ResponseCode::Refused)
        };
    };
    response.metadata.authoritative = true;
    let owner = question.name().clone();
    let qtype = question.query_type();
    let wants = |t: RecordType| qtype == t || qtype == RecordType::ANY;
    match labels.as_slice() {
        // The zone and its namespaces exist but hold no records of their own.
        [] | ["svc"] | [_, "svc"] => reply(response, ResponseCode::NoError),
        [service, namespace, "svc"] => {
            let Some(record) = records.get(namespace, service) else {
                return reply(response, ResponseCode::NXDomain);
            };
            if let Some(external) = &record.external_name {
                if let Ok(target) = Name::from_ascii(format!("{external}.")) {
                    response.add_answer(Record::from_rdata(
                        owner,
                        TTL,
                        RData::CNAME(CNAME(target)),
                    ));
                }
                return reply(response, ResponseCode::NoError);
            }
            if record.addresses.is_empty() {
                // A headless Service with no ready endpoint, as CoreDNS answers it.
                return reply(response, ResponseCode::NXDomain);
            }
            if wants(RecordType::A) {
                for ip in &record.addresses {
                    response.add_answer(Record::from_rdata(owner.clone(), TTL, RData::A(A(*ip))));
                }
            }
            reply(response, ResponseCode::NoError)
        }
        [port, protocol, service, namespace, "svc"] => {
            let (Some(port), Some(protocol)) = (port.strip_prefix('_'), protocol.strip_prefix('_'))
            else {
                return reply(response, ResponseCode::NXDomain);
            };
            let Some(record) = records.get(namespace, service) else {
                return reply(response, ResponseCode::NXDomain);
            };
            let Some((_, _, number)) = record
                .ports
                .iter()
                .find(|(n, p, _)| n == port && p.nft() == protocol)
            else {
                return reply(response, ResponseCode::NXDomain);
            };
            if wants(RecordType::SRV) {
                let target = format!("{service}.{namespace}.svc.{CLUSTER_DOMAIN}.");
                if let Ok(target) = Name::from_ascii(&target) {
                    let srv = SRV::new(0, 100, *number, target.clone());
                    response.add_answer(Record::from_rdata(owner, TTL, RData::SRV(srv)));
                    for ip in &record.addresses {
                        response.add_additional(Record::from_rdata(
                            target.clone(),
                            TTL,
                            RData::A(A(*ip)),
                        ));
                    }
                }
            }
            reply(response, ResponseCode::NoError)
        }
        _ => reply(response, ResponseCode::NXDomain),
    }
}

/// The labels of `name` before the cluster domain (lowercase, no trailing dot), or None when it is outside.
fn in_cluster_domain(name: &str) -> Option<Vec<&str>> {
    if name == CLUSTER_DOMAIN {
        return Some(vec![]);
    }
    let head = name.strip_suffix(CLUSTER_DOMAIN)?.strip_suffix('.')?;
    Some(head.split('.').collect())
}

/// The nameservers of a `resolv.conf` (IPv4 and IPv6), in order.
pub fn nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
                .and_then(|ip| ip.parse().ok())
        })
        .collect()
}

/// The `/etc/resolv.conf` a pod gets, or None when it keeps the host's: with `dnsPolicy` ClusterFirst (the
/// default; the host's for a `hostNetwork` pod, as the kubelet does) or ClusterFirstWithHostNet, the cluster DNS at
/// `nameserver`, the kubelet's search path for the pod's namespace followed by the host's search domains, and
/// `ndots:5`. `Default` keeps the host's; `None` (only `dnsConfig`) is not supported and keeps the host's too.
pub fn resolv_conf(pod: &Pod, nameserver: Ipv4Addr, host_resolv_conf: &str) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let host_network = spec.host_network == Some(true);
    match spec.dns_policy.as_deref() {
        None | Some("ClusterFirst") if !host_network => {}
        Some("ClusterFirstWithHostNet") => {}
        _ => return None,
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut search = vec![
        format!("{namespace}.svc.{CLUSTER_DOMAIN}"),
        format!("svc.{CLUSTER_DOMAIN}"),
        CLUSTER_DOMAIN.to_string(),
    ];
    for line in host_resolv_conf.lines() {
        let mut words = line.split_whitespace();
        if matches!(words.next(), Some("search" | "domain")) {
            for domain in words {
                if !search.iter().any(|s| s == domain) {
                    search.push(domain.to_string());
                }
            }
        }
    }
    Some(format!(
        "nameserver {nameserver}\nsearch {}\noptions ndots:5\n",
        search.join(" ")
    ))
}

#[cfg(test)]
mod tests;
