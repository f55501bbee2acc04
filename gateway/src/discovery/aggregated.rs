//! Aggregated discovery (`apidiscovery.k8s.io/v2`): `/api` and `/apis` answer every group's resources in one
//! document when the client asks for it in `Accept`, so kubectl discovers the whole API in two requests instead of
//! one per group version.

use axum::http::HeaderMap;
use navarch_bus::api::{resource, ResourceInfo};
use serde_json::{json, Value};

use super::{all_groups, core_version_names, reviews_in, subresources, RESOURCE_VERBS};

/// The media type client-go asks for and recognises the answer by (it must be exactly this).
pub const CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether `headers` accept the aggregated v2 document (client-go lists it first, before plain JSON).
pub fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            params.first() == Some(&"application/json")
                && params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"v=v2")
                && params.contains(&"as=APIGroupDiscoveryList")
        })
}

fn kind_ref(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn resource_json(info: &ResourceInfo) -> Value {
    let subs: Vec<Value> = subresources(info)
        .into_iter()
        .map(|sub| {
            let (kind, verbs) = match sub {
                "scale" => (
                    kind_ref("autoscaling", "v1", "Scale"),
                    json!(["get", "patch", "update"]),
                ),
                "log" => (kind_ref("", "v1", "Pod"), json!(["get"])),
                "token" => (
                    kind_ref("authentication.k8s.io", "v1", "TokenRequest"),
                    json!(["create"]),
                ),
                _ => (
                    kind_ref(info.group, info.version, info.kind),
                    json!(["get", "patch", "update"]),
                ),
            };
            json!({"subresource": sub, "responseKind": kind, "verbs": verbs})
        })
        .collect();
    let mut entry = json!({
        "resource": info.plural,
        "responseKind": kind_ref(info.group, info.version, info.kind),
        "scope": if info.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": info.singular,
        "verbs": RESOURCE_VERBS,
    });
    if !info.short_names.is_empty() {
        entry["shortNames"] = json!(info.short_names);
    }
    if !info.categories.is_empty() {
        entry["categories"] = json!(info.categories);
    }
    if !subs.is_empty() {
        entry["subresources"] = Value::Array(subs);
    }
    entry
}

fn group_json(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|version| {
            let mut resources: Vec<Value> = reviews_in(group, version)
                .map(|r| {
                    json!({
                        "resource": r.plural,
                        "responseKind": kind_ref(r.group, r.version, r.kind),
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.kind.to_lowercase(),
                        "verbs": r.verbs,
                    })
                })
                .collect();
            resources.extend(
                resource::in_group_version(group, version)
                    .into_iter()
                    .map(resource_json),
            );
            json!({"version": version, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let metadata = if group.is_empty() {
        json!({})
    } else {
        json!({"name": group})
    };
    json!({"metadata": metadata, "versions": versions})
}

fn list(items: Vec<Value>) -> Value {
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// `/api` aggregated: the core group (unnamed) and its versions.
pub fn core() -> Value {
    list(vec![group_json("", &core_version_names())])
}

/// `/apis` aggregated: every named group.
pub fn groups() -> Value {
    list(
        all_groups()
            .iter()
            .map(|(group, versions)| group_json(group, versions))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::RESOURCES;

    #[test]
    fn kubectls_accept_header_selects_v2() {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::ACCEPT,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
                .parse()
                .unwrap(),
        );
        assert!(wanted(&headers));
        headers.insert(
            axum::http::header::ACCEPT,
            "application/json".parse().unwrap(),
        );
        assert!(!wanted(&headers));
        headers.insert(
            axum::http::header::ACCEPT,
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
                .parse()
                .unwrap(),
        );
        assert!(!wanted(&headers), "only v2 is served");
    }

    #[test]
    fn documents_carry_every_served_resource_with_its_response_kind() {
        let apis = groups();
        let apps = apis["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .unwrap();
        let deployments = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(deployments["responseKind"]["kind"], "Deployment");
        assert_eq!(deployments["scope"], "Namespaced");
        assert_eq!(deployments["shortNames"], json!(["deploy"]));
        let scale = deployments["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == "scale")
            .unwrap();
        assert_eq!(scale["responseKind"]["group"], "autoscaling");
        let core = core();
        let v1 = &core["items"][0]["versions"][0];
        assert_eq!(v1["version"], "v1");
        let count = v1["resources"].as_array().unwrap().len();
        assert_eq!(
            count,
            RESOURCES.iter().filter(|r| r.group.is_empty()).count()
        );
    }
}
