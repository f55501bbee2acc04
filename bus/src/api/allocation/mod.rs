//! Cluster IPs and node ports of Services, allocated by the API path itself as kube-apiserver's registry does (not
//! by a controller), so a Service is never seen without its address.
//!
//! Each address in use is a key, `/registry/ranges/serviceips/<ip>` or `/registry/ranges/servicenodeports/<port>`,
//! naming its owner (namespace, name, uid). It is written in the same store transaction as the Service, under a
//! compare that the key is absent (or unchanged since it was found stale), so two gateways can never hand out one
//! address twice. An address is in use only while its owner still claims it: a Service deleted, replaced or changed
//! to a type without node ports leaves its key behind, and the next request for that address finds the owner gone
//! and takes the key over (compare on its mod revision). So deletes and type changes release addresses without the
//! delete path knowing about them; [`Objects::release_unheld`], which each gateway runs periodically, removes such
//! keys from the store.

mod range;

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{json, Value};

pub use range::{CidrError, ServiceCidr};

use super::error::{ApiError, Cause};
use super::kinds::service::NODE_PORTS;
use super::meta;
use super::objects::Objects;
use super::resource::ResourceInfo;
use crate::store::{Compare, DeleteRequest, PutRequest, TxnOp, TxnRequest};

const IPS: &str = "/registry/ranges/serviceips/";
const PORTS: &str = "/registry/ranges/servicenodeports/";
/// How many times a create allocates again after losing an address (or the name) to a concurrent one.
const MAX_RACES: usize = 32;

/// What a Service asks to be given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Wants {
    /// Its cluster IP: None when it needs none (headless, ExternalName) or keeps the one it has.
    pub ip: Option<Ask<String>>,
    /// Node ports, by index in `spec.ports`.
    pub ports: Vec<(usize, Ask<i32>)>,
}

/// One address asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ask<T> {
    /// Any free one.
    Any,
    /// This one.
    Exact(T),
}

fn needs_node_ports(spec: &Value) -> bool {
    match spec["type"].as_str() {
        Some("NodePort") => true,
        Some("LoadBalancer") => spec["allocateLoadBalancerNodePorts"].as_bool() != Some(false),
        _ => false,
    }
}

fn requested_ip(spec: &Value) -> &str {
    match spec["clusterIP"].as_str() {
        Some(ip) if !ip.is_empty() => ip,
        _ => spec["clusterIPs"][0].as_str().unwrap_or(""),
    }
}

