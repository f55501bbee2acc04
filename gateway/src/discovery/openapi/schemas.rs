//! Kubernetes 1.32's schemas and operation parameters (`gateway/openapi/kubernetes-1.32.json`, written by
//! `gateway/openapi/generate.py`): which schema describes a kind, and the schemas a document must carry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The schemas, named as Kubernetes names them (`io.k8s.api.apps.v1.Deployment`), in kube-apiserver's OpenAPI v3
/// form, with the query parameters of each operation.
static SOURCE: &str = include_str!("../../../openapi/kubernetes-1.32.json");

/// Where a `$ref` points: `#/components/schemas/<name>`.
const REF_PREFIX: &str = "#/components/schemas/";

/// The meta types operations refer to by name.
pub const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
/// See [`STATUS`].
pub const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
/// See [`STATUS`].
pub const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
/// See [`STATUS`].
pub const API_RESOURCE_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList";

/// The embedded schemas and parameters, parsed once.
#[derive(Debug, Deserialize)]
pub struct Catalog {
    schemas: BTreeMap<String, Value>,
    parameters: Parameters,
}

#[derive(Debug, Deserialize)]
struct Parameters {
    /// `pretty`, a path-level parameter of every path.
    pretty: Value,
    /// The query parameters of each action (`list`, `post`, `get`, `put`, `patch`, `delete`).
    operations: BTreeMap<String, Vec<Value>>,
}

/// The catalog, parsed on first use.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    // The file is part of the source tree and checked by the tests: failing to parse it is a build defect.
    CATALOG.get_or_init(|| {
        serde_json::from_str(SOURCE).expect("gateway/openapi/kubernetes-1.32.json parses")
    })
}

/// `{"$ref": "#/components/schemas/<name>"}`.
pub fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{REF_PREFIX}{name}") })
}

/// The names of the schemas `value` refers to, at any depth.
pub fn referenced(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix(REF_PREFIX) {
                            out.insert(name.to_string());
                        }
                    }
                    _ => referenced(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| referenced(v, out)),
        _ => {}
    }
}

/// Whether `schema` says, in `x-kubernetes-group-version-kind`, that it describes `group`/`version`/`kind`.
fn describes(schema: &Value, group: &str, version: &str, kind: &str) -> bool {
    schema["x-kubernetes-group-version-kind"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|gvk| gvk["group"] == group && gvk["version"] == version && gvk["kind"] == kind)
}

impl Catalog {
    /// The name of the schema of a kind (`apps`, `v1`, `Deployment` -> `io.k8s.api.apps.v1.Deployment`): the one
    /// whose `x-kubernetes-group-version-kind` names it, so no naming rule has to be guessed.
    pub fn name_of(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.schemas
            .iter()
            .find(|(_, schema)| describes(schema, group, version, kind))
            .map(|(name, _)| name.as_str())
    }

    /// The schema named `name` (`io.k8s.api.core.v1.Container`).
    pub fn schema(&self, name: &str) -> Option<&Value> {
        self.schemas.get(name)
    }

    /// `roots` and every schema they refer to, directly or not: what `components.schemas` must hold for the
    /// `$ref`s of a document to resolve. Names with no schema are left out.
    pub fn closure(&self, roots: BTreeSet<String>) -> Map<String, Value> {
        let mut out = BTreeMap::new();
        let mut todo: Vec<String> = roots.into_iter().collect();
        while let Some(name) = todo.pop() {
            if out.contains_key(&name) {
                continue;
            }
            let Some(schema) = self.schemas.get(&name) else {
                continue;
            };
            let mut next = BTreeSet::new();
            referenced(schema, &mut next);
            todo.extend(next);
            out.insert(name, schema.clone());
        }
        out.into_iter().collect()
    }

    /// The query parameters of an action, as kube-apiserver documents them.
    pub fn parameters(&self, action: &str) -> Vec<Value> {
        self.parameters
            .operations
            .get(action)
            .cloned()
            .unwrap_or_default()
    }

