//! One rule against one request, one subject against one user: the matching of Kubernetes' `rbac.RuleAllows`,
//! `rbacv1helpers.*Matches` and `appliesToUser`.

use k8s_openapi::api::rbac::v1::{PolicyRule, Subject};

use super::attributes::quote;
use super::{Attributes, UserInfo};

/// Whether `rule` allows the request (`RuleAllows`). A rule without resources never allows a resource request and
/// one without nonResourceURLs never a non-resource one, since every list below must have a match.
pub(super) fn rule_allows(rule: &PolicyRule, attrs: &Attributes) -> bool {
    match attrs {
        Attributes::Resource(r) => {
            let combined = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            verb_matches(rule, &r.verb)
                && api_group_matches(rule, &r.api_group)
                && resource_matches(rule, &combined, &r.subresource)
                && resource_name_matches(rule, &r.name)
        }
        Attributes::NonResource { verb, path } => {
            verb_matches(rule, verb) && non_resource_url_matches(rule, path)
        }
    }
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    list(&rule.api_groups).any(|g| g == "*" || g == group)
}

/// `combined` is `resource/subresource`. A rule's `pods` does not cover `pods/log`: each subresource is its own
/// grant, except that `*/log` grants `log` of every resource.
fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    list(&rule.resources).any(|r| {
        r == "*"
            || r == combined
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

/// No resourceNames means any name; a list of names never covers a request without a name (list, create,
/// deletecollection), since such a request may reach objects outside the list.
fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    let names = rule.resource_names.as_deref().unwrap_or_default();
    names.is_empty() || names.iter().any(|n| n == name)
}

/// A trailing `*` makes a prefix (`/apis/*` covers `/apis/apps/v1`, not `/apis` itself); `*` alone covers all.
fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    list(&rule.non_resource_urls).any(|url| {
        url == "*"
            || url == path
            || url
                .strip_suffix('*')
                .is_some_and(|_| path.starts_with(url.trim_end_matches('*')))
    })
}

fn list(items: &Option<Vec<String>>) -> impl Iterator<Item = &str> {
    items.iter().flatten().map(String::as_str)
}

/// Whether `subject` names `user` (`appliesToUser`). `namespace` is the binding's: a ServiceAccount subject
/// without a namespace means one in it, and in a ClusterRoleBinding (namespace empty) it means nobody.
pub(super) fn applies_to(subject: &Subject, user: &UserInfo, namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => user.name == subject.name,
        "Group" => user.groups.contains(&subject.name),
        "ServiceAccount" => {
            let sa_namespace = match subject.namespace.as_deref() {
                Some(ns) if !ns.is_empty() => ns,
                _ => namespace,
            };
            !sa_namespace.is_empty()
                && user.name
                    == format!(
                        "{}{sa_namespace}:{}",
                        super::SERVICE_ACCOUNT_PREFIX,
                        subject.name
                    )
        }
        _ => false,
    }
}

/// `describeSubject`: `User "alice"`, `ServiceAccount "sa/ns"`.
pub(super) fn describe_subject(subject: &Subject, namespace: &str) -> String {
    if subject.kind == "ServiceAccount" {
        let ns = match subject.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns,
            _ => namespace,
        };
        format!(
            "{} {}",
            subject.kind,
            quote(&format!("{}/{ns}", subject.name))
        )
    } else {
        format!("{} {}", subject.kind, quote(&subject.name))
    }
}
