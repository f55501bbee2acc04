//! Makes sure what every cluster has exists, as kube-apiserver does at start: the built-in namespaces and the
//! default RBAC roles and bindings (`cluster-admin`, `admin`, `edit`, `view`, discovery for everyone).

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

/// Creates each namespace of [`SYSTEM_NAMESPACES`] and each default RBAC object that is missing, retrying every `retry` while the store does
/// not answer, until done (then `done` turns true) or `shutdown` turns true.
pub async fn ensure_defaults(
    objects: Objects,
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
                // Existing defaults are left as they are: an operator may have changed them on purpose.
                Err(e) if e.reason == Reason::AlreadyExists => break,
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
    done.store(true, Ordering::Release);
}
