//! Makes sure the namespaces every cluster has exist, as kube-apiserver does at start.

use std::time::Duration;

use navarch_bus::api::admission::FieldValidation;
use navarch_bus::api::{resource, Objects, Reason};
use serde_json::json;
use tokio::sync::watch;

/// The namespaces kube-apiserver creates.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates each namespace of [`SYSTEM_NAMESPACES`] that is missing, retrying every `retry` while the store does
/// not answer, until done or `shutdown` turns true.
pub async fn ensure_namespaces(
    objects: Objects,
    retry: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(info) = resource::by_kind("v1", "Namespace") else {
        tracing::error!("no Namespace kind in the registry; built-in namespaces not created");
        return;
    };
    for name in SYSTEM_NAMESPACES {
        loop {
            let namespace =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            match objects
                .create(info, None, namespace, FieldValidation::Strict)
                .await
            {
                Ok(_) => {
                    tracing::info!(namespace = name, "created built-in namespace");
                    break;
                }
                Err(e) if e.reason == Reason::AlreadyExists => break,
                Err(e) => {
                    tracing::debug!(namespace = name, error = %e, "cannot create built-in namespace yet; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(retry) => {}
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                }
            }
        }
    }
}
