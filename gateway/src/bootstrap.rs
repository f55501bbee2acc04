//! Makes sure what every cluster has exists, as kube-apiserver does at start: the built-in namespaces and the
//! default RBAC roles and bindings (`cluster-admin`, `admin`, `edit`, `view`, discovery for everyone), and the
//! `kubernetes` Service.
//!
//! Default roles and bindings that exist already are reconciled as kube-apiserver's RBAC bootstrap does, unless
//! annotated `rbac.authorization.kubernetes.io/autoupdate: "false"`: missing rules, subjects, labels and
//! annotations are added (what an operator added is kept), and an aggregated role gets the default aggregation
//! rule back. So a newer Navarch's defaults reach an older cluster, and a damaged default role heals on restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use navarch_bus::api::admission::FieldValidation;
use navarch_bus::api::{resource, Objects, Reason, ResourceInfo};
use serde_json::{json, Value};
use tokio::sync::watch;

/// The namespaces kube-apiserver creates.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates each namespace of [`SYSTEM_NAMESPACES`], each default RBAC object that is missing and the `kubernetes`
/// Service with this gateway (on `listen`) in its Endpoints ([`crate::apiserver_service`]), retrying every `retry` while the store does
/// not answer, until done (then `done` turns true) or `shutdown` turns true.
pub async fn ensure_defaults(
    objects: Objects,
    listen: std::net::SocketAddr,
    retry: Duration,
    mut shutdown: watch::Receiver<bool>,
    done: Arc<AtomicBool>,
) {
    let Some(info) = resource::by_kind("v1", "Namespace") else {
        tracing::error!("no Namespace kind in the registry; built-in namespaces not created");
        return;
    };
    let mut wanted: Vec<(&'static ResourceInfo, Value)> = SYSTEM_NAMESPACES
        .iter()
        .map(|name| {
            (
                info,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            )
        })
        .collect();
    let (roles, bindings) = crate::auth::rbac::bootstrap_policy();
    for object in roles.iter().filter_map(|r| serde_json::to_value(r).ok()) {
        if let Some(info) = resource::by_kind("rbac.authorization.k8s.io/v1", "ClusterRole") {
            wanted.push((info, object));
        }
    }
    for object in bindings.iter().filter_map(|b| serde_json::to_value(b).ok()) {
        if let Some(info) = resource::by_kind("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
        {
            wanted.push((info, object));
        }
    }
    for (info, object) in wanted {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        loop {
            match objects
                .create(info, None, object.clone(), FieldValidation::Strict)
                .await
            {
                Ok(_) => {
                    tracing::info!(kind = info.kind, name, "created built-in object");
                    break;
                }
                Err(e) if e.reason == Reason::AlreadyExists && info.kind == "Namespace" => break,
                Err(e) if e.reason == Reason::AlreadyExists => {
                    match reconcile_existing(&objects, info, &name, &object).await {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::debug!(kind = info.kind, name, error = %e, "cannot reconcile built-in object yet; retrying");
                            tokio::select! {
                                _ = tokio::time::sleep(retry) => {}
                                _ = shutdown.wait_for(|stop| *stop) => return,
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(kind = info.kind, name, error = %e, "cannot create built-in object yet; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(retry) => {}
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                }
            }
        }
    }
    if !crate::apiserver_service::ensure(&objects, listen, retry, &mut shutdown).await {
        return;
    }
    done.store(true, Ordering::Release);
}

/// The annotation that lets an operator keep a default role or binding as they changed it.
const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

/// Brings the stored default `name` up to `default` (see the module's description); a concurrent change makes the
/// write conflict and the caller retry.
async fn reconcile_existing(
    objects: &Objects,
    info: &'static ResourceInfo,
    name: &str,
    default: &Value,
) -> Result<(), navarch_bus::api::ApiError> {
    let existing = objects.get(info, None, name).await?;
    let Some(reconciled) = reconcile(&existing, default) else {
        return Ok(());
    };
    objects
        .update(
            info,
            None,
            name,
            reconciled,
            navarch_bus::api::admission::Part::Main,
            FieldValidation::Strict,
        )
        .await?;
    tracing::info!(
        kind = info.kind,
        name,
        "reconciled built-in object with the defaults"
    );
    Ok(())
}

/// The stored object with what the default has and it lacks (rules, subjects, labels, annotations, the aggregation
/// rule), or None when nothing is missing or the operator opted out. Pure.
pub fn reconcile(existing: &Value, default: &Value) -> Option<Value> {
    if existing["metadata"]["annotations"][AUTOUPDATE] == "false" {
        return None;
    }
    let mut updated = existing.clone();
    for map in ["labels", "annotations"] {
        if let Some(wanted) = default["metadata"][map].as_object() {
            for (key, value) in wanted {
                if updated["metadata"][map].get(key).is_none() {
                    if !updated["metadata"][map].is_object() {
                        updated["metadata"][map] = json!({});
                    }
                    updated["metadata"][map][key] = value.clone();
                }
            }
        }
    }
    for list in ["rules", "subjects"] {
        if let Some(wanted) = default[list].as_array() {
            let have = updated[list].as_array().cloned().unwrap_or_default();
            let missing: Vec<Value> = wanted
                .iter()
                .filter(|w| !have.contains(w))
                .cloned()
                .collect();
            if !missing.is_empty() {
                updated[list] = Value::Array(have.into_iter().chain(missing).collect());
            }
        }
    }
    if default.get("aggregationRule").is_some()
        && updated["aggregationRule"] != default["aggregationRule"]
    {
        updated["aggregationRule"] = default["aggregationRule"].clone();
    }
    (updated != *existing).then_some(updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(rules: Value, annotations: Value) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "view", "resourceVersion": "7", "annotations": annotations}, "rules": rules})
    }

    #[test]
    fn missing_rules_and_annotations_are_added_and_extras_kept() {
        let default = role(
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
            json!({AUTOUPDATE: "true"}),
        );
        let stored = role(
            json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]),
            json!({"team": "ops"}),
        );
        let reconciled = reconcile(&stored, &default).expect("a change");
        assert_eq!(
            reconciled["rules"],
            json!([
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
            ])
        );
        assert_eq!(
            reconciled["metadata"]["annotations"],
            json!({"team": "ops", AUTOUPDATE: "true"})
        );
        assert_eq!(
            reconciled["metadata"]["resourceVersion"], "7",
            "the write is conditional on what was read"
        );
        assert_eq!(
            reconcile(&reconciled, &default),
            None,
            "reconciled once, nothing more to do"
        );
    }

    #[test]
    fn autoupdate_false_keeps_the_operators_version() {
        let default = role(
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
            json!({}),
        );
        let stored = role(json!([]), json!({AUTOUPDATE: "false"}));
        assert_eq!(reconcile(&stored, &default), None);
    }

    #[test]
    fn bindings_get_missing_subjects() {
        let binding = |subjects: Value| {
            json!({"metadata": {"name": "system:discovery"}, "roleRef": {"kind": "ClusterRole", "name": "system:discovery"},
                   "subjects": subjects})
        };
        let everyone = json!({"kind": "Group", "name": "system:authenticated", "apiGroup": "rbac.authorization.k8s.io"});
        let reconciled =
            reconcile(&binding(json!([])), &binding(json!([everyone.clone()]))).expect("a change");
        assert_eq!(reconciled["subjects"], json!([everyone]));
    }
}
