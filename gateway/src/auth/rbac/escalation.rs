//! RBAC's escalation prevention: a user may write a Role or ClusterRole only with rules they hold themselves
//! (or with the `escalate` verb on it), and a RoleBinding or ClusterRoleBinding only to a role whose rules they
//! hold (or with the `bind` verb on that role) — so a namespace admin cannot bind `cluster-admin` or write a Role
//! that reads Secrets they cannot read. Kubernetes' `ConfirmNoEscalation`, `BindingAuthorized`/`EscalationAllowed`
//! and `Covers`, applied to the object as it is about to be stored (after patches and apply).

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};

use super::{Attributes, Policy, ResourceRequest, UserInfo, PRIVILEGED_GROUP};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Why a write is refused: the rules the writer would grant without holding them, in Kubernetes' words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation(pub String);

impl std::fmt::Display for Escalation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn allowed(
    policy: &Policy,
    user: &UserInfo,
    verb: &str,
    resource: &str,
    namespace: &str,
    name: &str,
) -> bool {
    policy
        .authorize(
            user,
            &Attributes::Resource(ResourceRequest {
                verb: verb.to_string(),
                api_group: RBAC_GROUP.to_string(),
                api_version: "v1".to_string(),
                resource: resource.to_string(),
                subresource: String::new(),
                namespace: namespace.to_string(),
                name: name.to_string(),
            }),
        )
        .allowed
}

/// May `user` store a Role (`namespace` non-empty) or ClusterRole named `name` with `rules`?
pub fn check_role(
    policy: &Policy,
    user: &UserInfo,
    namespace: &str,
    name: &str,
    rules: &[PolicyRule],
) -> Result<(), Escalation> {
    if user.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
        return Ok(());
    }
    let resource = if namespace.is_empty() {
        "clusterroles"
    } else {
        "roles"
    };
    if allowed(policy, user, "escalate", resource, namespace, name) {
        return Ok(());
    }
    let missing = uncovered(&policy.granted_rules(user, namespace), rules);
    if missing.is_empty() {
        return Ok(());
    }
    let scope = if namespace.is_empty() {
        String::new()
    } else {
        format!(" in the namespace {namespace:?}")
    };
    Err(Escalation(format!(
        "user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held{scope}:\n{}",
        user.name,
        user.groups,
        missing.join("\n")
    )))
}

/// May `user` store a RoleBinding (`namespace` non-empty) or ClusterRoleBinding to `role_ref`?
pub fn check_binding(
    policy: &Policy,
    user: &UserInfo,
    namespace: &str,
    role_ref: &RoleRef,
) -> Result<(), Escalation> {
    if user.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
        return Ok(());
    }
    // `bind` on the role: on a ClusterRole it is a cluster-scoped grant unless given by a RoleBinding in the
    // binding's namespace, which the namespace of the check expresses.
    let resource = if role_ref.kind == "ClusterRole" {
        "clusterroles"
    } else {
        "roles"
    };
    if allowed(policy, user, "bind", resource, namespace, &role_ref.name) {
        return Ok(());
    }
    let rules = policy
        .referenced_rules(role_ref, namespace)
        .map_err(Escalation)?;
    let missing = uncovered(&policy.granted_rules(user, namespace), &rules);
    if missing.is_empty() {
        return Ok(());
    }
    Err(Escalation(format!(
        "user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        user.groups,
        missing.join("\n")
    )))
}

/// The parts of `wanted` that no rule of `held` covers, one line per atomic rule (Kubernetes' `Covers`:
/// each rule is broken into one verb × group × resource × name, or one verb × URL, and each part must be
/// covered by some held rule; a `*` wanted is covered only by a `*` held).
pub fn uncovered(held: &[PolicyRule], wanted: &[PolicyRule]) -> Vec<String> {
    let mut missing = Vec::new();
    for rule in wanted {
        for part in break_down(rule) {
            if !held.iter().any(|h| covers(h, &part)) {
                missing.push(describe(&part));
            }
        }
    }
    missing
}

fn list(items: &Option<Vec<String>>) -> &[String] {
    items.as_deref().unwrap_or_default()
}

fn one(item: &str) -> Option<Vec<String>> {
    Some(vec![item.to_string()])
}

