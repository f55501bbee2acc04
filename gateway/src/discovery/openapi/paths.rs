//! The `paths` of a group version's OpenAPI v3 document: one operation per route the gateway serves, shaped as
//! kube-apiserver's (operation ids, actions, group-version-kinds, parameters, bodies and responses referring to the
//! schemas).

use navarch_bus::api::ResourceInfo;
use serde_json::{json, Map, Value};

use super::schemas::{self, Catalog, API_RESOURCE_LIST, DELETE_OPTIONS, PATCH};

/// The patch types the gateway applies. Strategic merge patch is listed: kubectl then builds its patches from the
/// served schemas' patch metadata, as it does against kube-apiserver. Server-side apply is not served yet.
const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

/// `api/v1`, `apis/apps/v1`: a group version's path prefix (without the leading slash).
pub fn prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `Core`, `Apps`, `RbacAuthorization`: the group as kube-apiserver spells it in operation ids.
fn group_word(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    group
        .trim_end_matches(".k8s.io")
        .split('.')
        .map(capitalize)
        .collect()
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `apps_v1`, `core_v1`, `rbacAuthorization_v1`: the tag of a group version's operations.
fn tag(group: &str, version: &str) -> String {
    let word = group_word(group);
    let mut chars = word.chars();
    let lower: String = chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default();
    format!("{lower}_{version}")
}

/// Builds the operations of one group version.
struct Builder<'a> {
    catalog: &'a Catalog,
    group: &'a str,
    version: &'a str,
    /// `AppsV1`, in operation ids.
    id: String,
}

/// What an operation acts on: its group-version-kind and the schema of its objects.
struct Target<'a> {
    gvk: Value,
    schema: Option<&'a str>,
}

impl Builder<'_> {
    fn target(&self, group: &str, version: &str, kind: &str) -> Target<'_> {
        Target {
            gvk: json!({"group": group, "version": version, "kind": kind}),
            schema: self.catalog.name_of(group, version, kind),
        }
    }

    /// `{"application/json": {"schema": {$ref}}}` for each content type, or `{}` for a missing schema.
    fn content(types: &[&str], schema: Option<&str>) -> Value {
        let Some(name) = schema else {
            return json!({});
        };
        let map: Map<String, Value> = types
            .iter()
            .map(|t| (t.to_string(), json!({ "schema": schemas::reference(name) })))
            .collect();
        Value::Object(map)
    }

    fn responses(codes: &[(&str, &str)], types: &[&str], schema: Option<&str>) -> Value {
        let mut out = Map::new();
        for (code, description) in codes {
            out.insert(
                code.to_string(),
                json!({"content": Self::content(types, schema), "description": description}),
            );
        }
        out.insert("401".into(), json!({"description": "Unauthorized"}));
        Value::Object(out)
    }

    /// One operation: `action` is kube-apiserver's `x-kubernetes-action` and picks the query parameters.
    fn operation(&self, action: &str, description: String, id: String, target: &Target) -> Value {
        let (codes, types): (&[(&str, &str)], &[&str]) = match action {
            "list" => (
                &[("200", "OK")],
                &["application/json", "application/json;stream=watch"],
            ),
            "post" => (
                &[("200", "OK"), ("201", "Created"), ("202", "Accepted")],
                &["application/json"],
            ),
            "put" | "patch" => (&[("200", "OK"), ("201", "Created")], &["application/json"]),
            "delete" => (&[("200", "OK"), ("202", "Accepted")], &["application/json"]),
            _ => (&[("200", "OK")], &["application/json"]),
        };
        let mut op = json!({
            "description": description,
            "operationId": id,
            "parameters": self.catalog.parameters(action),
            "responses": Self::responses(codes, types, target.schema),
            "tags": [tag(self.group, self.version)],
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": target.gvk,
        });
        let body = match action {
            "post" | "put" => {
                Some(json!({"content": Self::content(&["*/*"], target.schema), "required": true}))
            }
            "patch" => {
                Some(json!({"content": Self::content(PATCH_TYPES, Some(PATCH)), "required": true}))
            }
            "delete" => Some(json!({"content": Self::content(&["*/*"], Some(DELETE_OPTIONS))})),
            _ => None,
        };
        if let Some(body) = body {
            op["requestBody"] = body;
        }
        op
    }

    fn path_parameter(name: &str, description: &str) -> Value {
        json!({
            "description": description,
            "in": "path",
            "name": name,
            "required": true,
            "schema": {"type": "string", "uniqueItems": true},
        })
    }

    /// The path-level parameters: `name` for an object's paths, `namespace` for a namespaced kind's, `pretty`.
    fn path_parameters(&self, name_of: Option<&str>, namespaced: bool) -> Value {
        let mut out = Vec::new();
        if let Some(kind) = name_of {
            out.push(Self::path_parameter("name", &format!("name of the {kind}")));
        }
        if namespaced {
            out.push(Self::path_parameter(
                "namespace",
                "object name and auth scope, such as for teams and projects",
            ));
        }
        out.push(self.catalog.pretty());
        Value::Array(out)
    }

    /// The paths of one kind: its collection (list, create), the same list across namespaces, the object (read,
    /// replace, patch, delete) and its `status` and `scale` subresources.
    fn kind(&self, info: &ResourceInfo, paths: &mut Map<String, Value>) {
        let kind = info.kind;
        let base = format!("/{}", prefix(self.group, self.version));
        let object = self.target(self.group, self.version, kind);
        let list = self.target(self.group, self.version, &info.list_kind());
        let scope = if info.namespaced { "Namespaced" } else { "" };
        let id = |verb: &str, suffix: &str| format!("{verb}{}{scope}{kind}{suffix}", self.id);
        let collection = if info.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", info.plural)
        } else {
            format!("{base}/{}", info.plural)
        };

        paths.insert(
            collection.clone(),
            json!({
                "get": self.operation("list", format!("list or watch objects of kind {kind}"), id("list", ""), &list),
                "post": self.operation("post", format!("create a {kind}"), id("create", ""), &object),
                "parameters": self.path_parameters(None, info.namespaced),
            }),
        );
        if info.namespaced {
            let all = format!("list{}{kind}ForAllNamespaces", self.id);
            paths.insert(
                format!("{base}/{}", info.plural),
                json!({
                    "get": self.operation("list", format!("list or watch objects of kind {kind}"), all, &list),
                    "parameters": self.path_parameters(None, false),
                }),
            );
        }
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": self.operation("get", format!("read the specified {kind}"), id("read", ""), &object),
                "put": self.operation("put", format!("replace the specified {kind}"), id("replace", ""), &object),
                "patch": self.operation(
                    "patch", format!("partially update the specified {kind}"), id("patch", ""), &object,
                ),
                "delete": self.operation("delete", format!("delete a {kind}"), id("delete", ""), &object),
                "parameters": self.path_parameters(Some(kind), info.namespaced),
            }),
        );
        for sub in info.subresources {
            let (target, name_of, word) = match *sub {
                "status" => (self.target(self.group, self.version, kind), kind, "Status"),
                "scale" => (self.target("autoscaling", "v1", "Scale"), "Scale", "Scale"),
                // `pods/log` answers that logs are not served yet: no operation to document.
                _ => continue,
            };
            let what = format!("{sub} of the specified {kind}");
            paths.insert(
                format!("{collection}/{{name}}/{sub}"),
                json!({
                    "get": self.operation("get", format!("read {what}"), id("read", word), &target),
                    "put": self.operation("put", format!("replace {what}"), id("replace", word), &target),
                    "patch": self.operation("patch", format!("partially update {what}"), id("patch", word), &target),
                    "parameters": self.path_parameters(Some(name_of), info.namespaced),
                }),
            );
        }
    }
}