/// What `service` (admitted; `old` is its stored state for an update) needs allocated: addresses it has had since
/// `old` are its already. Pure.
pub(crate) fn wants(service: &Value, old: Option<&Value>) -> Wants {
    let spec = &service["spec"];
    let old_spec = old.map(|o| &o["spec"]);
    let mut wants = Wants::default();
    if spec["type"].as_str() != Some("ExternalName") {
        let ip = requested_ip(spec);
        let had = old_spec.map(requested_ip).unwrap_or("");
        wants.ip = match ip {
            "None" => None,
            "" => Some(Ask::Any),
            ip if ip == had => None,
            ip => Some(Ask::Exact(ip.to_string())),
        };
    }
    if needs_node_ports(spec) {
        let had: HashSet<i64> = match old_spec {
            Some(o) if needs_node_ports(o) => o["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["nodePort"].as_i64())
                .collect(),
            _ => HashSet::new(),
        };
        for (i, port) in spec["ports"].as_array().into_iter().flatten().enumerate() {
            match port["nodePort"].as_i64() {
                Some(p) if had.contains(&p) => {}
                Some(p) => match i32::try_from(p) {
                    Ok(p) if p != 0 => wants.ports.push((i, Ask::Exact(p))),
                    _ => wants.ports.push((i, Ask::Any)),
                },
                None => wants.ports.push((i, Ask::Any)),
            }
        }
    }
    wants
}

/// Whether `service` (as stored now) is the owner `owner` names and still holds `ip`. Pure.
pub(crate) fn holds_ip(service: &Value, owner: &Value, ip: &str) -> bool {
    same_owner(service, owner)
        && (requested_ip(&service["spec"]) == ip
            || service["spec"]["clusterIPs"]
                .as_array()
                .is_some_and(|ips| ips.iter().any(|i| i == ip)))
}

/// Whether `service` (as stored now) is the owner `owner` names and still holds node port `port`. Pure.
pub(crate) fn holds_port(service: &Value, owner: &Value, port: i32) -> bool {
    same_owner(service, owner)
        && needs_node_ports(&service["spec"])
        && service["spec"]["ports"]
            .as_array()
            .is_some_and(|ports| ports.iter().any(|p| p["nodePort"] == port))
}

fn same_owner(service: &Value, owner: &Value) -> bool {
    meta::uid(service).is_some_and(|uid| owner["uid"] == uid)
}

/// Sets the addresses a Service was given, and the IP family fields kube-apiserver fills with them. Pure.
pub(crate) fn fill(service: &mut Value, ip: Option<&str>, ports: &[(usize, i32)]) {
    let spec = &mut service["spec"];
    if spec["type"].as_str() == Some("ExternalName") {
        return;
    }
    if let Some(ip) = ip {
        spec["clusterIP"] = json!(ip);
    }
    let ip = requested_ip(spec).to_string();
    if !ip.is_empty() {
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
        if ip != "None" || spec["selector"].is_object() {
            spec["ipFamilies"] = json!(["IPv4"]);
            spec["ipFamilyPolicy"] = json!("SingleStack");
        }
    }
    for (i, port) in ports {
        if let Some(p) = spec["ports"].get_mut(*i) {
            p["nodePort"] = json!(port);
        }
    }
}

/// Keys to write with a Service, each under the compare that keeps it race-free.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    pub compares: Vec<Compare>,
    pub puts: Vec<TxnOp>,
}

impl Claims {
    fn claim(&mut self, key: String, compare: Compare, owner: &Value) {
        self.compares.push(compare);
        self.puts.push(TxnOp::Put(PutRequest {
            key: key.into_bytes(),
            value: owner.to_string().into_bytes(),
            ..Default::default()
        }));
    }
}

/// How a key stands.
enum KeyState {
    Free(Compare),
    Held,
}

fn invalid(info: &ResourceInfo, name: &str, field: &str, value: String, why: String) -> ApiError {
    ApiError::invalid(
        info,
        name,
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            field: field.into(),
            message: format!("Invalid value: {value}: {why}"),
        }],
    )
}

