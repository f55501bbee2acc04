//! RBAC authorization: may this user do what this request asks, given the Roles, ClusterRoles and their bindings,
//! decided exactly as kube-apiserver's RBAC authorizer decides it. Pure: no I/O, no clock; the caller hands it the
//! objects (from its informers) and the request.
//!
//! - `attributes`: what a request asks ([`attributes()`]) and the Forbidden message that names it.
//! - `rules`: one rule against one request, one subject against one user.
//! - `aggregation`: ClusterRoles that aggregate others by label.
//! - `bootstrap`: the default roles and bindings kube-apiserver creates.
//! - `escalation`: no one grants more than they hold (Roles and bindings are checked against the writer's rules).

mod aggregation;
mod attributes;
mod bootstrap;
pub mod escalation;
mod rules;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use attributes::quote;
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, NonResourceRule, ResourceAttributes, ResourceRule,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

pub use aggregation::aggregate;
pub use attributes::{
    attributes, forbidden_message, forbidden_message_with_reason, Attributes, ResourceRequest,
};
pub use bootstrap::bootstrap_policy;

/// The group whose members may do anything, whatever the bindings say (kube-apiserver's privileged group).
pub const PRIVILEGED_GROUP: &str = "system:masters";

/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// Service account users are named `system:serviceaccount:NAMESPACE:NAME`.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// Who is asking, as the authenticator established it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name (`alice`, `system:serviceaccount:ns:sa`).
    pub name: String,
    /// A stable id, when the authenticator knows one.
    pub uid: String,
    /// The groups, `system:authenticated` included once authenticated.
    pub groups: Vec<String>,
}

/// The answer to one authorization question.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// Why, in kube-apiserver's words: the binding that allowed it (`RBAC: allowed by ClusterRoleBinding ...`),
    /// or on a denial the bindings that could not be evaluated (`RBAC: clusterrole... "x" not found`), empty when
    /// there is nothing to say (as for a plain denial, or a member of `system:masters`).
    pub reason: String,
}

/// The RBAC objects of a cluster, indexed for authorization.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// ClusterRole rules by name, aggregation applied.
    cluster_roles: BTreeMap<String, Vec<PolicyRule>>,
    /// Role rules by (namespace, name).
    roles: BTreeMap<(String, String), Vec<PolicyRule>>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    /// RoleBindings by namespace, each namespace's sorted by name so that decisions and reasons are stable.
    role_bindings: BTreeMap<String, Vec<RoleBinding>>,
}

/// Where a rule came from: the binding, its role and the subject that matched.
struct Grant<'a> {
    /// `ClusterRoleBinding "name"` or `RoleBinding "name/namespace"`.
    binding: String,
    role_ref: &'a RoleRef,
    subject: &'a Subject,
    namespace: &'a str,
}

impl Grant<'_> {
    /// The `String()` of Kubernetes' binding describers, quoted into an allowed decision's reason.
    fn describe(&self) -> String {
        format!(
            "{} of {} {} to {}",
            self.binding,
            self.role_ref.kind,
            quote(&self.role_ref.name),
            rules::describe_subject(self.subject, self.namespace)
        )
    }
}

impl Policy {
    /// Indexes the four kinds. Aggregated ClusterRoles get their rules here, from the given ClusterRoles, so the
    /// answer does not depend on whether an aggregation controller has run.
    pub fn new(
        mut cluster_roles: Vec<ClusterRole>,
        mut cluster_role_bindings: Vec<ClusterRoleBinding>,
        roles: Vec<Role>,
        role_bindings: Vec<RoleBinding>,
    ) -> Self {
        aggregate(&mut cluster_roles);
        let cluster_roles = cluster_roles
            .into_iter()
            .map(|r| {
                (
                    r.metadata.name.unwrap_or_default(),
                    r.rules.unwrap_or_default(),
                )
            })
            .collect();
        let roles = roles
            .into_iter()
            .map(|r| {
                let key = (
                    r.metadata.namespace.unwrap_or_default(),
                    r.metadata.name.unwrap_or_default(),
                );
                (key, r.rules.unwrap_or_default())
            })
            .collect();
        cluster_role_bindings.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let mut by_namespace: BTreeMap<String, Vec<RoleBinding>> = BTreeMap::new();
        for binding in role_bindings {
            let namespace = binding.metadata.namespace.clone().unwrap_or_default();
            by_namespace.entry(namespace).or_default().push(binding);
        }
        for bindings in by_namespace.values_mut() {
            bindings.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        }
        Policy {
            cluster_roles,
            roles,
            cluster_role_bindings,
            role_bindings: by_namespace,
        }
    }

