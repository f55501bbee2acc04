//! The structure of a kind for server-side apply, read from Kubernetes 1.32's OpenAPI schemas: which lists are
//! atomic, sets or maps keyed by `x-kubernetes-list-map-keys`, and which maps are atomic.
//!
//! A field the schemas do not describe (or a kind without a schema) is read as structured-merge-diff reads an
//! untyped value: objects merge field by field, lists are atomic.

use serde_json::Value;

use crate::discovery::openapi::{catalog, Catalog};

const REF_PREFIX: &str = "#/components/schemas/";

/// How a list merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced whole (`x-kubernetes-list-type: atomic`, and lists with no list type).
    Atomic,
    /// A set of scalars (`set`).
    Set,
    /// Objects identified by these fields (`map` with `x-kubernetes-list-map-keys`).
    Map(Vec<String>),
}

/// One node of a schema: the schema as written at the field (`outer`, which carries the list and map types of
/// properties) and what its `$ref` or single `allOf` resolves to.
#[derive(Debug, Clone, Copy)]
pub struct Schema<'a> {
    catalog: Option<&'a Catalog>,
    outer: Option<&'a Value>,
    resolved: Option<&'a Value>,
}

impl<'a> Schema<'a> {
    /// The schema of kind `kind` in `group`/`version`; an untyped schema when none is known.
    pub fn of_kind(group: &str, version: &str, kind: &str) -> Schema<'static> {
        let catalog = catalog();
        let root = catalog
            .name_of(group, version, kind)
            .and_then(|name| catalog.schema(name));
        Schema::at(Some(catalog), root)
    }

    /// A schema that describes nothing: every object granular, every list atomic.
    pub fn untyped() -> Schema<'static> {
        Schema {
            catalog: None,
            outer: None,
            resolved: None,
        }
    }

    fn at(catalog: Option<&'a Catalog>, outer: Option<&'a Value>) -> Self {
        let mut resolved = outer;
        // References nest at most a few levels (allOf wrapping a $ref); the bound keeps a cyclic file harmless.
        for _ in 0..8 {
            let Some(v) = resolved else { break };
            if let Some(r) = v.get("$ref").and_then(Value::as_str) {
                resolved = r
                    .strip_prefix(REF_PREFIX)
                    .and_then(|name| catalog.and_then(|c| c.schema(name)));
            } else if let Some([only]) = v.get("allOf").and_then(Value::as_array).map(Vec::as_slice)
            {
                resolved = Some(only);
            } else {
                break;
            }
        }
        Schema {
            catalog,
            outer,
            resolved,
        }
    }

    fn extension(&self, name: &str) -> Option<&'a Value> {
        self.outer
            .and_then(|o| o.get(name))
            .or_else(|| self.resolved.and_then(|r| r.get(name)))
    }

    /// The schema of field `name` of an object (a property, or the values of a map).
    pub fn field(&self, name: &str) -> Schema<'a> {
        let Some(resolved) = self.resolved else {
            return Schema::at(self.catalog, None);
        };
        let child = resolved
            .get("properties")
            .and_then(|p| p.get(name))
            .or_else(|| {
                resolved
                    .get("additionalProperties")
                    .filter(|v| v.is_object())
            });
        Schema::at(self.catalog, child)
    }

    /// The schema of the items of a list.
    pub fn items(&self) -> Schema<'a> {
        Schema::at(self.catalog, self.resolved.and_then(|r| r.get("items")))
    }

    /// How a list at this schema merges.
    pub fn list_type(&self) -> ListType {
        match self
            .extension("x-kubernetes-list-type")
            .and_then(Value::as_str)
        {
            Some("set") => ListType::Set,
            Some("map") => {
                let keys: Vec<String> = self
                    .extension("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect();
                if keys.is_empty() {
                    ListType::Atomic
                } else {
                    ListType::Map(keys)
                }
            }
            _ => ListType::Atomic,
        }
    }

    /// Whether an object at this schema is replaced whole (`x-kubernetes-map-type: atomic`).
    pub fn is_atomic_map(&self) -> bool {
        self.extension("x-kubernetes-map-type")
            .and_then(Value::as_str)
            == Some("atomic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_list_and_map_types_through_references() {
        let d = Schema::of_kind("apps", "v1", "Deployment");
        let pod = d.field("spec").field("template").field("spec");
        let containers = pod.field("containers");
        assert_eq!(containers.list_type(), ListType::Map(vec!["name".into()]));
        assert_eq!(
            containers.items().field("env").list_type(),
            ListType::Map(vec!["name".into()])
        );
        assert_eq!(
            containers.items().field("args").list_type(),
            ListType::Atomic
        );
        assert!(d.field("spec").field("selector").is_atomic_map());
        assert!(!d.field("metadata").field("labels").is_atomic_map());
        assert_eq!(
            d.field("metadata").field("finalizers").list_type(),
            ListType::Set
        );
        let svc = Schema::of_kind("", "v1", "Service");
        assert_eq!(
            svc.field("spec").field("ports").list_type(),
            ListType::Map(vec!["port".into(), "protocol".into()])
        );
        let untyped = Schema::untyped();
        assert_eq!(untyped.field("x").items().list_type(), ListType::Atomic);
    }
}
