//! The endpoints controller: for each Service with a selector, an Endpoints object of the same name listing the
//! pods it selects, ready ones under `addresses` and the others under `notReadyAddresses`, with each Service port
//! resolved against the pod (a named `targetPort` is looked up among its containers' ports). [`reconcile`] decides;
//! [`EndpointsController`] watches Services, pods and Endpoints and carries it out.
//!
//! As kube-controller-manager's: Services without a selector (and ExternalName ones) keep whatever Endpoints they
//! are given; the Endpoints of a deleted Service are deleted (Kubernetes sets no owner reference on them); pods
//! being deleted, finished, or without an IP are left out unless the Service publishes not-ready addresses.

mod actor;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub use actor::EndpointsController;

/// The label kube-controller-manager puts on the Endpoints of a headless Service.
pub const HEADLESS: &str = "service.kubernetes.io/headless";

/// What to do for one Service name.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing: the Endpoints are as they should be, or are not this controller's to manage.
    Nothing,
    /// Create these Endpoints.
    Create(Box<Endpoints>),
    /// Set the Endpoints' subsets and labels to these.
    Update {
        /// The subsets.
        subsets: Vec<EndpointSubset>,
        /// The labels (the Service's, plus [`HEADLESS`] for a headless one).
        labels: BTreeMap<String, String>,
    },
    /// Delete the Endpoints (their Service is gone), if they still have this uid.
    Delete {
        /// Their uid.
        uid: String,
    },
}

/// What the Endpoints named like `service` (None: no Service of that name) should become, given the `current`
/// Endpoints of that name and the `pods` of its namespace.
pub fn reconcile(service: Option<&Service>, current: Option<&Endpoints>, pods: &[&Pod]) -> Action {
    let Some(service) = service else {
        return match current {
            Some(ep) => Action::Delete {
                uid: ep.metadata.uid.clone().unwrap_or_default(),
            },
            None => Action::Nothing,
        };
    };
    let Some(spec) = &service.spec else {
        return Action::Nothing;
    };
    if spec.selector.as_ref().is_none_or(BTreeMap::is_empty)
        || spec.type_.as_deref() == Some("ExternalName")
    {
        return Action::Nothing;
    }
    let selected: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| selects(service, p))
        .collect();
    let subsets = subsets(service, &selected);
    let labels = labels(service);
    match current {
        None => Action::Create(Box::new(Endpoints {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: service.metadata.name.clone(),
                namespace: service.metadata.namespace.clone(),
                labels: (!labels.is_empty()).then_some(labels),
                ..Default::default()
            },
            subsets: (!subsets.is_empty()).then_some(subsets),
        })),
        Some(ep) => {
            let same_subsets = ep.subsets.as_deref().unwrap_or_default() == subsets.as_slice();
            let same_labels = ep.metadata.labels.clone().unwrap_or_default() == labels;
            if same_subsets && same_labels {
                Action::Nothing
            } else {
                Action::Update { subsets, labels }
            }
        }
    }
}

/// The Service's labels, plus [`HEADLESS`] when it has no cluster IP.
fn labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    let headless = service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None");
    if headless {
        labels.insert(HEADLESS.into(), String::new());
    } else {
        labels.remove(HEADLESS);
    }
    labels
}

/// Whether the pod is in the Endpoints at all (kube's `ShouldPodBeInEndpoints`): it has an IP, has not finished,
/// and is not being deleted (unless `include_terminating`).
fn listed(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    let has_ip = status
        .and_then(|s| s.pod_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty());
    let finished = matches!(
        status.and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    has_ip && !finished && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod's port for `target` (a number, or the name of one of its containers' ports with `protocol`).
fn resolve(pod: &Pod, target: &IntOrString, protocol: &str) -> Option<i32> {
    match target {
        IntOrString::Int(port) => Some(*port),
        IntOrString::String(name) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| {
                p.name.as_deref() == Some(name.as_str())
                    && p.protocol.as_deref().unwrap_or("TCP") == protocol
            })
            .map(|p| p.container_port),
    }
}

fn address(pod: &Pod) -> EndpointAddress {
    let status = pod.status.as_ref();
    EndpointAddress {
        ip: status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        hostname: None,
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
    }
}

/// The subsets for `pods` (already selected), packed as kube's `RepackSubsets` does: the addresses that resolve
/// to the same ports share one subset; addresses sorted by the IP's text (as kube's `LessEndpointAddress`).
fn subsets(service: &Service, pods: &[&Pod]) -> Vec<EndpointSubset> {
    let Some(spec) = &service.spec else {
        return vec![];
    };
    let publish = spec.publish_not_ready_addresses == Some(true);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let service_ports = spec.ports.as_deref().unwrap_or_default();
    // Per set of resolved ports: (ready, not ready) addresses.
    type Packed =
        BTreeMap<Vec<(String, i32, String)>, (Vec<EndpointAddress>, Vec<EndpointAddress>)>;
    let mut packed: Packed = BTreeMap::new();
    for pod in pods.iter().filter(|p| listed(p, publish)) {
        let ports: Vec<(String, i32, String)> = service_ports
            .iter()
            .filter_map(|sp| {
                let protocol = sp.protocol.clone().unwrap_or_else(|| "TCP".into());
                let target = sp.target_port.clone().unwrap_or(IntOrString::Int(sp.port));
                let port = resolve(pod, &target, &protocol)?;
                Some((sp.name.clone().unwrap_or_default(), port, protocol))
            })
            .collect();
        // A pod none of whose ports resolve serves nothing, except behind a headless Service without ports.
        if ports.is_empty() && !(headless && service_ports.is_empty()) {
            continue;
        }
        let entry = packed.entry(ports).or_default();
        if publish || is_ready(pod) {
            entry.0.push(address(pod));
        } else {
            entry.1.push(address(pod));
        }
    }
    let by_ip = |a: &EndpointAddress, b: &EndpointAddress| {
        a.ip.cmp(&b.ip).then_with(|| {
            let uid = |x: &EndpointAddress| x.target_ref.as_ref().and_then(|r| r.uid.clone());
            uid(a).cmp(&uid(b))
        })
    };
    packed
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then(|| {
                    ports
                        .into_iter()
                        .map(|(name, port, protocol)| EndpointPort {
                            name: (!name.is_empty()).then_some(name),
                            port,
                            protocol: Some(protocol),
                            app_protocol: None,
                        })
                        .collect()
                }),
            }
        })
        .collect()
}

/// Whether `service`'s selector selects `pod` (same namespace, every selector label equal).
pub fn selects(service: &Service, pod: &Pod) -> bool {
    let Some(selector) = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
    else {
        return false;
    };
    service.metadata.namespace == pod.metadata.namespace
        && selector
            .iter()
            .all(|(k, v)| pod.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
}

/// Whether `endpoints` list `pod` (by its name), ready or not.
pub fn lists(endpoints: &Endpoints, pod: &Pod) -> bool {
    endpoints.subsets.iter().flatten().any(|s| {
        s.addresses
            .iter()
            .flatten()
            .chain(s.not_ready_addresses.iter().flatten())
            .any(|a| {
                a.target_ref.as_ref().and_then(|r| r.name.as_ref()) == pod.metadata.name.as_ref()
            })
    })
}

#[cfg(test)]
mod tests;
