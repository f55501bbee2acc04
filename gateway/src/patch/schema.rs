//! Patch metadata of the served kinds: how strategic merge patch merges each list (Kubernetes' `patchStrategy` and
//! `patchMergeKey` struct tags, for the fields of Namespace, Pod, Node, Deployment and ReplicaSet, plus Service ports and ServiceAccount
//! secrets; the lists of the other served kinds are atomic).
//!
//! Fields are named by their path of field names from the object root, list indices left out; a rule matches the
//! end of the path. Lists without a rule are atomic: the patch's list replaces the object's.

/// How a list merges under strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch's list replaces the object's (atomic lists, Kubernetes' default).
    Replace,
    /// Lists of objects merged item by item, items identified by this field.
    MergeByKey(&'static str),
    /// Lists of scalars merged as a set (`finalizers`).
    MergeScalars,
}

/// (kind or "" for every kind, path suffix, strategy). The first rule whose suffix ends the path wins.
const RULES: &[(&str, &[&str], ListStrategy)] = &[
    ("", &["metadata", "finalizers"], ListStrategy::MergeScalars),
    (
        "",
        &["metadata", "ownerReferences"],
        ListStrategy::MergeByKey("uid"),
    ),
    (
        "",
        &["containers", "ports"],
        ListStrategy::MergeByKey("containerPort"),
    ),
    (
        "",
        &["initContainers", "ports"],
        ListStrategy::MergeByKey("containerPort"),
    ),
    (
        "",
        &["ephemeralContainers", "ports"],
        ListStrategy::MergeByKey("containerPort"),
    ),
    (
        "Service",
        &["spec", "ports"],
        ListStrategy::MergeByKey("port"),
    ),
    ("", &["containers"], ListStrategy::MergeByKey("name")),
    ("", &["initContainers"], ListStrategy::MergeByKey("name")),
    (
        "",
        &["ephemeralContainers"],
        ListStrategy::MergeByKey("name"),
    ),
    ("", &["env"], ListStrategy::MergeByKey("name")),
    ("", &["volumeMounts"], ListStrategy::MergeByKey("mountPath")),
    (
        "",
        &["volumeDevices"],
        ListStrategy::MergeByKey("devicePath"),
    ),
    ("", &["spec", "volumes"], ListStrategy::MergeByKey("name")),
    ("", &["imagePullSecrets"], ListStrategy::MergeByKey("name")),
    (
        "ServiceAccount",
        &["secrets"],
        ListStrategy::MergeByKey("name"),
    ),
    ("", &["hostAliases"], ListStrategy::MergeByKey("ip")),
    (
        "",
        &["topologySpreadConstraints"],
        ListStrategy::MergeByKey("topologyKey"),
    ),
    ("", &["schedulingGates"], ListStrategy::MergeByKey("name")),
    (
        "",
        &["spec", "resourceClaims"],
        ListStrategy::MergeByKey("name"),
    ),
    (
        "",
        &["resources", "claims"],
        ListStrategy::MergeByKey("name"),
    ),
    (
        "",
        &["status", "conditions"],
        ListStrategy::MergeByKey("type"),
    ),
    (
        "Node",
        &["status", "addresses"],
        ListStrategy::MergeByKey("type"),
    ),
    ("Node", &["spec", "podCIDRs"], ListStrategy::MergeScalars),
    ("Pod", &["status", "podIPs"], ListStrategy::MergeByKey("ip")),
    (
        "Pod",
        &["status", "hostIPs"],
        ListStrategy::MergeByKey("ip"),
    ),
];

/// How the list at `path` (field names from the root) of an object of kind `kind` merges.
pub fn list_strategy<S: AsRef<str>>(kind: &str, path: &[S]) -> ListStrategy {
    RULES
        .iter()
        .find(|(rule_kind, suffix, _)| {
            (rule_kind.is_empty() || *rule_kind == kind)
                && path.len() >= suffix.len()
                && path[path.len() - suffix.len()..]
                    .iter()
                    .zip(suffix.iter())
                    .all(|(a, b)| a.as_ref() == *b)
        })
        .map_or(ListStrategy::Replace, |(_, _, s)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_of_the_served_kinds_merge_on_kubernetes_keys() {
        let d = "Deployment";
        let s = |p: &[&str]| list_strategy(d, p);
        assert_eq!(
            s(&["spec", "template", "spec", "containers"]),
            ListStrategy::MergeByKey("name")
        );
        assert_eq!(
            s(&["spec", "template", "spec", "containers", "ports"]),
            ListStrategy::MergeByKey("containerPort")
        );
        assert_eq!(
            s(&["spec", "template", "spec", "containers", "env"]),
            ListStrategy::MergeByKey("name")
        );
        assert_eq!(
            s(&["spec", "template", "spec", "containers", "volumeMounts"]),
            ListStrategy::MergeByKey("mountPath")
        );
        assert_eq!(
            s(&["spec", "template", "spec", "volumes"]),
            ListStrategy::MergeByKey("name")
        );
        assert_eq!(s(&["metadata", "finalizers"]), ListStrategy::MergeScalars);
        assert_eq!(
            s(&["metadata", "ownerReferences"]),
            ListStrategy::MergeByKey("uid")
        );
        assert_eq!(
            s(&["status", "conditions"]),
            ListStrategy::MergeByKey("type")
        );
        assert_eq!(
            s(&["spec", "template", "spec", "containers", "args"]),
            ListStrategy::Replace
        );
        assert_eq!(
            s(&["spec", "template", "spec", "tolerations"]),
            ListStrategy::Replace
        );
        assert_eq!(
            list_strategy("Service", &["spec", "ports"]),
            ListStrategy::MergeByKey("port")
        );
        assert_eq!(
            list_strategy("Pod", &["spec", "ports"]),
            ListStrategy::Replace
        );
        assert_eq!(
            list_strategy("Node", &["status", "addresses"]),
            ListStrategy::MergeByKey("type")
        );
    }
}
