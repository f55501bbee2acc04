//! Tables (`meta.k8s.io/v1` Table) for `kubectl get`: Kubernetes' columns per kind, cells formatted by the server,
//! and each row's object as a `PartialObjectMetadata` so that `-A` and `--show-labels` work.

mod age;
mod config_maps;
mod deployments;
mod endpoints;
mod events;
mod horizontal_pod_autoscalers;
mod labels;
mod leases;
mod namespaces;
mod nodes;
mod pods;
mod replica_sets;
mod role_bindings;
mod roles;
mod secrets;
mod service_accounts;
mod services;

pub use age::{age, human_duration};
pub use labels::{format_labels, selector_string};

use k8s_openapi::chrono::{DateTime, Utc};
use navarch_bus::api::ResourceInfo;
use serde_json::{json, Value};

use crate::request::{IncludeObject, TableAccept};

/// One column of a kind's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Header, as kubectl prints it upper-cased.
    pub name: &'static str,
    /// `string`, `integer`...
    pub kind: &'static str,
    /// `name` for the NAME column.
    pub format: &'static str,
    /// What the column shows.
    pub description: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: u8,
}

impl Column {
    /// A column shown always.
    pub const fn new(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            kind: "string",
            format: "",
            description,
            priority: 0,
        }
    }

    /// The same column shown only with `-o wide`.
    pub const fn wide(self) -> Self {
        Self {
            priority: 1,
            ..self
        }
    }

    /// The same column typed `integer`, as Kubernetes types some count columns.
    pub const fn integer(self) -> Self {
        Self {
            kind: "integer",
            ..self
        }
    }

    fn to_json(self) -> Value {
        json!({"name": self.name, "type": self.kind, "format": self.format,
               "description": self.description, "priority": self.priority})
    }
}

/// The NAME column every table starts with.
pub const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: "Name must be unique within a namespace.",
    priority: 0,
};

/// The AGE column.
pub const AGE: Column = Column::new(
    "Age",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);

/// The columns of kind `info`; kinds without their own get NAME and AGE.
pub fn columns(info: &ResourceInfo) -> &'static [Column] {
    match info.kind {
        "Pod" => pods::COLUMNS,
        "Deployment" => deployments::COLUMNS,
        "Node" => nodes::COLUMNS,
        "Namespace" => namespaces::COLUMNS,
        "ReplicaSet" => replica_sets::COLUMNS,
        "Service" => services::COLUMNS,
        "Endpoints" => endpoints::COLUMNS,
        "ConfigMap" => config_maps::COLUMNS,
        "Secret" => secrets::COLUMNS,
        "Event" => events::COLUMNS,
        "Lease" => leases::COLUMNS,
        "HorizontalPodAutoscaler" => horizontal_pod_autoscalers::COLUMNS,
        "ServiceAccount" => service_accounts::COLUMNS,
        "Role" | "ClusterRole" => roles::COLUMNS,
        "RoleBinding" => role_bindings::COLUMNS,
        "ClusterRoleBinding" => role_bindings::CLUSTER_COLUMNS,
        _ => &[NAME, AGE],
    }
}

/// The cells of `object` (of kind `info`) under [`columns`], as of `now`.
pub fn cells(info: &ResourceInfo, object: &Value, now: DateTime<Utc>) -> Vec<Value> {
    match info.kind {
        "Pod" => pods::cells(object, now),
        "Deployment" => deployments::cells(object, now),
        "Node" => nodes::cells(object, now),
        "Namespace" => namespaces::cells(object, now),
        "ReplicaSet" => replica_sets::cells(object, now),
        "Service" => services::cells(object, now),
        "Endpoints" => endpoints::cells(object, now),
        "ConfigMap" => config_maps::cells(object, now),
        "Secret" => secrets::cells(object, now),
        "Event" => events::cells(object, now),
        "Lease" => leases::cells(object, now),
        "HorizontalPodAutoscaler" => horizontal_pod_autoscalers::cells(object, now),
        "ServiceAccount" => service_accounts::cells(object, now),
        "Role" | "ClusterRole" => roles::cells(object, now),
        "RoleBinding" | "ClusterRoleBinding" => role_bindings::cells(object, now),
        _ => vec![json!(name(object)), json!(age_of(object, now))],
    }
}

/// `metadata.name`, or empty.
pub(crate) fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// The AGE cell of `object`.
pub(crate) fn age_of(object: &Value, now: DateTime<Utc>) -> String {
    age(object["metadata"]["creationTimestamp"].as_str(), now)
}

/// A string field, or empty (missing and non-string fields read as Go's zero value).
pub(crate) fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// An array field, or empty.
pub(crate) fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// The number of entries of an object field (`data`, `binaryData`...), 0 when missing.
pub(crate) fn entries(v: &Value) -> usize {
    v.as_object().map_or(0, |m| m.len())
}

/// `s`, or `<none>` when empty: kubectl's placeholder for an empty cell.
pub(crate) fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

/// CONTAINERS and IMAGES of a pod spec: names and images joined with "," (`layoutContainerCells`).
pub(crate) fn container_cells(pod_spec: &Value) -> (String, String) {
    let containers = items(&pod_spec["containers"]);
    let join = |field: &str| {
        containers
            .iter()
            .map(|c| text(&c[field]))
            .collect::<Vec<_>>()
            .join(",")
    };
    (join("name"), join("image"))
}