/// One rule per verb × group × resource × resourceName and per verb × nonResourceURL.
fn break_down(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut parts = Vec::new();
    for verb in &rule.verbs {
        for group in list(&rule.api_groups) {
            for resource in list(&rule.resources) {
                let names = list(&rule.resource_names);
                if names.is_empty() {
                    parts.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: one(group),
                        resources: one(resource),
                        ..PolicyRule::default()
                    });
                }
                for name in names {
                    parts.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: one(group),
                        resources: one(resource),
                        resource_names: one(name),
                        ..PolicyRule::default()
                    });
                }
            }
        }
        for url in list(&rule.non_resource_urls) {
            parts.push(PolicyRule {
                verbs: vec![verb.clone()],
                non_resource_urls: one(url),
                ..PolicyRule::default()
            });
        }
    }
    parts
}

fn has(held: &[String], item: &str) -> bool {
    held.iter().any(|h| h == "*" || h == item)
}

/// Whether `held` covers the atomic rule `part`.
fn covers(held: &PolicyRule, part: &PolicyRule) -> bool {
    let verb = part.verbs.first().map(String::as_str).unwrap_or_default();
    if !has(&held.verbs, verb) {
        return false;
    }
    if let Some(url) = list(&part.non_resource_urls).first() {
        return list(&held.non_resource_urls).iter().any(|h| {
            h == "*"
                || h == url
                || h.strip_suffix('*')
                    .is_some_and(|prefix| url.starts_with(prefix))
        });
    }
    let group = list(&part.api_groups)
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    let resource = list(&part.resources)
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    let resource_ok = list(&held.resources).iter().any(|h| {
        h == "*"
            || h == resource
            || (h.starts_with("*/")
                && resource
                    .split_once('/')
                    .is_some_and(|(_, sub)| h[2..] == *sub))
    });
    let names = list(&held.resource_names);
    let name_ok = names.is_empty()
        || list(&part.resource_names)
            .first()
            .is_some_and(|n| names.contains(n));
    has(list(&held.api_groups), group) && resource_ok && name_ok
}

