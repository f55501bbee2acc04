//! Discovery: `/version`, `/api`, `/apis` and the resource lists of each group version, built from the bus's
//! resource registry so a new kind needs only a registry entry.

pub mod aggregated;
pub mod openapi;

use navarch_bus::api::{resource, ResourceInfo, RESOURCES};
use serde_json::{json, Value};

/// The Kubernetes version the gateway speaks. kubectl's version dispatcher picks its client by the minor.
pub const KUBERNETES_MAJOR: &str = "1";
/// See [`KUBERNETES_MAJOR`].
pub const KUBERNETES_MINOR: &str = "32";

/// Verbs of every top-level resource.
pub(crate) const RESOURCE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// `/version`.
pub fn version() -> Value {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    json!({
        "major": KUBERNETES_MAJOR,
        "minor": KUBERNETES_MINOR,
        "gitVersion": format!("v{KUBERNETES_MAJOR}.{KUBERNETES_MINOR}.0"),
        "gitCommit": format!("navarch-{}", env!("CARGO_PKG_VERSION")),
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "none (Rust)",
        "compiler": "rustc",
        "platform": format!("{}/{arch}", std::env::consts::OS),
    })
}

/// The subresources a kind serves, as the registry declares them (`pods/log` is declared for kubectl and answered
/// with a Status until logs are served).
pub fn subresources(info: &ResourceInfo) -> Vec<&'static str> {
    info.subresources.to_vec()
}

/// `/api`: the core group's versions (legacy discovery; kubectl then asks for each version's resources).
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": core_version_names(), "serverAddressByClientCIDRs": []})
}

/// The versions of the core group, in registry order.
pub(crate) fn core_version_names() -> Vec<&'static str> {
    let mut versions: Vec<&str> = RESOURCES
        .iter()
        .filter(|r| r.group.is_empty())
        .map(|r| r.version)
        .collect();
    versions.dedup();
    versions
}