impl Objects {
    /// Gives the admitted `service` what it [`wants`] (`old`: its stored state, for an update) and returns the keys
    /// to write with it. 422 for an explicit address that is outside its range or in use, 500 when a range is full.
    pub(crate) async fn allocate(
        &self,
        info: &ResourceInfo,
        service: &mut Value,
        old: Option<&Value>,
    ) -> Result<Claims, ApiError> {
        let wants = wants(service, old);
        let name = meta::name(service).unwrap_or_default().to_string();
        let owner = json!({
            "namespace": meta::namespace(service).unwrap_or_default(),
            "name": name,
            "uid": meta::uid(service).unwrap_or_default(),
        });
        let mut claims = Claims::default();
        let mut ip = None;
        match wants.ip {
            None => {}
            Some(Ask::Exact(wanted)) => {
                let cidr = self.service_cidr();
                let in_range = wanted
                    .parse::<Ipv4Addr>()
                    .ok()
                    .filter(|a| cidr.contains(*a));
                let field = "spec.clusterIPs";
                let value = format!("[]string{{\"{wanted}\"}}");
                let Some(addr) = in_range else {
                    return Err(invalid(info, &name, field, value, format!("failed to allocate IP {wanted}: the provided IP ({wanted}) is not in the valid range. The range of valid IPs is {cidr}")));
                };
                let key = format!("{IPS}{addr}");
                match self.key_state(&key, |s, o| holds_ip(s, o, &wanted)).await? {
                    KeyState::Free(compare) => claims.claim(key, compare, &owner),
                    KeyState::Held => {
                        return Err(invalid(
                            info,
                            &name,
                            field,
                            value,
                            format!(
                                "failed to allocate IP {wanted}: provided IP is already allocated"
                            ),
                        ))
                    }
                }
            }
            Some(Ask::Any) => {
                let (addr, compare) = self.free_ip().await?;
                claims.claim(format!("{IPS}{addr}"), compare, &owner);
                ip = Some(addr.to_string());
            }
        }
        let mut given = Vec::new();
        let mut chosen = HashSet::new();
        for (i, ask) in wants.ports {
            let port = match ask {
                Ask::Exact(port) => {
                    // One port number serves a port's TCP and UDP alike: asked twice in one Service, taken once.
                    if !chosen.insert(port) {
                        continue;
                    }
                    let key = format!("{PORTS}{port}");
                    match self.key_state(&key, |s, o| holds_port(s, o, port)).await? {
                        KeyState::Free(compare) => claims.claim(key, compare, &owner),
                        KeyState::Held => {
                            return Err(invalid(
                                info,
                                &name,
                                &format!("spec.ports[{i}].nodePort"),
                                port.to_string(),
                                "provided port is already allocated".into(),
                            ))
                        }
                    }
                    continue;
                }
                Ask::Any => {
                    let (port, compare) = self.free_port(&chosen).await?;
                    claims.claim(format!("{PORTS}{port}"), compare, &owner);
                    chosen.insert(port);
                    port
                }
            };
            given.push((i, port));
        }
        fill(service, ip.as_deref(), &given);
        Ok(claims)
    }

    /// Stores the admitted Service `object` at `key` with the addresses it asks for: 409 if it exists (before its
    /// own address would be found taken), 422 for an address refused. Losing an address to a concurrent create
    /// allocates again.
    pub(crate) async fn create_service(
        &self,
        info: &ResourceInfo,
        name: &str,
        key: String,
        object: Value,
    ) -> Result<Value, ApiError> {
        for _ in 0..MAX_RACES {
            if self.store().get(key.as_bytes()).await?.is_some() {
                return Err(ApiError::already_exists(info, name));
            }
            let mut object = object.clone();
            let claims = self.allocate(info, &mut object, None).await?;
            if let Some(stored) = self
                .put_claiming(Compare::absent(key.clone()), claims, key.clone(), object)
                .await?
            {
                return Ok(stored);
            }
        }
        Err(ApiError::conflict(info, name))
    }

    /// Deletes the keys of addresses whose owner no longer holds them (deleted, replaced, or changed type), as
    /// kube-apiserver's repair loops do; returns how many went. Allocation never needs this (it takes such keys
    /// over), it keeps the store from holding keys of Services long gone. Each delete compares the key's mod
    /// revision, so an address claimed again meanwhile stays.
    pub async fn release_unheld(&self) -> Result<usize, ApiError> {
        let mut released = 0;
        for prefix in [IPS, PORTS] {
            let keys = self.store().list(prefix.as_bytes()).await?;
            for kv in keys.kvs {
                let key = String::from_utf8_lossy(&kv.key).into_owned();
                let address = key.strip_prefix(prefix).unwrap_or_default().to_string();
                let state = if prefix == IPS {
                    self.key_state(&key, |s, o| holds_ip(s, o, &address))
                        .await?
                } else {
                    let port: i32 = address.parse().unwrap_or(0);
                    self.key_state(&key, |s, o| holds_port(s, o, port)).await?
                };
                let KeyState::Free(compare) = state else {
                    continue;
                };
                let response = self
                    .store()
                    .txn(TxnRequest {
                        compare: vec![compare],
                        success: vec![TxnOp::Delete(DeleteRequest {
                            key: kv.key.clone(),
                            ..Default::default()
                        })],
                        failure: vec![],
                    })
                    .await?;
                if response.succeeded {
                    tracing::info!(key, "released an address its Service no longer holds");
                    released += 1;
                }
            }
        }
        Ok(released)
    }