    /// The `pretty` query parameter.
    pub fn pretty(&self) -> Value {
        self.parameters.pretty.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::RESOURCES;

    #[test]
    fn every_served_kind_and_its_list_has_a_schema_named_as_kubernetes_names_it() {
        let c = catalog();
        for info in RESOURCES {
            for kind in [info.kind.to_string(), info.list_kind()] {
                let name = c
                    .name_of(info.group, info.version, &kind)
                    .unwrap_or_else(|| {
                        panic!(
                            "no schema for {}/{kind}: run gateway/openapi/generate.py",
                            info.api_version()
                        )
                    });
                let package = match info.group {
                    "" => "core",
                    g => g.split('.').next().unwrap_or(g),
                };
                assert_eq!(
                    name,
                    format!("io.k8s.api.{package}.{}.{kind}", info.version)
                );
                let others = c
                    .schemas
                    .values()
                    .filter(|s| describes(s, info.group, info.version, &kind));
                assert_eq!(others.count(), 1, "{kind} is described once");
            }
        }
        assert_eq!(
            c.name_of("autoscaling", "v1", "Scale"),
            Some("io.k8s.api.autoscaling.v1.Scale")
        );
        for meta in [STATUS, DELETE_OPTIONS, PATCH, API_RESOURCE_LIST] {
            assert!(c.schemas.contains_key(meta), "{meta}");
        }
    }

    #[test]
    fn every_reference_resolves_and_uses_all_of_beside_a_description() {
        let c = catalog();
        let mut names = BTreeSet::new();
        for schema in c.schemas.values() {
            referenced(schema, &mut names);
        }
        for name in &names {
            assert!(c.schemas.contains_key(name), "dangling $ref to {name}");
        }
        let strategy = &c.schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
        assert_eq!(
            strategy["allOf"],
            json!([reference("io.k8s.api.apps.v1.DeploymentStrategy")])
        );
        assert_eq!(
            strategy["description"],
            "The deployment strategy to use to replace existing pods with new ones."
        );
        assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
        assert!(
            strategy.get("$ref").is_none(),
            "a $ref's siblings are ignored in OpenAPI 3.0"
        );
        let containers = &c.schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(
            containers["items"],
            reference("io.k8s.api.core.v1.Container")
        );
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
    }

    #[test]
    fn types_and_formats_are_kube_apiservers() {
        let c = catalog();
        let deployment = &c.schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(deployment["type"], "object");
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        assert_eq!(
            deployment["properties"]["kind"],
            json!({
                "description": deployment["properties"]["kind"]["description"],
                "type": "string",
            })
        );
        let spec = &c.schemas["io.k8s.api.apps.v1.DeploymentSpec"];
        assert_eq!(spec["required"], json!(["selector", "template"]));
        assert_eq!(spec["properties"]["replicas"]["format"], "int32");
        let meta = &c.schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"];
        assert_eq!(meta["generation"]["format"], "int64");
        assert_eq!(meta["finalizers"]["x-kubernetes-list-type"], "set");
        assert_eq!(
            meta["ownerReferences"]["x-kubernetes-patch-merge-key"],
            "uid"
        );
        let time = &c.schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"];
        assert_eq!(
            (&time["type"], &time["format"]),
            (&json!("string"), &json!("date-time"))
        );
        let secret = &c.schemas["io.k8s.api.core.v1.Secret"]["properties"]["data"];
        assert_eq!(
            secret["additionalProperties"],
            json!({"format": "byte", "type": "string"})
        );
        let int_or_string = &c.schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"];
        assert_eq!(int_or_string["format"], "int-or-string");
        assert!(
            int_or_string.get("type").is_none(),
            "kubectl explain names it <IntOrString>"
        );
        let ports = &c.schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"];
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            json!(["containerPort", "protocol"])
        );
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
    }

    #[test]
    fn closure_follows_references_transitively() {
        let c = catalog();
        let roots = BTreeSet::from(["io.k8s.api.apps.v1.DeploymentStrategy".to_string()]);
        let schemas = c.closure(roots);
        let names: Vec<&str> = schemas.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "io.k8s.api.apps.v1.DeploymentStrategy",
                "io.k8s.api.apps.v1.RollingUpdateDeployment",
                "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
            ]
        );
        assert!(c.closure(BTreeSet::from(["nope".to_string()])).is_empty());
    }
}