fn group_json(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis`: every named group.
pub fn groups() -> Value {
    let groups: Vec<Value> = all_groups()
        .iter()
        .map(|(g, versions)| group_json(g, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, if the group is served.
pub fn group(name: &str) -> Option<Value> {
    all_groups()
        .iter()
        .find(|(g, _)| *g == name)
        .map(|(g, versions)| group_json(g, versions))
}

/// What discovery says about one subresource.
fn subresource_json(info: &ResourceInfo, sub: &str) -> Value {
    let mut entry = json!({
        "name": format!("{}/{sub}", info.plural),
        "singularName": "",
        "namespaced": info.namespaced,
        "kind": info.kind,
        "verbs": ["get", "patch", "update"],
    });
    match sub {
        "scale" => {
            entry["group"] = json!("autoscaling");
            entry["version"] = json!("v1");
            entry["kind"] = json!("Scale");
        }
        "log" => entry["verbs"] = json!(["get"]),
        "token" => {
            entry["group"] = json!("authentication.k8s.io");
            entry["version"] = json!("v1");
            entry["kind"] = json!("TokenRequest");
            entry["verbs"] = json!(["create"]);
        }
        _ => {}
    }
    entry
}

/// A resource that is not stored: the review APIs (`src/auth/reviews.rs`, create only) and the resource metrics
/// API (`handlers/metrics.rs`, get and list).
pub(crate) struct Review {
    /// Its group.
    pub group: &'static str,
    /// Its version.
    pub version: &'static str,
    /// Its plural name.
    pub plural: &'static str,
    /// Its kind.
    pub kind: &'static str,
    /// Whether it lives in a namespace.
    pub namespaced: bool,
    /// What may be done with it.
    pub verbs: &'static [&'static str],
}

/// The review APIs, as kube-apiserver serves them, and metrics-server's resource metrics.
pub(crate) const REVIEWS: &[Review] = &[
    Review {
        group: "metrics.k8s.io",
        version: "v1beta1",
        plural: "nodes",
        kind: "NodeMetrics",
        namespaced: false,
        verbs: &["get", "list"],
    },
    Review {
        group: "metrics.k8s.io",
        version: "v1beta1",
        plural: "pods",
        kind: "PodMetrics",
        namespaced: true,
        verbs: &["get", "list"],
    },
    Review {
        group: "authentication.k8s.io",
        version: "v1",
        plural: "selfsubjectreviews",
        kind: "SelfSubjectReview",
        namespaced: false,
        verbs: &["create"],
    },
    Review {
        group: "authentication.k8s.io",
        version: "v1",
        plural: "tokenreviews",
        kind: "TokenReview",
        namespaced: false,
        verbs: &["create"],
    },
    Review {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "localsubjectaccessreviews",
        kind: "LocalSubjectAccessReview",
        namespaced: true,
        verbs: &["create"],
    },
    Review {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectaccessreviews",
        kind: "SelfSubjectAccessReview",
        namespaced: false,
        verbs: &["create"],
    },
    Review {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectrulesreviews",
        kind: "SelfSubjectRulesReview",
        namespaced: false,
        verbs: &["create"],
    },
    Review {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "subjectaccessreviews",
        kind: "SubjectAccessReview",
        namespaced: false,
        verbs: &["create"],
    },
];

/// Every named group with its versions: the registry's, then the review groups.
pub(crate) fn all_groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut groups = resource::groups();
    for r in REVIEWS {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => groups.push((r.group, vec![r.version])),
        }
    }
    groups
}

/// The review resources of a group version.
pub(crate) fn reviews_in<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static Review> + 'a {
    REVIEWS
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// `/api/<version>` or `/apis/<group>/<version>`: the APIResourceList, or None when nothing is served there.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let kinds = resource::in_group_version(group, version);
    let mut resources: Vec<Value> = reviews_in(group, version)
        .map(|r| {
            json!({"name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced,
                "kind": r.kind, "verbs": r.verbs})
        })
        .collect();
    if kinds.is_empty() && resources.is_empty() {
        return None;
    }
    for info in kinds {
        let mut entry = json!({
            "name": info.plural,
            "singularName": info.singular,
            "namespaced": info.namespaced,
            "kind": info.kind,
            "verbs": RESOURCE_VERBS,
        });
        if !info.short_names.is_empty() {
            entry["shortNames"] = json!(info.short_names);
        }
        if !info.categories.is_empty() {
            entry["categories"] = json!(info.categories);
        }
        resources.push(entry);
        for sub in subresources(info) {
            resources.push(subresource_json(info, sub));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {list}"))
    }

    #[test]
    fn version_satisfies_the_kubectl_dispatcher() {
        let v = version();
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "32");
        assert_eq!(v["gitVersion"], "v1.32.0");
    }

    #[test]
    fn core_v1_lists_kinds_with_aliases_and_subresources() {
        assert_eq!(core_versions()["versions"], json!(["v1"]));
        let list = resource_list("", "v1").unwrap();
        assert_eq!(list["groupVersion"], "v1");
        let pods = find(&list, "pods");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(pods["namespaced"], true);
        assert!(pods["verbs"].as_array().unwrap().contains(&json!("watch")));
        assert_eq!(find(&list, "pods/log")["verbs"], json!(["get"]));
        assert_eq!(find(&list, "pods/status")["kind"], "Pod");
        let ns = find(&list, "namespaces");
        assert_eq!(
            (ns["shortNames"].clone(), ns["namespaced"].clone()),
            (json!(["ns"]), json!(false))
        );
        assert_eq!(find(&list, "nodes")["shortNames"], json!(["no"]));
        assert!(resource_list("", "v2").is_none());
    }

    #[test]
    fn apps_v1_declares_the_scale_subresource() {
        let groups = groups();
        assert_eq!(groups["groups"][0]["name"], "apps");
        assert_eq!(
            groups["groups"][0]["preferredVersion"]["groupVersion"],
            "apps/v1"
        );
        let list = resource_list("apps", "v1").unwrap();
        let deploy = find(&list, "deployments");
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        assert_eq!(deploy["categories"], json!(["all"]));
        let scale = find(&list, "deployments/scale");
        assert_eq!(
            (
                scale["group"].clone(),
                scale["version"].clone(),
                scale["kind"].clone()
            ),
            (json!("autoscaling"), json!("v1"), json!("Scale"))
        );
        assert_eq!(find(&list, "deployments/status")["kind"], "Deployment");
        assert!(group("apps").is_some());
        assert!(group("batch").is_none());
    }
}
