//! A minimal OpenAPI v3: enough for kubectl to trust the server with validation (`fieldValidation` advertised on
//! every write), no schemas yet (so `kubectl explain` does not work).
//!
//! Strategic merge patch is deliberately absent from the request bodies: kubectl would then build its patches from
//! the schemas served here, and there are none; without it kubectl uses its compiled-in types, which is right for
//! the built-in kinds.

use navarch_bus::api::{resource, ResourceInfo, RESOURCES};
use serde_json::{json, Map, Value};

/// The path segment of a group version in OpenAPI v3 URLs: `api/v1`, `apis/apps/v1`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// FNV-1a of the document: kubectl caches each group version's document by this hash.
fn hash(doc: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in doc.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// `/openapi/v3`: where each group version's document is.
pub fn root() -> Value {
    let mut paths = Map::new();
    for (group, version) in group_versions() {
        let path = gv_path(group, version);
        let doc = group_version(&path).unwrap_or_default();
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(&doc))}),
        );
    }
    json!({ "paths": paths })
}

fn operation(info: &ResourceInfo, params: &[&str]) -> Value {
    let mut parameters: Vec<Value> = params
        .iter()
        .map(|p| json!({"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
        .collect();
    parameters.push(json!({"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}}));
    json!({
        "x-kubernetes-group-version-kind": {"group": info.group, "version": info.version, "kind": info.kind},
        "parameters": parameters,
        "responses": {"200": {"description": "OK"}},
    })
}

/// `/openapi/v3/<gv>` (`api/v1`, `apis/apps/v1`), or None for a group version not served.
pub fn group_version(gv: &str) -> Option<Value> {
    let (group, version) = match gv
        .trim_matches('/')
        .split('/')
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    let kinds: Vec<&ResourceInfo> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    for info in kinds {
        let base = format!("/{}", gv_path(group, version));
        let collection = if info.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", info.plural)
        } else {
            format!("{base}/{}", info.plural)
        };
        paths.insert(
            collection.clone(),
            json!({"post": operation(info, &["dryRun", "fieldManager"])}),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "put": operation(info, &["dryRun", "fieldManager"]),
                "patch": operation(info, &["dryRun", "fieldManager", "force"]),
            }),
        );
    }
    let title = resource::groups()
        .iter()
        .find(|(g, _)| *g == group)
        .map_or("Kubernetes", |(g, _)| g);
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": format!("navarch {title}"), "version": version},
        "paths": paths,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_points_at_each_group_version_with_a_hash() {
        let r = root();
        let url = r["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{url}");
        assert!(r["paths"]["api/v1"]["serverRelativeURL"].is_string());
    }

    #[test]
    fn patch_operations_advertise_field_validation_and_no_strategic_merge() {
        let doc = group_version("apis/apps/v1").unwrap();
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        let params = patch["parameters"].as_array().unwrap();
        assert!(params
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
        assert!(!doc.to_string().contains("strategic-merge-patch"));
        let core = group_version("api/v1").unwrap();
        assert!(core["paths"]["/api/v1/nodes/{name}"]["patch"].is_object());
        assert!(core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"].is_object());
        assert!(group_version("apis/batch/v1").is_none());
        assert!(group_version("nonsense").is_none());
    }
}
