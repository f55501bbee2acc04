//! OpenAPI as kube-apiserver serves it: `/openapi/v3` lists a document per group version, and each document
//! carries the operations of that group version and, in `components.schemas`, Kubernetes 1.32's schemas of every
//! type they refer to (descriptions, required fields, formats, patch strategies and merge keys, list types,
//! group-version-kinds). `kubectl explain` reads them; `kubectl apply` builds its strategic merge patches from
//! their patch metadata; kubectl's validation sees `fieldValidation` on every write and leaves unknown fields to the
//! server. `/openapi/v2` stays minimal.
//!
//! The documents are built once, on first use, and served as bytes; each is addressed by a hash of its content.

mod paths;
mod schemas;
mod v2;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use bytes::Bytes;
use navarch_bus::api::{resource, RESOURCES};
use serde_json::{json, Map, Value};

pub use schemas::{catalog, Catalog};
pub use v2::{v2_json, v2_protobuf, V2_PROTOBUF};

/// One served document.
#[derive(Debug, Clone)]
pub struct Document {
    /// The JSON body.
    pub body: Bytes,
    /// A hash of the body: the `?hash=` of its URL and its `ETag`.
    pub hash: String,
}

struct Documents {
    root: Bytes,
    /// By path segment: `api/v1`, `apis/apps/v1`.
    by_group_version: BTreeMap<String, Document>,
}

/// FNV-1a, 64 bits, of `bytes`: kubectl caches each group version's document by this hash, so it only has to
/// change when the content does.
fn hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
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

/// The document of one group version, or None if no kind is served there.
fn build(group: &str, version: &str) -> Option<Value> {
    let kinds = resource::in_group_version(group, version);
    if kinds.is_empty() {
        return None;
    }
    let catalog = schemas::catalog();
    let paths = paths::paths(catalog, group, version, &kinds);
    let mut names = BTreeSet::new();
    for path in paths.values() {
        schemas::referenced(path, &mut names);
    }
    // Status, which every failure answers with: kube-apiserver's documents carry it (their deletecollection
    // operations refer to it).
    names.insert(schemas::STATUS.to_string());
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Navarch", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": catalog.closure(names)},
    }))
}

fn documents() -> &'static Documents {
    static DOCUMENTS: OnceLock<Documents> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        let mut by_group_version = BTreeMap::new();
        let mut root = Map::new();
        for (group, version) in group_versions() {
            let Some(doc) = build(group, version) else {
                continue;
            };
            // Serializing a Value cannot fail (its map keys are strings).
            let body = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
            let document = Document {
                hash: hash(&body),
                body,
            };
            let path = paths::prefix(group, version);
            root.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", document.hash)}),
            );
            by_group_version.insert(path, document);
        }
        let root = json!({ "paths": root });
        Documents {
            root: Bytes::from(serde_json::to_vec(&root).unwrap_or_default()),
            by_group_version,
        }
    })
}

/// `/openapi/v3`: where each group version's document is.
pub fn root() -> Bytes {
    documents().root.clone()
}

/// `/openapi/v3/<gv>` (`api/v1`, `apis/apps/v1`), or None for a group version not served.
pub fn group_version(gv: &str) -> Option<&'static Document> {
    documents().by_group_version.get(gv.trim_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(gv: &str) -> Value {
        serde_json::from_slice(&group_version(gv).expect(gv).body).expect("JSON")
    }

    #[test]
    fn the_root_points_at_each_group_version_with_the_hash_of_its_content() {
        let r: Value = serde_json::from_slice(&root()).unwrap();
        for gv in [
            "api/v1",
            "apis/apps/v1",
            "apis/autoscaling/v2",
            "apis/coordination.k8s.io/v1",
            "apis/rbac.authorization.k8s.io/v1",
        ] {
            let url = r["paths"][gv]["serverRelativeURL"]
                .as_str()
                .unwrap_or_else(|| panic!("{gv} in {r}"));
            let document = group_version(gv).unwrap();
            assert_eq!(url, format!("/openapi/v3/{gv}?hash={}", document.hash));
            assert_eq!(document.hash, hash(&document.body));
        }
        assert!(group_version("apis/batch/v1").is_none());
        assert!(group_version("nonsense").is_none());
    }

    #[test]
    fn patch_operations_advertise_field_validation_strategic_merge_and_the_schemas() {
        let doc = document("apis/apps/v1");
        let path = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        let patch = &path["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
        assert_eq!(patch["x-kubernetes-action"], "patch");
        let params = patch["parameters"].as_array().unwrap();
        for name in ["dryRun", "fieldManager", "fieldValidation", "force"] {
            assert!(
                params
                    .iter()
                    .any(|p| p["name"] == name && p["in"] == "query"),
                "{name}"
            );
        }
        let content = &patch["requestBody"]["content"];
        assert_eq!(
            content["application/strategic-merge-patch+json"]["schema"],
            schemas::reference(schemas::PATCH)
        );
        assert_eq!(
            patch["responses"]["200"]["content"]["application/json"]["schema"],
            schemas::reference("io.k8s.api.apps.v1.Deployment")
        );
        let names: Vec<&Value> = path["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| &p["name"])
            .collect();
        assert_eq!(
            names,
            [&json!("name"), &json!("namespace"), &json!("pretty")]
        );
        let scale =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["put"];
        assert_eq!(scale["x-kubernetes-group-version-kind"]["kind"], "Scale");
        assert_eq!(
            scale["requestBody"]["content"]["*/*"]["schema"],
            schemas::reference("io.k8s.api.autoscaling.v1.Scale")
        );
        let list = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["get"];
        assert_eq!(
            list["responses"]["200"]["content"]["application/json"]["schema"],
            schemas::reference("io.k8s.api.apps.v1.DeploymentList")
        );
        assert!(doc["paths"]["/apis/apps/v1/deployments"]["get"].is_object());
        assert!(doc["paths"]["/apis/apps/v1/deployments"]
            .get("post")
            .is_none());

        let core = document("api/v1");
        assert!(core["paths"]["/api/v1/nodes/{name}"]["patch"].is_object());
        assert!(
            core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/status"]["patch"].is_object()
        );
        assert!(core["paths"].get("/api/v1/pods").is_some());
        assert!(core["paths"]
            .get("/api/v1/namespaces/{namespace}/nodes")
            .is_none());
    }

    #[test]
    fn every_reference_of_every_document_resolves_within_it() {
        for (group, version) in group_versions() {
            let gv = paths::prefix(group, version);
            let doc = document(&gv);
            let schemas = doc["components"]["schemas"].as_object().unwrap();
            let mut names = BTreeSet::new();
            schemas::referenced(&doc, &mut names);
            for name in names {
                assert!(schemas.contains_key(&name), "{gv}: dangling $ref to {name}");
            }
            for info in resource::in_group_version(group, version) {
                for kind in [info.kind.to_string(), info.list_kind()] {
                    let described = schemas.values().any(|s| {
                        s["x-kubernetes-group-version-kind"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|k| {
                                k["kind"] == kind.as_str()
                                    && k["group"] == group
                                    && k["version"] == version
                            })
                    });
                    assert!(described, "{gv} describes {kind}");
                }
            }
        }
        let apps = document("apis/apps/v1");
        let schemas = &apps["components"]["schemas"];
        for name in [
            "io.k8s.api.autoscaling.v1.Scale",
            "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
            "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "io.k8s.api.core.v1.PodTemplateSpec",
        ] {
            assert!(schemas[name].is_object(), "{name}");
        }
        assert!(
            schemas.get("io.k8s.api.core.v1.Service").is_none(),
            "only what apps/v1 refers to"
        );
    }
}
