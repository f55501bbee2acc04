//! The `kubernetes` Service in `default` and its Endpoints, as kube-apiserver keeps them: how pods find the API.
//! The Service takes the first address of the service CIDR and serves port 443 (`https`) on the gateway's port; the
//! Endpoints list each gateway that started, by its address.
//!
//! Simpler than kube-apiserver's lease-based endpoint reconciler: a gateway adds its own address when it starts and
//! never removes another's, so a gateway that is gone for good stays listed until the Endpoints are edited.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use navarch_bus::api::admission::{FieldValidation, Part};
use navarch_bus::api::{resource, ApiError, Objects, Reason};
use serde_json::{json, Value};
use tokio::sync::watch;

/// Name of the Service (and its Endpoints), in `default`.
pub const NAME: &str = "kubernetes";

/// The `kubernetes` Service: ClusterIP `ip`, port 443 to the gateway's `port`, no selector (its Endpoints are kept
/// here, not by the endpoints controller). Pure.
pub fn service(ip: Ipv4Addr, port: u16) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": ip.to_string(),
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
                 "sessionAffinity": "None"}
    })
}

/// The Endpoints `existing` (None: none yet) with `address` among them, or None when it already is. Pure.
pub fn endpoints(existing: Option<&Value>, address: SocketAddr) -> Option<Value> {
    let ip = address.ip().to_string();
    let mut next = existing.cloned().unwrap_or_else(|| {
        json!({"apiVersion": "v1", "kind": "Endpoints",
               "metadata": {"name": NAME, "namespace": "default",
                            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
               "subsets": []})
    });
    let port = json!([{"name": "https", "port": address.port(), "protocol": "TCP"}]);
    let subsets = next["subsets"].as_array().cloned().unwrap_or_default();
    let listed = subsets.iter().any(|s| {
        s["ports"] == port
            && s["addresses"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["ip"] == ip.as_str()))
    });
    if listed {
        return None;
    }
    // A subset per port: gateways on one port share it, as kube-apiserver's (which all serve one port) do.
    let mut subsets: Vec<Value> = subsets;
    match subsets.iter_mut().find(|s| s["ports"] == port) {
        Some(subset) => {
            let mut addresses = subset["addresses"].as_array().cloned().unwrap_or_default();
            addresses.push(json!({"ip": ip}));
            subset["addresses"] = Value::Array(addresses);
        }
        None => subsets.push(json!({"addresses": [{"ip": ip}], "ports": port})),
    }
    next["subsets"] = Value::Array(subsets);
    Some(next)
}

/// The address pods reach this gateway at: its listen address, or loopback when it listens on every interface
/// (there is no `--advertise-address` yet).
pub fn advertised(listen: SocketAddr) -> SocketAddr {
    if listen.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
    } else {
        listen
    }
}

/// Creates the Service (or points its target port at this gateway) and adds this gateway to the Endpoints,
/// retrying every `retry` until done or `shutdown`. Returns false when stopped first.
pub async fn ensure(
    objects: &Objects,
    listen: SocketAddr,
    retry: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let address = advertised(listen);
    loop {
        match ensure_once(objects, address).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::debug!(error = %e, "cannot create the kubernetes Service yet; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(retry) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return false,
                }
            }
        }
    }
}

async fn ensure_once(objects: &Objects, address: SocketAddr) -> Result<(), ApiError> {
    let services =
        resource::by_kind("v1", "Service").ok_or_else(|| ApiError::internal("no Service kind"))?;
    let endpoints_info = resource::by_kind("v1", "Endpoints")
        .ok_or_else(|| ApiError::internal("no Endpoints kind"))?;
    let wanted = service(objects.service_cidr().first(), address.port());
    match objects
        .create(
            services,
            Some("default"),
            wanted.clone(),
            FieldValidation::Strict,
        )
        .await
    {
        Ok(_) => tracing::info!("created the kubernetes Service"),
        Err(e) if e.reason == Reason::AlreadyExists => {
            let port = address.port();
            objects
                .update_with(services, Some("default"), NAME, Part::Main, |mut s| {
                    if let Some(first) = s["spec"]["ports"].get_mut(0) {
                        first["targetPort"] = json!(port);
                    }
                    Ok(s)
                })
                .await?;
        }
        Err(e) => return Err(e),
    }
    match objects.get(endpoints_info, Some("default"), NAME).await {
        Err(e) if e.reason == Reason::NotFound => {
            if let Some(new) = endpoints(None, address) {
                // Another gateway creating them first makes this fail, and the next attempt adds this one.
                objects
                    .create(
                        endpoints_info,
                        Some("default"),
                        new,
                        FieldValidation::Strict,
                    )
                    .await?;
            }
        }
        Err(e) => return Err(e),
        Ok(_) => {
            objects
                .update_with(
                    endpoints_info,
                    Some("default"),
                    NAME,
                    Part::Main,
                    |current| Ok(endpoints(Some(&current), address).unwrap_or(current)),
                )
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_takes_the_first_address_and_serves_443() {
        let s = service(Ipv4Addr::new(10, 96, 0, 1), 6443);
        assert_eq!(s["spec"]["clusterIP"], "10.96.0.1");
        assert_eq!(
            s["spec"]["ports"],
            json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])
        );
        assert!(s["spec"].get("selector").is_none());
    }

    #[test]
    fn each_gateway_adds_itself_once() {
        let a: SocketAddr = "192.0.2.1:6443".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:6443".parse().unwrap();
        let first = endpoints(None, a).unwrap();
        assert_eq!(
            first["subsets"],
            json!([{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}])
        );
        assert_eq!(endpoints(Some(&first), a), None);
        let both = endpoints(Some(&first), b).unwrap();
        assert_eq!(
            both["subsets"][0]["addresses"],
            json!([{"ip": "192.0.2.1"}, {"ip": "192.0.2.2"}])
        );
        let other_port: SocketAddr = "192.0.2.1:7443".parse().unwrap();
        let two = endpoints(Some(&both), other_port).unwrap();
        assert_eq!(two["subsets"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_gateway_on_every_interface_advertises_loopback() {
        let any: SocketAddr = "0.0.0.0:6443".parse().unwrap();
        assert_eq!(advertised(any), "127.0.0.1:6443".parse().unwrap());
        let given: SocketAddr = "192.0.2.1:6443".parse().unwrap();
        assert_eq!(advertised(given), given);
    }
}
