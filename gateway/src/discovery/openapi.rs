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
    let kinds = resource::in_group_version(group, version);
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

/// Content type of the protobuf OpenAPI v2 answer. kubectl asks for
/// `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, but Go's MIME parser rejects that `@` in a
/// response, so kube-apiserver (kube-openapi) answers `application/octet-stream`, as here.
pub const V2_PROTOBUF: &str = "application/octet-stream";

/// `/openapi/v2` as JSON: a Swagger 2.0 document with no definitions yet.
pub fn v2_json() -> Value {
    json!({"swagger": "2.0", "info": {"title": "Navarch", "version": "v1.32.0"}, "paths": {}})
}

/// `/openapi/v2` as protobuf (gnostic's `openapi_v2.Document`: `swagger` = 1, `info` = 2 with `title` = 1 and
/// `version` = 2, `paths` = 8), the encoding kubectl requires. kubectl falls back to this document for what the
/// v3 documents cannot vouch for (a `kind: List`, a kind the server does not serve); with no definitions, it
/// validates nothing itself and lets the server decide, which refuses unknown kinds and fields.
pub fn v2_protobuf() -> Vec<u8> {
    fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
        out.push(number << 3 | 2); // length-delimited
        let mut len = bytes.len();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        out.extend_from_slice(bytes);
    }
    let mut info = Vec::new();
    field(&mut info, 1, b"Navarch");
    field(&mut info, 2, b"v1.32.0");
    let mut doc = Vec::new();
    field(&mut doc, 1, b"2.0");
    field(&mut doc, 2, &info);
    field(&mut doc, 8, &[]);
    doc
}

#[cfg(test)]
mod tests {
    #[test]
    fn v2_protobuf_is_a_gnostic_document() {
        let doc = super::v2_protobuf();
        assert_eq!(&doc[..5], b"\x0a\x032.0");
        assert_eq!(doc[5], 0x12);
        assert_eq!(doc[6] as usize, 2 + 7 + 2 + 7);
        assert_eq!(&doc[doc.len() - 2..], b"\x42\x00");
    }

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