/// `{APIGroups:["apps"], Resources:["deployments"], Verbs:["create"]}`, as Kubernetes prints a missing rule.
fn describe(part: &PolicyRule) -> String {
    let quoted = |v: &[String]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut fields = Vec::new();
    if !list(&part.api_groups).is_empty() {
        fields.push(format!("APIGroups:[{}]", quoted(list(&part.api_groups))));
    }
    if !list(&part.resources).is_empty() {
        fields.push(format!("Resources:[{}]", quoted(list(&part.resources))));
    }
    if !list(&part.resource_names).is_empty() {
        fields.push(format!(
            "ResourceNames:[{}]",
            quoted(list(&part.resource_names))
        ));
    }
    if !list(&part.non_resource_urls).is_empty() {
        fields.push(format!(
            "NonResourceURLs:[{}]",
            quoted(list(&part.non_resource_urls))
        ));
    }
    fields.push(format!("Verbs:[{}]", quoted(&part.verbs)));
    format!("{{{}}}", fields.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding, Subject};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        let v = |s: &[&str]| Some(s.iter().map(|x| x.to_string()).collect());
        PolicyRule {
            verbs: verbs.iter().map(|x| x.to_string()).collect(),
            api_groups: v(groups),
            resources: v(resources),
            ..PolicyRule::default()
        }
    }

    fn meta(namespace: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: (!namespace.is_empty()).then(|| namespace.into()),
            ..ObjectMeta::default()
        }
    }

    fn role_ref(kind: &str, name: &str) -> RoleRef {
        RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    fn alice() -> UserInfo {
        UserInfo {
            name: "alice".into(),
            uid: "1".into(),
            groups: vec!["system:authenticated".into()],
        }
    }

    /// alice holds, in namespace a: read pods, manage roles and rolebindings; cluster-admin exists.
    fn policy(extra: Vec<PolicyRule>) -> Policy {
        let mut rules = vec![
            rule(&["get", "list"], &[""], &["pods"]),
            // Not `*`: that would include `escalate` and `bind`.
            rule(
                &["create", "update", "patch"],
                &[RBAC_GROUP],
                &["roles", "rolebindings"],
            ),
        ];
        rules.extend(extra);
        Policy::new(
            vec![
                ClusterRole {
                    metadata: meta("", "cluster-admin"),
                    rules: Some(vec![rule(&["*"], &["*"], &["*"])]),
                    ..ClusterRole::default()
                },
                ClusterRole {
                    metadata: meta("", "pod-viewer"),
                    rules: Some(vec![rule(&["get"], &[""], &["pods"])]),
                    ..ClusterRole::default()
                },
            ],
            vec![],
            vec![Role {
                metadata: meta("a", "alice-role"),
                rules: Some(rules),
            }],
            vec![RoleBinding {
                metadata: meta("a", "alice"),
                role_ref: role_ref("Role", "alice-role"),
                subjects: Some(vec![Subject {
                    kind: "User".into(),
                    name: "alice".into(),
                    ..Subject::default()
                }]),
            }],
        )
    }

    #[test]
    fn a_role_with_only_held_rules_may_be_written() {
        let p = policy(vec![]);
        assert_eq!(
            check_role(&p, &alice(), "a", "r", &[rule(&["get"], &[""], &["pods"])]),
            Ok(())
        );
        let err = check_role(
            &p,
            &alice(),
            "a",
            "r",
            &[rule(&["get", "delete"], &[""], &["pods", "secrets"])],
        )
        .unwrap_err();
        assert!(
            err.0
                .contains(r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}"#),
            "{err}"
        );
        assert!(
            err.0.contains(r#"Resources:["secrets"], Verbs:["get"]"#),
            "{err}"
        );
        assert!(
            !err.0.contains(r#"Resources:["pods"], Verbs:["get"]"#),
            "{err}"
        );
        // Held in a only: the same Role in b, or as a ClusterRole, is an escalation.
        assert!(check_role(&p, &alice(), "b", "r", &[rule(&["get"], &[""], &["pods"])]).is_err());
        assert!(check_role(&p, &alice(), "", "r", &[rule(&["get"], &[""], &["pods"])]).is_err());
        // A wildcard wanted needs a wildcard held.
        assert!(check_role(&p, &alice(), "a", "r", &[rule(&["*"], &[""], &["pods"])]).is_err());
    }

    #[test]
    fn bindings_need_the_roles_rules_or_bind() {
        let p = policy(vec![]);
        assert_eq!(
            check_binding(&p, &alice(), "a", &role_ref("ClusterRole", "pod-viewer")),
            Ok(())
        );
        let err = check_binding(&p, &alice(), "a", &role_ref("ClusterRole", "cluster-admin"))
            .unwrap_err();
        assert!(err.0.contains("not currently held"), "{err}");
        assert!(check_binding(&p, &alice(), "a", &role_ref("ClusterRole", "missing")).is_err());
        // `bind` on that ClusterRole by name lets alice bind it without holding its rules.
        let mut bind = rule(&["bind"], &[RBAC_GROUP], &["clusterroles"]);
        bind.resource_names = Some(vec!["cluster-admin".into()]);
        let p = policy(vec![bind]);
        assert_eq!(
            check_binding(&p, &alice(), "a", &role_ref("ClusterRole", "cluster-admin")),
            Ok(())
        );
    }

    #[test]
    fn escalate_and_masters_skip_the_check() {
        let p = policy(vec![rule(&["escalate"], &[RBAC_GROUP], &["roles"])]);
        assert_eq!(
            check_role(&p, &alice(), "a", "r", &[rule(&["*"], &["*"], &["*"])]),
            Ok(())
        );
        let admin = UserInfo {
            groups: vec![PRIVILEGED_GROUP.into()],
            ..alice()
        };
        let empty = Policy::new(vec![], vec![], vec![], vec![]);
        assert_eq!(
            check_role(&empty, &admin, "", "x", &[rule(&["*"], &["*"], &["*"])]),
            Ok(())
        );
        assert_eq!(
            check_binding(&empty, &admin, "", &role_ref("ClusterRole", "nothing")),
            Ok(())
        );
    }

    #[test]
    fn coverage_follows_names_subresources_and_urls() {
        let mut named = rule(&["get"], &[""], &["configmaps"]);
        named.resource_names = Some(vec!["one".into()]);
        let mut wants_named = named.clone();
        assert!(uncovered(std::slice::from_ref(&named), &[wants_named.clone()]).is_empty());
        wants_named.resource_names = Some(vec!["one".into(), "two".into()]);
        assert_eq!(
            uncovered(std::slice::from_ref(&named), &[wants_named]).len(),
            1
        );
        // A named grant does not cover every name.
        assert_eq!(
            uncovered(&[named], &[rule(&["get"], &[""], &["configmaps"])]).len(),
            1
        );
        assert!(uncovered(
            &[rule(&["get"], &["*"], &["*/scale"])],
            &[rule(&["get"], &["apps"], &["deployments/scale"])]
        )
        .is_empty());
        assert_eq!(
            uncovered(
                &[rule(&["get"], &[""], &["pods"])],
                &[rule(&["get"], &[""], &["pods/log"])]
            )
            .len(),
            1
        );
        let url = |u: &str| PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: Some(vec![u.into()]),
            ..PolicyRule::default()
        };
        assert!(uncovered(&[url("/apis/*")], &[url("/apis/apps")]).is_empty());
        assert_eq!(uncovered(&[url("/apis")], &[url("/metrics")]).len(), 1);
    }
}