    /// May `user` do what `attrs` asks? Members of [`PRIVILEGED_GROUP`] may do anything. Otherwise RBAC is
    /// additive and denies by default: ClusterRoleBindings grant everywhere, RoleBindings only in their namespace,
    /// so a cluster-scoped or non-resource request is decided by ClusterRoleBindings alone.
    pub fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        if user.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
            // kube-apiserver's privileged-group authorizer answers without a reason.
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        let namespace = match attrs {
            Attributes::Resource(r) => r.namespace.as_str(),
            Attributes::NonResource { .. } => "",
        };
        let mut allowed_by = None;
        let errors = self.visit_rules(user, namespace, |grant, rule| {
            let allows = rules::rule_allows(rule, attrs);
            if allows {
                allowed_by = Some(grant.describe());
            }
            allows
        });
        match allowed_by {
            Some(grant) => Decision {
                allowed: true,
                reason: format!("RBAC: allowed by {grant}"),
            },
            None => Decision {
                allowed: false,
                reason: aggregate_errors(&errors),
            },
        }
    }

    /// What `user` may do in `namespace` (cluster-wide grants included), for a SelfSubjectRulesReview
    /// (`kubectl auth can-i --list`). An empty namespace gives the cluster-wide grants alone.
    ///
    /// Non-resource rules are listed only from ClusterRoleBindings: Kubernetes also lists those of ClusterRoles
    /// bound by RoleBindings, though they allow nothing (a non-resource request has no namespace).
    pub fn rules_for(
        &self,
        user: &UserInfo,
        namespace: &str,
    ) -> (Vec<ResourceRule>, Vec<NonResourceRule>) {
        if user.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
            let all = || Some(vec!["*".to_string()]);
            let resource = ResourceRule {
                verbs: vec!["*".to_string()],
                api_groups: all(),
                resources: all(),
                resource_names: None,
            };
            let non_resource = NonResourceRule {
                verbs: vec!["*".to_string()],
                non_resource_urls: all(),
            };
            return (vec![resource], vec![non_resource]);
        }
        let mut resource_rules = Vec::new();
        let mut non_resource_rules = Vec::new();
        // Rules are listed as Kubernetes lists them: one entry per rule, duplicates kept, unreadable bindings
        // skipped (the review's `incomplete` is left to the caller, who sees no error here).
        self.visit_rules(user, namespace, |grant, rule| {
            let non_empty = |v: &Option<Vec<String>>| v.clone().filter(|v| !v.is_empty());
            if non_empty(&rule.resources).is_some() {
                resource_rules.push(ResourceRule {
                    verbs: rule.verbs.clone(),
                    api_groups: non_empty(&rule.api_groups),
                    resources: non_empty(&rule.resources),
                    resource_names: non_empty(&rule.resource_names),
                });
            }
            if non_empty(&rule.non_resource_urls).is_some() && grant.namespace.is_empty() {
                non_resource_rules.push(NonResourceRule {
                    verbs: rule.verbs.clone(),
                    non_resource_urls: non_empty(&rule.non_resource_urls),
                });
            }
            false
        });
        (resource_rules, non_resource_rules)
    }

    /// The decision for a SelfSubjectAccessReview's attributes (exactly one of the two is expected; the handler
    /// refuses other reviews with 422, as Kubernetes' validation does, and this denies them).
    pub fn authorize_review(
        &self,
        user: &UserInfo,
        resource: Option<&ResourceAttributes>,
        non_resource: Option<&NonResourceAttributes>,
    ) -> Decision {
        match (resource, non_resource) {
            (Some(r), None) => self.authorize(user, &review_attributes(r)),
            (None, Some(n)) => self.authorize(
                user,
                &Attributes::NonResource {
                    verb: n.verb.clone().unwrap_or_default(),
                    path: n.path.clone().unwrap_or_default(),
                },
            ),
            _ => Decision {
                allowed: false,
                reason:
                    "exactly one of nonResourceAttributes or resourceAttributes must be specified"
                        .to_string(),
            },
        }
    }

    /// Calls `visit` on every rule granted to `user` for requests in `namespace` (empty: cluster-wide grants
    /// only), ClusterRoleBindings first, until it returns true; returns the errors of bindings whose role could
    /// not be found (Kubernetes' `VisitRulesFor`). A binding grants through the first of its subjects that names
    /// the user.
    fn visit_rules<'a>(
        &'a self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(&Grant<'_>, &'a PolicyRule) -> bool,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        for binding in &self.cluster_role_bindings {
            let Some(subject) =
                subjects(&binding.subjects).find(|s| rules::applies_to(s, user, ""))
            else {
                continue;
            };
            let grant = Grant {
                binding: format!(
                    "ClusterRoleBinding {}",
                    quote(binding.metadata.name.as_deref().unwrap_or_default())
                ),
                role_ref: &binding.role_ref,
                subject,
                namespace: "",
            };
            match self.role_rules(&binding.role_ref, "") {
                Ok(rules) => {
                    if rules.iter().any(|rule| visit(&grant, rule)) {
                        return errors;
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if namespace.is_empty() {
            return errors;
        }
        for binding in self.role_bindings.get(namespace).into_iter().flatten() {
            let Some(subject) =
                subjects(&binding.subjects).find(|s| rules::applies_to(s, user, namespace))
            else {
                continue;
            };
            let name = binding.metadata.name.as_deref().unwrap_or_default();
            let grant = Grant {
                binding: format!("RoleBinding {}", quote(&format!("{name}/{namespace}"))),
                role_ref: &binding.role_ref,
                subject,
                namespace,
            };
            match self.role_rules(&binding.role_ref, namespace) {
                Ok(rules) => {
                    if rules.iter().any(|rule| visit(&grant, rule)) {
                        return errors;
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        errors
    }

    /// Every rule granted to `user` for requests in `namespace` (empty: cluster-wide grants only), for the
    /// escalation check (`GetRoleReferenceRules` of every applying binding, as `ConfirmNoEscalation` gathers them).
    pub fn granted_rules(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        let mut granted = Vec::new();
        self.visit_rules(user, namespace, |_, rule| {
            granted.push(rule.clone());
            false
        });
        granted
    }

    /// The rules of the role `role_ref` names, as a binding in `namespace` (empty: a ClusterRoleBinding) sees
    /// them; an error names a role that does not exist.
    pub fn referenced_rules(
        &self,
        role_ref: &RoleRef,
        namespace: &str,
    ) -> Result<Vec<PolicyRule>, String> {
        self.role_rules(role_ref, namespace)
            .map(<[PolicyRule]>::to_vec)
    }

    /// The rules a role reference names (`GetRoleReferenceRules`): a Role is looked up in the binding's namespace,
    /// which a ClusterRoleBinding does not have, so a ClusterRoleBinding to a Role finds nothing.
    fn role_rules(&self, role_ref: &RoleRef, namespace: &str) -> Result<&[PolicyRule], String> {
        let found = match role_ref.kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&role_ref.name),
            "Role" if !namespace.is_empty() => self
                .roles
                .get(&(namespace.to_string(), role_ref.name.clone())),
            "Role" => None,
            other => return Err(format!("unsupported role reference kind: {}", quote(other))),
        };
        found.map(Vec::as_slice).ok_or_else(|| {
            format!(
                "{}.rbac.authorization.k8s.io {} not found",
                role_ref.kind.to_lowercase(),
                quote(&role_ref.name)
            )
        })
    }
}

fn subjects(subjects: &Option<Vec<Subject>>) -> impl Iterator<Item = &Subject> {
    subjects.iter().flatten()
}

/// A SelfSubjectAccessReview's resource attributes as request attributes (`ResourceAttributesFrom`); an empty
/// version means any.
fn review_attributes(r: &ResourceAttributes) -> Attributes {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let version = text(&r.version);
    Attributes::Resource(ResourceRequest {
        verb: text(&r.verb),
        api_group: text(&r.group),
        api_version: if version.is_empty() {
            "*".to_string()
        } else {
            version
        },
        resource: text(&r.resource),
        subresource: text(&r.subresource),
        namespace: text(&r.namespace),
        name: text(&r.name),
    })
}

/// A denial's reason: `RBAC: ` and the errors met, printed like apimachinery's error aggregate (one error alone,
/// several in brackets, duplicates once).
fn aggregate_errors(errors: &[String]) -> String {
    let mut unique: Vec<&str> = Vec::new();
    for e in errors {
        if !unique.contains(&e.as_str()) {
            unique.push(e);
        }
    }
    match unique.as_slice() {
        [] => String::new(),
        [one] => format!("RBAC: {one}"),
        many => format!("RBAC: [{}]", many.join(", ")),
    }
}