    /// Whether the address at `key` is free: absent, or its owner (read now) no longer `holds` it.
    async fn key_state(
        &self,
        key: &str,
        holds: impl Fn(&Value, &Value) -> bool,
    ) -> Result<KeyState, ApiError> {
        let Some(kv) = self.store().get(key.as_bytes()).await? else {
            return Ok(KeyState::Free(Compare::absent(key)));
        };
        let owner: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
        let services = super::resource::by_kind("v1", "Service")
            .ok_or_else(|| ApiError::internal("no Service kind"))?;
        let (Some(namespace), Some(name)) = (owner["namespace"].as_str(), owner["name"].as_str())
        else {
            return Ok(KeyState::Free(Compare::mod_revision(key, kv.mod_revision)));
        };
        match self.get(services, Some(namespace), name).await {
            Ok(service) if holds(&service, &owner) => Ok(KeyState::Held),
            Ok(_) => Ok(KeyState::Free(Compare::mod_revision(key, kv.mod_revision))),
            Err(e) if e.reason == super::Reason::NotFound => {
                Ok(KeyState::Free(Compare::mod_revision(key, kv.mod_revision)))
            }
            Err(e) => Err(e),
        }
    }

    /// A free cluster IP: one without a key, else (the range being full of keys) one whose owner let it go.
    async fn free_ip(&self) -> Result<(Ipv4Addr, Compare), ApiError> {
        let cidr = self.service_cidr();
        let keys = self.store().list(IPS.as_bytes()).await?;
        let taken: HashSet<Ipv4Addr> = keys
            .kvs
            .iter()
            .filter_map(|kv| std::str::from_utf8(kv.key.strip_prefix(IPS.as_bytes())?).ok())
            .filter_map(|ip| ip.parse().ok())
            .collect();
        if let Some(ip) = cidr.pick(&taken, rand::random()) {
            return Ok((ip, Compare::absent(format!("{IPS}{ip}"))));
        }
        for ip in taken.iter().filter(|ip| cidr.contains(**ip)) {
            let text = ip.to_string();
            let key = format!("{IPS}{ip}");
            if let KeyState::Free(compare) =
                self.key_state(&key, |s, o| holds_ip(s, o, &text)).await?
            {
                return Ok((*ip, compare));
            }
        }
        Err(ApiError::internal(format!(
            "failed to allocate a serviceIP: range is full ({cidr})"
        )))
    }

