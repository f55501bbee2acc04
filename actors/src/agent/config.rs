//! What a container is configured with, from its pod and the ConfigMaps and Secrets it names: its environment
//! (`env` with `value` / `valueFrom`, `envFrom`), `$(VAR)` expansion of env values, command and args, and the files
//! of its pod's configMap and secret volumes. Pure: the agent fetches the objects ([`Sources`]) and writes the files.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, KeyToPath, Pod, Secret, Volume};

/// The ConfigMaps and Secrets of the pod's namespace that it names, as read from the store: `None` when absent.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// By name.
    pub config_maps: HashMap<String, Option<ConfigMap>>,
    /// By name.
    pub secrets: HashMap<String, Option<Secret>>,
}

/// Why a container cannot be configured; it waits as `CreateContainerConfigError` with this message (the
/// kubelet's words) and is tried again later. Retryable: the object or key may appear.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The names of the ConfigMaps and Secrets that `pod` refers to (env, envFrom and volumes of every container).
pub fn references(pod: &Pod) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut maps, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    let Some(spec) = pod.spec.as_ref() else {
        return (maps, secrets);
    };
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    for c in containers {
        for e in c.env.iter().flatten() {
            let from = e.value_from.as_ref();
            if let Some(r) = from.and_then(|f| f.config_map_key_ref.as_ref()) {
                maps.insert(r.name.clone());
            }
            if let Some(r) = from.and_then(|f| f.secret_key_ref.as_ref()) {
                secrets.insert(r.name.clone());
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(r) = &e.config_map_ref {
                maps.insert(r.name.clone());
            }
            if let Some(r) = &e.secret_ref {
                secrets.insert(r.name.clone());
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(c) = &v.config_map {
            maps.insert(c.name.clone());
        }
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.insert(s);
        }
    }
    (maps, secrets)
}

/// The pod's IPs, which `fieldRef`s may ask for.
#[derive(Debug, Clone, Default)]
pub struct PodIps {
    /// `status.podIP`.
    pub pod_ip: String,
    /// `status.hostIP`.
    pub host_ip: String,
}

fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

/// A ConfigMap's entries (`data`, then `binaryData` as UTF-8, lossy) by key.
fn config_map_entries(m: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = m
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in m.binary_data.iter().flatten() {
        out.insert(k.clone(), v.0.clone());
    }
    out
}

/// A Secret's entries (`data`; `stringData` too, in case a writer skipped admission) by key.
fn secret_entries(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone().into_bytes());
    }
    out
}

/// Looks up one key of a ConfigMap (`secret` false) or Secret; `Ok(None)` when optional and missing.
fn key_of(
    sources: &Sources,
    ns: &str,
    secret: bool,
    name: &str,
    key: &str,
    optional: bool,
) -> Result<Option<String>, ConfigError> {
    let (kind, lower, entries) = if secret {
        let s = sources.secrets.get(name).cloned().flatten();
        ("Secret", "secret", s.map(|s| secret_entries(&s)))
    } else {
        let m = sources.config_maps.get(name).cloned().flatten();
        ("ConfigMap", "configmap", m.map(|m| config_map_entries(&m)))
    };
    let Some(entries) = entries else {
        return if optional {
            Ok(None)
        } else {
            Err(ConfigError(format!("{lower} \"{name}\" not found")))
        };
    };
    match entries.get(key) {
        Some(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
        None if optional => Ok(None),
        None => Err(ConfigError(format!(
            "couldn't find key {key} in {kind} {ns}/{name}"
        ))),
    }
}

/// The value of a `fieldRef` path, as the kubelet's downward API gives it.
fn field(pod: &Pod, path: &str, ips: &PodIps) -> Result<String, ConfigError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let subscript = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("['"))
            .and_then(|rest| rest.strip_suffix("']"))
    };
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => namespace(pod).to_string(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => ips.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => ips.host_ip.clone(),
        _ => {
            if let Some(k) = subscript("metadata.labels") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(k))
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(k) = subscript("metadata.annotations") {
                meta.annotations
                    .as_ref()
                    .and_then(|a| a.get(k))
                    .cloned()
                    .unwrap_or_default()
            } else {
                return Err(ConfigError(format!("unsupported fieldPath: {path}")));
            }
        }
    };
    Ok(value)
}

