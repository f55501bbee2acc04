//! The default ClusterRoles and ClusterRoleBindings kube-apiserver creates on start (Kubernetes'
//! `bootstrappolicy`), trimmed to the resources Navarch serves.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::{aggregate, AUTHENTICATED_GROUP, PRIVILEGED_GROUP};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// The default ClusterRoles and their ClusterRoleBindings, as kube-apiserver creates them: each labelled
/// `kubernetes.io/bootstrapping: rbac-defaults` and annotated `rbac.authorization.kubernetes.io/autoupdate: "true"`.
///
/// `admin`, `edit` and `view` are built as in Kubernetes, by aggregation of `system:aggregate-to-{admin,edit,view}`
/// (so that a cluster's own roles labelled `aggregate-to-view` extend `view`), and returned with their rules
/// already aggregated, as the aggregation controller would have written them. Their rules keep Kubernetes' content
/// for the resources Navarch serves and leave out the rest (replication controllers, jobs, ingresses, `pods/exec`...).
pub fn bootstrap_policy() -> (Vec<ClusterRole>, Vec<ClusterRoleBinding>) {
    let mut roles = vec![
        role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])],
        ),
        role(
            "system:discovery",
            &[],
            vec![url_rule(
                &["get"],
                &[
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/version",
                    "/version/",
                    "/openapi",
                    "/openapi/*",
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                ],
            )],
        ),
        role(
            "system:public-info-viewer",
            &[],
            vec![url_rule(
                &["get"],
                &["/livez", "/readyz", "/healthz", "/version", "/version/"],
            )],
        ),
        role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        aggregating("admin", &[], AGGREGATE_TO_ADMIN),
        aggregating("edit", &[AGGREGATE_TO_ADMIN], AGGREGATE_TO_EDIT),
        aggregating("view", &[AGGREGATE_TO_EDIT], AGGREGATE_TO_VIEW),
        role(
            "system:aggregate-to-admin",
            &[AGGREGATE_TO_ADMIN],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                ),
                rule(READ_WRITE, &[RBAC_GROUP], &["roles", "rolebindings"]),
            ],
        ),
        role(
            "system:aggregate-to-edit",
            &[AGGREGATE_TO_EDIT],
            edit_rules(),
        ),
        role(
            "system:aggregate-to-view",
            &[AGGREGATE_TO_VIEW],
            view_rules(),
        ),
    ];
    aggregate(&mut roles);
    let bindings = vec![
        binding("cluster-admin", &[PRIVILEGED_GROUP]),
        binding("system:discovery", &[AUTHENTICATED_GROUP]),
        binding("system:basic-user", &[AUTHENTICATED_GROUP]),
        binding(
            "system:public-info-viewer",
            &[AUTHENTICATED_GROUP, "system:unauthenticated"],
        ),
    ];
    (roles, bindings)
}

/// `system:aggregate-to-edit`: writes on what `view` reads, plus reading Secrets, which `view` must not, since
/// a Secret can hold a service account's token and so more power than the reader has.
fn edit_rules() -> Vec<PolicyRule> {
    vec![
        rule(READ, &[""], &["secrets"]),
        rule(&["impersonate"], &[""], &["serviceaccounts"]),
        rule(WRITE, &[""], &["pods"]),
        rule(
            WRITE,
            &[""],
            &[
                "serviceaccounts",
                "services",
                "configmaps",
                "secrets",
                "events",
            ],
        ),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(
            WRITE,
            &["apps"],
            &[
                "deployments",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
            ],
        ),
        rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
        rule(READ_WRITE, &["coordination.k8s.io"], &["leases"]),
    ]
}

/// `system:aggregate-to-view`: reads of everything in a namespace that grants no further power (no Secrets).
fn view_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            READ,
            &[""],
            &[
                "pods",
                "serviceaccounts",
                "services",
                "services/status",
                "endpoints",
                "configmaps",
            ],
        ),
        rule(
            READ,
            &[""],
            &["events", "pods/status", "namespaces/status", "pods/log"],
        ),
        // Reading namespaces at the namespace scope means reading that namespace: a hint of which namespaces one
        // has access to.
        rule(READ, &[""], &["namespaces"]),
        rule(
            READ,
            &["apps"],
            &[
                "deployments",
                "deployments/status",
                "deployments/scale",
                "replicasets",
                "replicasets/status",
                "replicasets/scale",
            ],
        ),
        rule(
            READ,
            &["autoscaling"],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
        ),
    ]
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        ..PolicyRule::default()
    }
}

fn url_rule(verbs: &[&str], urls: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        non_resource_urls: Some(strings(urls)),
        ..PolicyRule::default()
    }
}

/// The metadata every bootstrap object carries; `autoupdate` tells a restarting apiserver it may reconcile the
/// object back to the defaults (an operator sets it to "false" to keep changes).
fn metadata(name: &str, labels: &[&str]) -> ObjectMeta {
    let mut all = BTreeMap::from([(
        "kubernetes.io/bootstrapping".to_string(),
        "rbac-defaults".to_string(),
    )]);
    all.extend(labels.iter().map(|l| (l.to_string(), "true".to_string())));
    ObjectMeta {
        name: Some(name.to_string()),
        labels: Some(all),
        annotations: Some(BTreeMap::from([(
            "rbac.authorization.kubernetes.io/autoupdate".to_string(),
            "true".to_string(),
        )])),
        ..ObjectMeta::default()
    }
}

/// `labels` are `aggregate-to-*` keys, each set to "true".
fn role(name: &str, labels: &[&str], rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: metadata(name, labels),
        rules: Some(rules),
        aggregation_rule: None,
    }
}

fn aggregating(name: &str, labels: &[&str], selects: &str) -> ClusterRole {
    ClusterRole {
        metadata: metadata(name, labels),
        rules: None,
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some(BTreeMap::from([(selects.to_string(), "true".to_string())])),
                match_expressions: None,
            }]),
        }),
    }
}

fn binding(role: &str, groups: &[&str]) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: metadata(role, &[]),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.to_string(),
            kind: "ClusterRole".to_string(),
            name: role.to_string(),
        },
        subjects: Some(
            groups
                .iter()
                .map(|g| Subject {
                    api_group: Some(RBAC_GROUP.to_string()),
                    kind: "Group".to_string(),
                    name: g.to_string(),
                    namespace: None,
                })
                .collect(),
        ),
    }
}