/// How rows are built: which Table and what each row's `object` holds.
#[derive(Debug, Clone, Copy)]
pub struct TableOptions {
    /// The Table version the client asked for.
    pub accept: TableAccept,
    /// What each row carries besides its cells.
    pub include: IncludeObject,
    /// The time ages are computed at.
    pub now: DateTime<Utc>,
}

/// One row.
pub fn row(info: &ResourceInfo, object: &Value, options: &TableOptions) -> Value {
    let mut row = json!({"cells": cells(info, object, options.now)});
    match options.include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": options.accept.api_version(),
                "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
            });
        }
        IncludeObject::Object => row["object"] = object.clone(),
    }
    row
}

/// A Table of `objects` at `resource_version`.
pub fn table(
    info: &ResourceInfo,
    objects: &[Value],
    resource_version: Option<&str>,
    options: &TableOptions,
) -> Value {
    let mut metadata = json!({});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    json!({
        "kind": "Table",
        "apiVersion": options.accept.api_version(),
        "metadata": metadata,
        "columnDefinitions": columns(info).iter().map(|c| c.to_json()).collect::<Vec<_>>(),
        "rows": objects.iter().map(|o| row(info, o, options)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::meta::parse_time;
    use navarch_bus::api::resource::by_kind;

    #[test]
    fn tables_carry_columns_rows_and_partial_metadata() {
        let pods = by_kind("v1", "Pod").unwrap();
        let pod = json!({"metadata": {"name": "p1", "namespace": "demo", "labels": {"app": "web"},
                                      "creationTimestamp": "2026-01-01T00:00:00Z"},
                         "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Pending"}});
        let options = TableOptions {
            accept: TableAccept::V1,
            include: IncludeObject::Metadata,
            now: parse_time("2026-01-01T00:05:00Z").unwrap(),
        };
        let t = table(pods, &[pod], Some("105"), &options);
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"]["resourceVersion"], "105");
        let names: Vec<_> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].clone())
            .collect();
        assert_eq!(
            names,
            vec![
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["columnDefinitions"][4]["priority"], 0);
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
        let row = &t["rows"][0];
        assert_eq!(
            row["cells"],
            json!(["p1", "0/1", "Pending", "0", "5m", "<none>", "<none>", "<none>", "<none>"])
        );
        assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(row["object"]["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(row["object"]["metadata"]["namespace"], "demo");
        assert_eq!(row["object"]["metadata"]["labels"]["app"], "web");

        let bare = TableOptions {
            include: IncludeObject::None,
            ..options
        };
        assert!(self::row(pods, &json!({}), &bare).get("object").is_none());
    }

    #[test]
    fn unknown_kinds_fall_back_to_name_and_age() {
        let info = ResourceInfo {
            kind: "Widget",
            ..*by_kind("v1", "Pod").unwrap()
        };
        assert_eq!(columns(&info).len(), 2);
        let now = parse_time("2026-01-01T03:00:00Z").unwrap();
        let o = json!({"metadata": {"name": "w", "creationTimestamp": "2026-01-01T00:00:00Z"}});
        assert_eq!(cells(&info, &o, now), vec![json!("w"), json!("3h")]);
    }

    #[test]
    fn every_kind_fills_its_columns_without_panicking() {
        let kinds = [
            "Pod",
            "Deployment",
            "Node",
            "Namespace",
            "ReplicaSet",
            "Service",
            "Endpoints",
            "ConfigMap",
            "Secret",
            "Event",
            "Lease",
            "HorizontalPodAutoscaler",
            "ServiceAccount",
            "Role",
            "ClusterRole",
            "RoleBinding",
            "ClusterRoleBinding",
        ];
        let now = parse_time("2026-01-01T00:00:00Z").unwrap();
        let garbage = [
            json!(null),
            json!(7),
            json!("x"),
            json!([]),
            json!({}),
            json!({"metadata": 1, "spec": [], "status": "up", "subsets": {}, "data": [1],
                   "series": 3, "subjects": "all", "roleRef": 5, "involvedObject": []}),
            json!({"spec": {"ports": [7, {"port": "80"}], "metrics": [null, {"type": "Pods"}],
                            "selector": {"matchLabels": 1, "matchExpressions": [4]}},
                   "subsets": [{"addresses": 1, "ports": [{}]}]}),
        ];
        for kind in kinds {
            let info = ResourceInfo {
                kind,
                ..*by_kind("v1", "Pod").unwrap()
            };
            let columns = columns(&info);
            assert_ne!(columns, [NAME, AGE], "{kind} has its own columns");
            for object in &garbage {
                assert_eq!(
                    cells(&info, object, now).len(),
                    columns.len(),
                    "{kind}: {object}"
                );
            }
        }
    }

    #[test]
    fn integer_columns_are_typed() {
        let rs = ResourceInfo {
            kind: "ReplicaSet",
            ..*by_kind("v1", "Pod").unwrap()
        };
        let kinds: Vec<_> = columns(&rs).iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            ["string", "integer", "integer", "integer", "string", "string", "string", "string"]
        );
        let role = ResourceInfo {
            kind: "ClusterRole",
            ..rs
        };
        assert_eq!(columns(&role)[1].to_json()["type"], "date");
    }
}