/// Whether `name` may be an environment variable's name (the kubelet skips `envFrom` keys that may not).
fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The container's environment, in order (`envFrom` sources, then `env`; later names win), with `$(VAR)` in `env`
/// values expanded against the variables defined before them.
pub fn environment(
    pod: &Pod,
    c: &Container,
    sources: &Sources,
    ips: &PodIps,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = namespace(pod);
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, name: String, value: String| {
        env.retain(|(k, _)| *k != name);
        env.push((name, value));
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let entries = if let Some(r) = &from.config_map_ref {
            match sources.config_maps.get(&r.name).cloned().flatten() {
                Some(m) => config_map_entries(&m),
                None if r.optional == Some(true) => continue,
                None => return Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
            }
        } else if let Some(r) = &from.secret_ref {
            match sources.secrets.get(&r.name).cloned().flatten() {
                Some(s) => secret_entries(&s),
                None if r.optional == Some(true) => continue,
                None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
            }
        } else {
            continue;
        };
        for (k, v) in entries {
            let name = format!("{prefix}{k}");
            if is_env_name(&name) {
                set(&mut env, name, String::from_utf8_lossy(&v).into_owned());
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = match &e.value_from {
            None => {
                let lookup: HashMap<&str, &str> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                expand(e.value.as_deref().unwrap_or_default(), &lookup)
            }
            Some(from) => {
                let resolved = if let Some(r) = &from.config_map_key_ref {
                    key_of(
                        sources,
                        ns,
                        false,
                        &r.name,
                        &r.key,
                        r.optional == Some(true),
                    )?
                } else if let Some(r) = &from.secret_key_ref {
                    key_of(sources, ns, true, &r.name, &r.key, r.optional == Some(true))?
                } else if let Some(r) = &from.field_ref {
                    Some(field(pod, &r.field_path, ips)?)
                } else if let Some(r) = &from.resource_field_ref {
                    Some(resource_field(c, &r.resource)?)
                } else {
                    Some(String::new())
                };
                match resolved {
                    Some(v) => v,
                    None => continue, // optional and missing: the variable is not set
                }
            }
        };
        set(&mut env, e.name.clone(), value);
    }
    Ok(env)
}

/// `limits.cpu` (whole cores, rounded up, as with the default divisor 1) or `limits.memory` (bytes) of `c`;
/// without a limit, `0` (the kubelet would give the node's allocatable).
fn resource_field(c: &Container, resource: &str) -> Result<String, ConfigError> {
    let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
    let get = |name: &str| limits.and_then(|l| l.get(name)).map(|q| q.0.as_str());
    let parsed = crate::runtime::Limits::from_quantities(get("memory"), get("cpu"));
    match resource {
        "limits.memory" => Ok(parsed.memory_bytes.unwrap_or(0).to_string()),
        "limits.cpu" => Ok(parsed
            .cpu_millis
            .map_or(0, |m| m.div_ceil(1000))
            .to_string()),
        _ => Err(ConfigError(format!("unsupported resource: {resource}"))),
    }
}

/// Kubernetes' `$(VAR)` expansion: `$(NAME)` becomes NAME's value when `env` defines it and stays as written when
/// not; `$$` is a literal `$`; any other `$` stays.
pub fn expand(input: &str, env: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(close) => {
                    let name = &inner[..close];
                    match env.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// One file of a configMap or secret volume: its path inside the volume, content and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFile {
    /// Relative path (`items[].path`, else the key).
    pub path: String,
    /// Content.
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

/// The mode files get without `defaultMode`: 0644 (Kubernetes' 420).
const DEFAULT_MODE: u32 = 0o644;

/// Whether `path` is a safe relative path inside a volume (no `..`, not absolute, not empty).
pub fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|p| !p.is_empty() && p != ".." && p != ".")
}

/// The files of a configMap or secret volume of `pod` (None for other kinds). An optional missing object gives no
/// files; a missing required one, or a missing key named in `items` that is not optional, is an error.
pub fn volume_files(
    pod: &Pod,
    v: &Volume,
    sources: &Sources,
) -> Option<Result<Vec<VolumeFile>, ConfigError>> {
    let ns = namespace(pod);
    let (kind, name, entries, items, default_mode, optional) = if let Some(c) = &v.config_map {
        let entries = sources
            .config_maps
            .get(&c.name)
            .cloned()
            .flatten()
            .map(|m| config_map_entries(&m));
        (
            "configmap",
            c.name.clone(),
            entries,
            c.items.clone(),
            c.default_mode,
            c.optional == Some(true),
        )
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let entries = sources
            .secrets
            .get(&name)
            .cloned()
            .flatten()
            .map(|s| secret_entries(&s));
        (
            "secret",
            name,
            entries,
            s.items.clone(),
            s.default_mode,
            s.optional == Some(true),
        )
    } else {
        return None;
    };
    Some(files_of(
        ns,
        kind,
        &name,
        entries,
        items,
        default_mode,
        optional,
    ))
}

fn files_of(
    ns: &str,
    kind: &str,
    name: &str,
    entries: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<Vec<KeyToPath>>,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<Vec<VolumeFile>, ConfigError> {
    let mode_of = |m: Option<i32>| {
        m.or(default_mode)
            .and_then(|m| u32::try_from(m).ok())
            .map_or(DEFAULT_MODE, |m| m & 0o777)
    };
    let Some(entries) = entries else {
        return if optional {
            Ok(Vec::new())
        } else {
            Err(ConfigError(format!("{kind} \"{name}\" not found")))
        };
    };
    let Some(items) = items else {
        return Ok(entries
            .into_iter()
            .map(|(path, data)| VolumeFile {
                path,
                data,
                mode: mode_of(None),
            })
            .collect());
    };
    let mut files = Vec::new();
    for item in items {
        if !is_safe_relative(&item.path) {
            return Err(ConfigError(format!(
                "invalid path {:?} in {kind} {ns}/{name}",
                item.path
            )));
        }
        match entries.get(&item.key) {
            Some(data) => files.push(VolumeFile {
                path: item.path,
                data: data.clone(),
                mode: mode_of(item.mode),
            }),
            None if optional => {}
            None => {
                return Err(ConfigError(format!(
                    "{kind} references non-existent config key: {}",
                    item.key
                )))
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