    /// A free node port not in `chosen`: one without a key, else one whose owner let it go.
    async fn free_port(&self, chosen: &HashSet<i32>) -> Result<(i32, Compare), ApiError> {
        let keys = self.store().list(PORTS.as_bytes()).await?;
        let mut taken: HashSet<i32> = keys
            .kvs
            .iter()
            .filter_map(|kv| std::str::from_utf8(kv.key.strip_prefix(PORTS.as_bytes())?).ok())
            .filter_map(|p| p.parse().ok())
            .collect();
        let stale: Vec<i32> = taken.iter().copied().collect();
        taken.extend(chosen);
        if let Some(port) = range::pick_port(&NODE_PORTS, &taken, rand::random()) {
            return Ok((port, Compare::absent(format!("{PORTS}{port}"))));
        }
        for port in stale.into_iter().filter(|p| !chosen.contains(p)) {
            let key = format!("{PORTS}{port}");
            if let KeyState::Free(compare) =
                self.key_state(&key, |s, o| holds_port(s, o, port)).await?
            {
                return Ok((port, compare));
            }
        }
        Err(ApiError::internal(
            "failed to allocate a nodePort: range is full",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default", "uid": "u1"}, "spec": spec})
    }

    #[test]
    fn a_new_service_wants_an_address_and_node_ports_by_its_type() {
        let w = wants(
            &svc(json!({"type": "ClusterIP", "ports": [{"port": 80}]})),
            None,
        );
        assert_eq!(
            w,
            Wants {
                ip: Some(Ask::Any),
                ports: vec![]
            }
        );
        let w = wants(
            &svc(json!({"type": "NodePort", "clusterIP": "10.96.0.9",
                        "ports": [{"port": 80, "nodePort": 30080}, {"port": 81}]})),
            None,
        );
        assert_eq!(
            w,
            Wants {
                ip: Some(Ask::Exact("10.96.0.9".into())),
                ports: vec![(0, Ask::Exact(30080)), (1, Ask::Any)]
            }
        );
        let headless = wants(&svc(json!({"clusterIP": "None", "ports": []})), None);
        assert_eq!(headless, Wants::default());
        let external = wants(
            &svc(json!({"type": "ExternalName", "externalName": "x.example"})),
            None,
        );
        assert_eq!(external, Wants::default());
        let lb = svc(
            json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]}),
        );
        assert_eq!(wants(&lb, None).ports, vec![]);
    }

    #[test]
    fn an_update_wants_only_what_it_did_not_have() {
        let old = svc(
            json!({"type": "NodePort", "clusterIP": "10.96.0.9", "ports": [{"port": 80, "nodePort": 30080}]}),
        );
        let same = wants(&old, Some(&old));
        assert_eq!(same, Wants::default());
        let grown = svc(json!({"type": "NodePort", "clusterIP": "10.96.0.9",
                               "ports": [{"port": 80, "nodePort": 30080}, {"port": 81}]}));
        assert_eq!(wants(&grown, Some(&old)).ports, vec![(1, Ask::Any)]);
        // From ClusterIP to NodePort: node ports it never had.
        let was_cluster_ip = svc(
            json!({"type": "ClusterIP", "clusterIP": "10.96.0.9", "ports": [{"port": 80, "nodePort": 30080}]}),
        );
        assert_eq!(
            wants(&old, Some(&was_cluster_ip)).ports,
            vec![(0, Ask::Exact(30080))]
        );
    }

    #[test]
    fn an_owner_holds_only_what_its_current_spec_names() {
        let owner = json!({"namespace": "default", "name": "web", "uid": "u1"});
        let live = svc(
            json!({"type": "NodePort", "clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"],
                              "ports": [{"port": 80, "nodePort": 30080}]}),
        );
        assert!(holds_ip(&live, &owner, "10.96.0.9"));
        assert!(!holds_ip(&live, &owner, "10.96.0.8"));
        assert!(holds_port(&live, &owner, 30080));
        let mut replaced = live.clone();
        replaced["metadata"]["uid"] = json!("u2");
        assert!(
            !holds_ip(&replaced, &owner, "10.96.0.9"),
            "same name, another Service"
        );
        let mut now_cluster_ip = live.clone();
        now_cluster_ip["spec"]["type"] = json!("ClusterIP");
        assert!(
            !holds_port(&now_cluster_ip, &owner, 30080),
            "a type change lets node ports go"
        );
    }

    #[test]
    fn fill_sets_the_address_its_families_and_the_ports() {
        let mut s = svc(
            json!({"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}, {"port": 81, "nodePort": 30001}]}),
        );
        fill(&mut s, Some("10.96.3.4"), &[(0, 31000)]);
        assert_eq!(
            s["spec"],
            json!({"type": "NodePort", "selector": {"app": "web"}, "clusterIP": "10.96.3.4",
                   "clusterIPs": ["10.96.3.4"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                   "ports": [{"port": 80, "nodePort": 31000}, {"port": 81, "nodePort": 30001}]})
        );
        let mut headless = svc(json!({"clusterIP": "None", "selector": {"app": "web"}}));
        fill(&mut headless, None, &[]);
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(headless["spec"]["ipFamilies"], json!(["IPv4"]));
    }
}
