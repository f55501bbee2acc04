//! `metrics.k8s.io/v1beta1`, as metrics-server serves it: PodMetrics (namespaced list and get, and a list across
//! namespaces) and NodeMetrics (list and get), built from the usage each node agent reports when asked over the bus
//! ([`navarch_bus::metrics`]). `kubectl top pod` and `kubectl top node` read these.
//!
//! Nothing is stored: each request lists the pods (or nodes) from the store, asks every node concerned at once,
//! and answers with what came back. A node whose agent does not answer (down, simulated) contributes nothing, as
//! metrics-server leaves out a kubelet it cannot scrape.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use k8s_openapi::api::core::v1::{Node, Pod};
use navarch_bus::api::{meta, resource, ApiError, Reason};
use navarch_bus::metrics::{self, MetricsReply, MetricsRequest, NodeUsage, PodUsage};
use serde_json::{json, Value};

use crate::request::Query;
use crate::selector::LabelSelector;
use crate::server::Gateway;
use crate::status::{self, Answer};

/// The group version served.
pub const GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";

/// A CPU rate as a quantity: nanocores (`123456n`), as metrics-server prints them.
fn cpu(nanocores: u64) -> String {
    format!("{nanocores}n")
}

/// Memory in kibibytes (`1024Ki`), as metrics-server prints it.
fn memory(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

fn time_of(ms: i64) -> String {
    k8s_openapi::chrono::DateTime::from_timestamp_millis(ms)
        .map(meta::format_time)
        .unwrap_or_default()
}

fn window(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// One PodMetrics object; `labels` are the pod's.
pub fn pod_metrics(usage: &PodUsage, labels: &Value) -> Value {
    let containers: Vec<Value> = usage
        .containers
        .iter()
        .map(|c| json!({"name": c.name, "usage": {"cpu": cpu(c.cpu_nanocores), "memory": memory(c.memory_bytes)}}))
        .collect();
    let mut metadata = json!({
        "name": usage.name,
        "namespace": usage.namespace,
        "creationTimestamp": time_of(usage.timestamp_ms),
    });
    if labels.is_object() {
        metadata["labels"] = labels.clone();
    }
    json!({
        "kind": "PodMetrics",
        "apiVersion": GROUP_VERSION,
        "metadata": metadata,
        "timestamp": time_of(usage.timestamp_ms),
        "window": window(usage.window_ms),
        "containers": containers,
    })
}

/// One NodeMetrics object; `labels` are the node's.
pub fn node_metrics(name: &str, usage: &NodeUsage, labels: &Value) -> Value {
    let mut metadata = json!({"name": name, "creationTimestamp": time_of(usage.timestamp_ms)});
    if labels.is_object() {
        metadata["labels"] = labels.clone();
    }
    json!({
        "kind": "NodeMetrics",
        "apiVersion": GROUP_VERSION,
        "metadata": metadata,
        "timestamp": time_of(usage.timestamp_ms),
        "window": window(usage.window_ms),
        "usage": {"cpu": cpu(usage.cpu_nanocores), "memory": memory(usage.memory_bytes)},
    })
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": GROUP_VERSION, "metadata": {}, "items": items})
}

/// Asks each node for the pods of it in `pods` (or, with none, only for the node itself), all at once.
async fn ask(
    gw: &Gateway,
    nodes: BTreeMap<String, Option<Vec<String>>>,
) -> HashMap<String, MetricsReply> {
    let bus = gw.objects.store().bus().clone();
    let asks = nodes.into_iter().map(|(node, pod_uids)| {
        let bus = bus.clone();
        async move {
            let reply = metrics::fetch(&bus, &node, &MetricsRequest { pod_uids }).await;
            (node, reply)
        }
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .filter_map(|(node, reply)| match reply {
            Ok(reply) => Some((node, reply)),
            Err(e) => {
                tracing::debug!(%node, error = %e, "no metrics from node");
                None
            }
        })
        .collect()
}

fn selector(query: &Option<String>) -> Result<LabelSelector, ApiError> {
    let query = Query::parse(query.as_deref())?;
    LabelSelector::parse(&query.label_selector)
}

/// The PodMetrics of the pods in `namespace` (all namespaces when None) that `labels` selects, only `name` if given.
async fn pods_metrics(
    gw: &Gateway,
    namespace: Option<&str>,
    name: Option<&str>,
    labels: &LabelSelector,
) -> Result<Vec<Value>, ApiError> {
    let (pods, _) = gw.objects.list(resource::of::<Pod>(), namespace).await?;
    let pods: Vec<&Value> = pods
        .iter()
        .filter(|p| name.is_none_or(|n| p["metadata"]["name"] == n) && labels.matches(p))
        .collect();
    let mut nodes: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
    let mut by_uid: HashMap<String, &Value> = HashMap::new();
    for pod in &pods {
        let (Some(node), Some(uid)) = (
            pod["spec"]["nodeName"].as_str(),
            pod["metadata"]["uid"].as_str(),
        ) else {
            continue;
        };
        nodes
            .entry(node.to_string())
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(uid.to_string());
        by_uid.insert(uid.to_string(), pod);
    }
    let replies = ask(gw, nodes).await;
    let mut items: Vec<(String, String, Value)> = replies
        .values()
        .flat_map(|r| r.pods.iter())
        .filter_map(|usage| {
            let pod = by_uid.get(&usage.uid)?;
            let item = pod_metrics(usage, &pod["metadata"]["labels"]);
            Some((usage.namespace.clone(), usage.name.clone(), item))
        })
        .collect();
    items.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    Ok(items.into_iter().map(|(_, _, v)| v).collect())
}

/// `GET /apis/metrics.k8s.io/v1beta1/pods`.
pub async fn all_pods(State(gw): State<Gateway>, RawQuery(query): RawQuery) -> Answer {
    let labels = selector(&query)?;
    let items = pods_metrics(&gw, None, None, &labels).await?;
    Ok(status::json(StatusCode::OK, &list("PodMetricsList", items)))
}

/// `GET /apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods`.
pub async fn namespace_pods(
    State(gw): State<Gateway>,
    Path(namespace): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let labels = selector(&query)?;
    let items = pods_metrics(&gw, Some(&namespace), None, &labels).await?;
    Ok(status::json(StatusCode::OK, &list("PodMetricsList", items)))
}

/// `GET /apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}`.
pub async fn one_pod(
    State(gw): State<Gateway>,
    Path((namespace, name)): Path<(String, String)>,
) -> Answer {
    let items = pods_metrics(
        &gw,
        Some(&namespace),
        Some(&name),
        &LabelSelector::default(),
    )
    .await?;
    match items.into_iter().next() {
        Some(item) => Ok(status::json(StatusCode::OK, &item)),
        None => Err(not_found("podmetrics", &format!("{namespace}/{name}")).into()),
    }
}

fn not_found(kind: &str, name: &str) -> ApiError {
    ApiError::new(
        Reason::NotFound,
        format!("{kind}.metrics.k8s.io \"{name}\" not found"),
    )
}

async fn nodes_metrics(
    gw: &Gateway,
    name: Option<&str>,
    labels: &LabelSelector,
) -> Result<Vec<Value>, ApiError> {
    let (nodes, _) = gw.objects.list(resource::of::<Node>(), None).await?;
    let nodes: Vec<&Value> = nodes
        .iter()
        .filter(|n| name.is_none_or(|want| n["metadata"]["name"] == want) && labels.matches(n))
        .collect();
    let asked = nodes
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str())
        .map(|n| (n.to_string(), Some(Vec::new())))
        .collect();
    let replies = ask(gw, asked).await;
    Ok(nodes
        .iter()
        .filter_map(|n| {
            let name = n["metadata"]["name"].as_str()?;
            let usage = replies.get(name)?.node.as_ref()?;
            Some(node_metrics(name, usage, &n["metadata"]["labels"]))
        })
        .collect())
}

/// `GET /apis/metrics.k8s.io/v1beta1/nodes`.
pub async fn all_nodes(State(gw): State<Gateway>, RawQuery(query): RawQuery) -> Answer {
    let labels = selector(&query)?;
    let items = nodes_metrics(&gw, None, &labels).await?;
    Ok(status::json(
        StatusCode::OK,
        &list("NodeMetricsList", items),
    ))
}

/// `GET /apis/metrics.k8s.io/v1beta1/nodes/{name}`.
pub async fn one_node(State(gw): State<Gateway>, Path(name): Path<String>) -> Answer {
    let items = nodes_metrics(&gw, Some(&name), &LabelSelector::default()).await?;
    match items.into_iter().next() {
        Some(item) => Ok(status::json(StatusCode::OK, &item)),
        None => Err(not_found("nodemetrics", &name).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::metrics::ContainerUsage;

    #[test]
    fn objects_read_like_metrics_servers() {
        let usage = PodUsage {
            namespace: "demo".into(),
            name: "web-1".into(),
            uid: "u1".into(),
            containers: vec![ContainerUsage {
                name: "main".into(),
                cpu_nanocores: 250_000_000,
                memory_bytes: 4 * 1024 * 1024,
            }],
            timestamp_ms: 1_800_000_000_000,
            window_ms: 5_000,
        };
        let v = pod_metrics(&usage, &json!({"app": "web"}));
        assert_eq!(
            v,
            json!({
                "kind": "PodMetrics",
                "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {"name": "web-1", "namespace": "demo", "creationTimestamp": "2027-01-15T08:00:00Z",
                             "labels": {"app": "web"}},
                "timestamp": "2027-01-15T08:00:00Z",
                "window": "5s",
                "containers": [{"name": "main", "usage": {"cpu": "250000000n", "memory": "4096Ki"}}],
            })
        );
        let node = NodeUsage {
            cpu_nanocores: 1_000_000_000,
            memory_bytes: 2048,
            timestamp_ms: 1_800_000_000_000,
            window_ms: 5_500,
        };
        let v = node_metrics("n1", &node, &Value::Null);
        assert_eq!(v["usage"], json!({"cpu": "1000000000n", "memory": "2Ki"}));
        assert_eq!(v["window"], "5500ms");
        assert!(v["metadata"].get("labels").is_none());
    }
}