/// The paths of the group version `group`/`version` serving `kinds`.
pub fn paths(
    catalog: &Catalog,
    group: &str,
    version: &str,
    kinds: &[&ResourceInfo],
) -> Map<String, Value> {
    let builder = Builder {
        catalog,
        group,
        version,
        id: format!("{}{}", group_word(group), capitalize(version)),
    };
    let mut paths = Map::new();
    let resources = Target {
        gvk: Value::Null,
        schema: Some(API_RESOURCE_LIST),
    };
    let mut discovery = builder.operation(
        "get",
        "get available resources".into(),
        format!("get{}APIResources", builder.id),
        &resources,
    );
    if let Some(op) = discovery.as_object_mut() {
        op.remove("x-kubernetes-group-version-kind");
        op.remove("x-kubernetes-action");
        op.insert("parameters".into(), json!([]));
    }
    paths.insert(
        format!("/{}/", prefix(group, version)),
        json!({ "get": discovery }),
    );
    for info in kinds {
        builder.kind(info, &mut paths);
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_and_tags_spell_the_group_as_kube_apiserver_does() {
        assert_eq!(group_word(""), "Core");
        assert_eq!(group_word("apps"), "Apps");
        assert_eq!(group_word("rbac.authorization.k8s.io"), "RbacAuthorization");
        assert_eq!(group_word("coordination.k8s.io"), "Coordination");
        assert_eq!(
            tag("rbac.authorization.k8s.io", "v1"),
            "rbacAuthorization_v1"
        );
        assert_eq!(tag("", "v1"), "core_v1");
        assert_eq!(prefix("", "v1"), "api/v1");
        assert_eq!(prefix("autoscaling", "v2"), "apis/autoscaling/v2");
    }
}
