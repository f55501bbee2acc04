//! Role, ClusterRole, RoleBinding and ClusterRoleBinding: rule shape, role references and subjects, as
//! kube-apiserver's rbac validation checks them. What they grant is the authorizer's business.

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};

use crate::api::validate::{self, Errors};

/// The API group of RBAC objects, which role references and user/group subjects name.
pub(crate) const GROUP: &str = "rbac.authorization.k8s.io";

/// Checks the rules of a Role (`namespaced`: no non-resource URLs) or ClusterRole.
pub(crate) fn rules(errors: &mut Errors, rules: &[PolicyRule], namespaced: bool) {
    for (i, rule) in rules.iter().enumerate() {
        let field = format!("rules[{i}]");
        if rule.verbs.is_empty() {
            errors.required(
                &format!("{field}.verbs"),
                "verbs must contain at least one value",
            );
        }
        let urls = rule.non_resource_urls.as_deref().unwrap_or_default();
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        if !urls.is_empty() {
            if namespaced {
                errors.invalid(
                    &format!("{field}.nonResourceURLs"),
                    format!("{urls:?}"),
                    "namespaced rules cannot apply to non-resource URLs",
                );
            }
            if !groups.is_empty() || !resources.is_empty() {
                errors.invalid(
                    &format!("{field}.nonResourceURLs"),
                    format!("{urls:?}"),
                    "rules cannot apply to both regular resources and non-resource URLs",
                );
            }
            continue;
        }
        if groups.is_empty() {
            errors.required(
                &format!("{field}.apiGroups"),
                "resource rules must supply at least one api group",
            );
        }
        if resources.is_empty() {
            errors.required(
                &format!("{field}.resources"),
                "resource rules must supply at least one resource",
            );
        }
    }
}

/// Defaults subjects' API groups (User and Group belong to RBAC's) and checks a binding: its role reference
/// (`cluster`: a ClusterRoleBinding, which may only name a ClusterRole), its subjects, and that the reference does
/// not change (`old`).
pub(crate) fn binding(
    errors: &mut Errors,
    role_ref: &RoleRef,
    subjects: &mut [Subject],
    old: Option<&RoleRef>,
    cluster: bool,
) {
    if role_ref.api_group != GROUP {
        errors.not_supported("roleRef.apiGroup", &role_ref.api_group, &[GROUP]);
    }
    let kinds: &[&str] = if cluster {
        &["ClusterRole"]
    } else {
        &["ClusterRole", "Role"]
    };
    if !kinds.contains(&role_ref.kind.as_str()) {
        errors.not_supported("roleRef.kind", &role_ref.kind, kinds);
    }
    if role_ref.name.is_empty() {
        errors.required("roleRef.name", "");
    }
    if old.is_some_and(|old| old != role_ref) {
        errors.invalid("roleRef", "", "cannot change roleRef");
    }
    for (i, subject) in subjects.iter_mut().enumerate() {
        let field = format!("subjects[{i}]");
        if subject.name.is_empty() {
            errors.required(&format!("{field}.name"), "");
        }
        match subject.kind.as_str() {
            "ServiceAccount" => {
                if subject.api_group.as_deref().is_some_and(|g| !g.is_empty()) {
                    errors.not_supported(
                        &format!("{field}.apiGroup"),
                        subject.api_group.as_deref().unwrap_or_default(),
                        &[""],
                    );
                }
                if !subject.name.is_empty() {
                    validate::name(errors, &format!("{field}.name"), &subject.name, false);
                }
                if cluster && subject.namespace.as_deref().unwrap_or("").is_empty() {
                    errors.required(&format!("{field}.namespace"), "");
                }
            }
            "User" | "Group" => {
                let group = subject.api_group.get_or_insert_with(|| GROUP.into());
                if group != GROUP {
                    errors.not_supported(&format!("{field}.apiGroup"), group, &[GROUP]);
                }
            }
            other => errors.not_supported(
                &format!("{field}.kind"),
                other,
                &["Group", "ServiceAccount", "User"],
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_need_verbs_groups_and_resources() {
        let rules_json = json!([
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            {"verbs": [], "apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["get"], "resources": ["pods"]},
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}
        ]);
        let list: Vec<PolicyRule> = serde_json::from_value(rules_json).unwrap();
        let mut errors = Errors::default();
        rules(&mut errors, &list, true);
        let fields: Vec<&str> = errors.0.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "rules[1].verbs",
                "rules[2].apiGroups",
                "rules[3].nonResourceURLs"
            ]
        );
        let mut errors = Errors::default();
        rules(&mut errors, &list[3..], false);
        assert!(errors.0.is_empty());
    }

    #[test]
    fn bindings_check_the_reference_and_subjects() {
        let role_ref: RoleRef =
            serde_json::from_value(json!({"apiGroup": GROUP, "kind": "Role", "name": "reader"}))
                .unwrap();
        let mut subjects: Vec<Subject> = serde_json::from_value(json!([
            {"kind": "User", "name": "alice"},
            {"kind": "ServiceAccount", "name": "sa"},
            {"kind": "Robot", "name": "r2"}
        ]))
        .unwrap();
        let mut errors = Errors::default();
        binding(&mut errors, &role_ref, &mut subjects, None, true);
        let fields: Vec<&str> = errors.0.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["roleRef.kind", "subjects[1].namespace", "subjects[2].kind"]
        );
        assert_eq!(subjects[0].api_group.as_deref(), Some(GROUP));
        let mut errors = Errors::default();
        let other = RoleRef {
            name: "writer".into(),
            ..role_ref.clone()
        };
        binding(&mut errors, &other, &mut [], Some(&role_ref), false);
        assert_eq!(errors.0[0].field, "roleRef");
    }
}
