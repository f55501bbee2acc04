//! Reads the ConfigMaps and Secrets a pod names from the store (Secrets decrypted by the agent's [`Objects`] when
//! it holds the cluster's encryption keys).

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use navarch_bus::api::{resource, Objects, Reason};
use serde::de::DeserializeOwned;

use super::config::{self, ConfigError, Sources};

/// Every ConfigMap and Secret `pod` refers to, `None` for those that do not exist. A store that cannot be read
/// is an error (the container waits and is tried again).
pub async fn fetch(objects: &Objects, pod: &Pod) -> Result<Sources, ConfigError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let (maps, secrets) = config::references(pod);
    let mut sources = Sources::default();
    for name in maps {
        let found = get::<ConfigMap>(objects, ns, &name).await?;
        sources.config_maps.insert(name, found);
    }
    for name in secrets {
        let found = get::<Secret>(objects, ns, &name).await?;
        sources.secrets.insert(name, found);
    }
    Ok(sources)
}

async fn get<K>(objects: &Objects, ns: &str, name: &str) -> Result<Option<K>, ConfigError>
where
    K: k8s_openapi::Resource + DeserializeOwned,
{
    let kind = K::KIND;
    match objects.get(resource::of::<K>(), Some(ns), name).await {
        Ok(value) => serde_json::from_value(value)
            .map(Some)
            .map_err(|e| ConfigError(format!("cannot read {kind} {ns}/{name}: {e}"))),
        Err(e) if e.reason == Reason::NotFound => Ok(None),
        Err(e) => Err(ConfigError(format!("cannot read {kind} {ns}/{name}: {e}"))),
    }
}
