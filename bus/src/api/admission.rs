//! The one admission path every writer goes through: decoding (with unknown-field detection), defaulting,
//! metadata rules and validation, for creates and updates. Pure: the caller passes the time and the uid.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, Node, Pod, PodSpec, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};

use super::error::{ApiError, Cause};
use super::kinds;
use super::meta;
use super::resource::ResourceInfo;
use super::validate::{self, Errors};

/// What to do with fields the kind does not have (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and report a warning (Kubernetes' default).
    #[default]
    Warn,
    /// Refuse the request (400).
    Strict,
}

impl FieldValidation {
    /// Parses the `fieldValidation` query parameter.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        match raw {
            "" | "Warn" => Ok(Self::Warn),
            "Ignore" => Ok(Self::Ignore),
            "Strict" => Ok(Self::Strict),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\" or \"Strict\", not {other:?}"
            ))),
        }
    }
}

/// An object ready to store, and warnings for the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    /// The normalized object (defaults filled, unknown fields dropped, no resourceVersion).
    pub object: Value,
    /// Warnings for the `Warning` response header.
    pub warnings: Vec<String>,
}

/// Which part of an object an update writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object without its status (status changes are ignored where the kind has a status subresource).
    Main,
    /// Only the status (`/status`): everything else is kept as stored.
    Status,
}

/// Facts the caller supplies so admission stays pure.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The namespace of the request path (None for cluster-scoped kinds).
    pub namespace: Option<&'a str>,
    /// Unknown-field handling.
    pub validation: FieldValidation,
    /// The time to stamp (creationTimestamp).
    pub now: DateTime<Utc>,
    /// The uid to give a new object.
    pub uid: String,
    /// Random suffix for `generateName`.
    pub name_suffix: String,
}

/// Admits a new object of kind `info`.
pub fn create(
    info: &ResourceInfo,
    mut object: Value,
    cx: &Context<'_>,
) -> Result<Admitted, ApiError> {
    check_type_meta(info, &mut object)?;
    let meta = meta::metadata_mut(&mut object);
    let name = match meta.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => match meta.get("generateName").and_then(Value::as_str) {
            Some(g) if !g.is_empty() => format!("{g}{}", cx.name_suffix),
            _ => {
                return Err(ApiError::invalid(
                    info,
                    "",
                    vec![Cause {
                        reason: "FieldValueRequired".into(),
                        field: "metadata.name".into(),
                        message: "Required value: name or generateName is required".into(),
                    }],
                ))
            }
        },
    };
    if meta
        .get("resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|rv| !rv.is_empty())
    {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    meta.insert("name".into(), json!(name));
    set_namespace(info, meta, cx.namespace)?;
    meta.insert("uid".into(), json!(cx.uid));
    meta.insert("creationTimestamp".into(), json!(meta::format_time(cx.now)));
    for field in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(field);
    }
    if info.has_spec {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    normalize(info, object, cx.validation, None)
}

/// Admits `new` as the next state of `old` (both of kind `info`), writing `part`.
pub fn update(
    info: &ResourceInfo,
    old: &Value,
    mut new: Value,
    part: Part,
    cx: &Context<'_>,
) -> Result<Admitted, ApiError> {
    check_type_meta(info, &mut new)?;
    let name = meta::name(old).unwrap_or_default().to_string();
    match meta::name(&new) {
        Some(n) if n == name => {}
        None | Some("") => {
            meta::metadata_mut(&mut new).insert("name".into(), json!(name));
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({other}) does not match the name on the URL ({name})"
            )))
        }
    }
    if let Some(uid) = meta::uid(&new) {
        if !uid.is_empty() && Some(uid) != meta::uid(old) {
            return Err(ApiError::new(
                super::Reason::Conflict,
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta::uid(old).unwrap_or_default()
                ),
            ));
        }
    }
    let mut next = match part {
        Part::Status => {
            let mut next = old.clone();
            next["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            // A status write records its managers too (server-side apply of `/status`).
            if let Some(m) = meta::metadata(&new).and_then(|m| m.get("managedFields")) {
                meta::metadata_mut(&mut next).insert("managedFields".into(), m.clone());
            }
            next
        }
        Part::Main => {
            let mut next = new;
            let old_meta = meta::metadata(old).cloned().unwrap_or_default();
            let meta = meta::metadata_mut(&mut next);
            set_namespace(info, meta, cx.namespace)?;
            // Fields only the server sets are kept as stored, whatever the client sent.
            for field in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match old_meta.get(field) {
                    Some(v) => meta.insert(field.into(), v.clone()),
                    None => meta.remove(field),
                };
            }
            meta.remove("resourceVersion");
            if old_meta.contains_key("deletionTimestamp") {
                refuse_new_finalizers(info, &name, old, meta)?;
            }
            // managedFields the client sent are kept as sent (kube-apiserver lets an update set them); without
            // any, the stored ones stay.
            if !meta.contains_key("managedFields") {
                if let Some(m) = old_meta.get("managedFields") {
                    meta.insert("managedFields".into(), m.clone());
                }
            }
            if info.has_subresource("status") {
                next["status"] = old.get("status").cloned().unwrap_or(Value::Null);
            }
            next
        }
    };
    if let Some(obj) = next.as_object_mut() {
        obj.retain(|_, v| !v.is_null());
    }
    let admitted = normalize(info, next, cx.validation, Some(old))?;
    let mut object = admitted.object;
    if info.has_spec && part == Part::Main && object.get("spec") != old.get("spec") {
        let generation = meta::metadata(old)
            .and_then(|m| m.get("generation"))
            .and_then(Value::as_i64)
            .unwrap_or(1);
        meta::metadata_mut(&mut object).insert("generation".into(), json!(generation + 1));
    }
    Ok(Admitted {
        object,
        warnings: admitted.warnings,
    })
}

/// As kube-apiserver: an object being deleted may lose finalizers but gain none (else it might never go).
fn refuse_new_finalizers(
    info: &ResourceInfo,
    name: &str,
    old: &Value,
    meta: &serde_json::Map<String, Value>,
) -> Result<(), ApiError> {
    let before = super::deletion::finalizers(old);
    let added: Vec<&str> = meta
        .get("finalizers")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    if added.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
    Err(ApiError::invalid(
        info,
        name,
        vec![Cause {
            reason: "FieldValueForbidden".into(),
            field: "metadata.finalizers".into(),
            message: format!(
                "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers \
                 []string{{{}}}",
                list.join(", ")
            ),
        }],
    ))
}

fn check_type_meta(info: &ResourceInfo, object: &mut Value) -> Result<(), ApiError> {
    let Some(map) = object.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "the body of the request is not a JSON object (expected a {})",
            info.kind
        )));
    };
    let expected = info.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != expected => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected})"
            )))
        }
        _ => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        Some(k) if k != info.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                info.kind
            )))
        }
        _ => {}
    }
    map.insert("apiVersion".into(), json!(expected));
    map.insert("kind".into(), json!(info.kind));
    Ok(())
}

fn set_namespace(
    info: &ResourceInfo,
    meta: &mut serde_json::Map<String, Value>,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    if !info.namespaced {
        meta.remove("namespace");
        return Ok(());
    }
    let Some(path_ns) = namespace else {
        return Err(ApiError::bad_request(format!(
            "{} is namespaced: the request must name a namespace",
            info.plural
        )));
    };
    match meta.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() && ns != path_ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            meta.insert("namespace".into(), json!(path_ns));
            Ok(())
        }
    }
}

/// Decodes into the kind's type, defaults and validates it, and encodes it back.
fn normalize(
    info: &ResourceInfo,
    object: Value,
    validation: FieldValidation,
    old: Option<&Value>,
) -> Result<Admitted, ApiError> {
    match info.kind {
        "Pod" => typed::<Pod>(info, object, validation, |pod, errors| {
            if let Some(spec) = pod.spec.as_mut() {
                default_pod_spec(spec);
                if old.is_none() {
                    default_toleration_seconds(spec);
                }
            }
            if old.is_none() {
                // A new pod starts Pending; status is the node agent's to write.
                pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
                    phase: Some("Pending".into()),
                    qos_class: Some(qos_class(pod.spec.as_ref())),
                    ..Default::default()
                });
            }
            match &pod.spec {
                Some(spec) => validate::pod_spec(errors, "spec", spec),
                None => errors.required("spec", ""),
            }
            if let Some(old) = old.and_then(|o| serde_json::from_value::<Pod>(o.clone()).ok()) {
                pod_update(errors, &old, pod);
            }
        }),
        "Deployment" => typed::<Deployment>(info, object, validation, |d, errors| {
            default_deployment(d, old.is_none());
            validate::deployment(errors, d);
            if let Some(old) =
                old.and_then(|o| serde_json::from_value::<Deployment>(o.clone()).ok())
            {
                let before = old.spec.as_ref().map(|s| &s.selector);
                if before.is_some() && before != d.spec.as_ref().map(|s| &s.selector) {
                    errors.invalid("spec.selector", "", "field is immutable");
                }
            }
        }),
        "Namespace" => typed::<Namespace>(info, object, validation, |ns, _errors| {
            let spec = ns.spec.get_or_insert_with(Default::default);
            spec.finalizers
                .get_or_insert_with(|| vec!["kubernetes".into()]);
            let status = ns.status.get_or_insert_with(Default::default);
            status.phase.get_or_insert_with(|| "Active".into());
            // kube-apiserver labels every namespace with its own name, so selectors can pick namespaces by name.
            if let Some(name) = ns.metadata.name.clone() {
                ns.metadata
                    .labels
                    .get_or_insert_with(Default::default)
                    .insert("kubernetes.io/metadata.name".into(), name);
            }
        }),
        "Node" => typed::<Node>(info, object, validation, |node, errors| {
            validate::node(errors, node)
        }),
        "ReplicaSet" => typed::<ReplicaSet>(info, object, validation, |rs, errors| {
            kinds::workload::replica_set(rs, old_as(old).as_ref(), errors)
        }),
        "Service" => typed::<Service>(info, object, validation, |svc, errors| {
            kinds::service::service(svc, old_as(old).as_ref(), errors)
        }),
        "Endpoints" => typed::<Endpoints>(info, object, validation, kinds::service::endpoints),
        "ConfigMap" => typed::<ConfigMap>(info, object, validation, |cm, errors| {
            kinds::config::config_map(cm, old_as(old).as_ref(), errors)
        }),
        "Secret" => typed::<Secret>(info, object, validation, |secret, errors| {
            kinds::config::secret(secret, old_as(old).as_ref(), errors)
        }),
        "Event" => typed::<Event>(info, object, validation, kinds::cluster::event),
        "ServiceAccount" => {
            typed::<ServiceAccount>(info, object, validation, kinds::cluster::service_account)
        }
        "Lease" => typed::<Lease>(info, object, validation, kinds::cluster::lease),
        "HorizontalPodAutoscaler" => typed::<HorizontalPodAutoscaler>(
            info,
            object,
            validation,
            kinds::workload::horizontal_pod_autoscaler,
        ),
        "Role" => typed::<Role>(info, object, validation, |role, errors| {
            kinds::rbac::rules(errors, role.rules.as_deref().unwrap_or_default(), true)
        }),
        "ClusterRole" => typed::<ClusterRole>(info, object, validation, |role, errors| {
            kinds::rbac::rules(errors, role.rules.as_deref().unwrap_or_default(), false)
        }),
        "RoleBinding" => typed::<RoleBinding>(info, object, validation, |b, errors| {
            let old = old_as::<RoleBinding>(old);
            let subjects = b.subjects.get_or_insert_with(Vec::new);
            kinds::rbac::binding(
                errors,
                &b.role_ref,
                subjects,
                old.as_ref().map(|o| &o.role_ref),
                false,
            );
        }),
        "ClusterRoleBinding" => {
            typed::<ClusterRoleBinding>(info, object, validation, |b, errors| {
                let old = old_as::<ClusterRoleBinding>(old);
                let subjects = b.subjects.get_or_insert_with(Vec::new);
                kinds::rbac::binding(
                    errors,
                    &b.role_ref,
                    subjects,
                    old.as_ref().map(|o| &o.role_ref),
                    true,
                );
            })
        }
        other => Err(ApiError::internal(format!("no admission for kind {other}"))),
    }
}

/// The stored object `old` as the kind's type (None when there is none or it no longer decodes).
fn old_as<K: DeserializeOwned>(old: Option<&Value>) -> Option<K> {
    old.and_then(|o| serde_json::from_value(o.clone()).ok())
}

fn typed<K>(
    info: &ResourceInfo,
    object: Value,
    validation: FieldValidation,
    fix: impl FnOnce(&mut K, &mut Errors),
) -> Result<Admitted, ApiError>
where
    K: DeserializeOwned
        + Serialize
        + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
{
    let name = meta::name(&object).unwrap_or_default().to_string();
    let mut unknown = Vec::new();
    let decoded: Result<K, _> =
        serde_ignored::deserialize(&object, |path| unknown.push(field_path(&path)));
    let mut typed = decoded.map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            info.kind, info.version, info.kind
        ))
    })?;
    let warnings: Vec<String> = unknown
        .iter()
        .map(|path| format!("unknown field \"{path}\""))
        .collect();
    if validation == FieldValidation::Strict && !warnings.is_empty() {
        return Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            warnings.join(", ")
        )));
    }
    let mut errors = Errors::default();
    kinds::check_name(
        &mut errors,
        "metadata.name",
        &name,
        kinds::name_rule(info.kind),
    );
    validate::object_meta(&mut errors, typed.metadata(), "metadata.");
    fix(&mut typed, &mut errors);
    if !errors.0.is_empty() {
        return Err(ApiError::invalid(info, &name, errors.0));
    }
    let object = serde_json::to_value(&typed).map_err(ApiError::internal)?;
    Ok(Admitted {
        object,
        warnings: if validation == FieldValidation::Ignore {
            Vec::new()
        } else {
            warnings
        },
    })
}

/// A field path as Kubernetes prints it: `spec.template.spec.containers[0].foo`.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => {
            let parent = field_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// Kubernetes' pod spec defaults.
pub(crate) fn default_pod_spec(spec: &mut PodSpec) {
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.scheduler_name
        .get_or_insert_with(|| "default-scheduler".into());
    spec.security_context.get_or_insert_with(Default::default);
    let containers = spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut());
    for c in containers {
        let image = c.image.clone().unwrap_or_default();
        c.image_pull_policy.get_or_insert_with(|| {
            let tag = image
                .rsplit('/')
                .next()
                .and_then(|last| last.split_once(':'))
                .map(|(_, t)| t);
            if tag.is_none_or(|t| t == "latest") && !image.contains('@') {
                "Always".into()
            } else {
                "IfNotPresent".into()
            }
        });
        c.termination_message_path
            .get_or_insert_with(|| "/dev/termination-log".into());
        c.termination_message_policy
            .get_or_insert_with(|| "File".into());
        for port in c.ports.iter_mut().flatten() {
            port.protocol.get_or_insert_with(|| "TCP".into());
        }
        c.resources.get_or_insert_with(Default::default);
        super::probes::default(c);
    }
}

/// How long a pod stays on a node that is not ready or unreachable, unless it says otherwise: 300 s, the
/// DefaultTolerationSeconds admission plugin's `--default-not-ready-toleration-seconds` and
/// `--default-unreachable-toleration-seconds`.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// Kubernetes' DefaultTolerationSeconds admission, on pod creation: a pod with no toleration of the
/// `node.kubernetes.io/not-ready:NoExecute` taint (nor of `unreachable`) gets one for
/// [`DEFAULT_TOLERATION_SECONDS`], so the node lifecycle controller evicts it after five minutes on a failed node
/// rather than at once.
fn default_toleration_seconds(spec: &mut PodSpec) {
    use k8s_openapi::api::core::v1::Toleration;
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
        // As the plugin: any toleration that tolerates the NoExecute taint of this key counts, whatever its seconds.
        let tolerated = tolerations.iter().any(|t| {
            let effect = t.effect.as_deref().unwrap_or_default();
            let t_key = t.key.as_deref().unwrap_or_default();
            (t_key.is_empty() || t_key == key) && (effect.is_empty() || effect == "NoExecute")
        });
        if !tolerated {
            tolerations.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(DEFAULT_TOLERATION_SECONDS),
                value: None,
            });
        }
    }
}

fn qos_class(spec: Option<&PodSpec>) -> String {
    let containers: Vec<_> = spec
        .map(|s| s.containers.iter().collect())
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let res = c.resources.as_ref();
        let requests = res.and_then(|r| r.requests.as_ref());
        let limits = res.and_then(|r| r.limits.as_ref());
        any |= requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty());
        for resource in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(resource));
            let request = requests.and_then(|r| r.get(resource)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (_, true) => "Guaranteed",
        (true, false) => "Burstable",
        (false, false) => "BestEffort",
    }
    .into()
}

fn default_deployment(d: &mut Deployment, new: bool) {
    if let Some(spec) = d.spec.as_mut() {
        spec.replicas.get_or_insert(1);
        spec.revision_history_limit.get_or_insert(10);
        spec.progress_deadline_seconds.get_or_insert(600);
        let strategy = spec
            .strategy
            .get_or_insert_with(DeploymentStrategy::default);
        let kind = strategy.type_.get_or_insert_with(|| "RollingUpdate".into());
        if kind == "RollingUpdate" {
            let rolling = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDeployment::default);
            rolling
                .max_surge
                .get_or_insert_with(|| IntOrString::String("25%".into()));
            rolling
                .max_unavailable
                .get_or_insert_with(|| IntOrString::String("25%".into()));
        }
        if let Some(pod) = spec.template.spec.as_mut() {
            default_pod_spec(pod);
        }
    }
    if new {
        d.status = None;
    }
}

/// Kubernetes allows a pod's spec to change only in container images, activeDeadlineSeconds, tolerations, and
/// nodeName once (binding).
fn pod_update(errors: &mut Errors, old: &Pod, new: &Pod) {
    let (Some(a), Some(b)) = (old.spec.clone(), new.spec.clone()) else {
        return;
    };
    let strip = |mut s: PodSpec, node: Option<String>| {
        for c in s
            .containers
            .iter_mut()
            .chain(s.init_containers.iter_mut().flatten())
        {
            c.image = None;
        }
        s.active_deadline_seconds = None;
        s.tolerations = None;
        s.node_name = node;
        s
    };
    let old_node = a.node_name.clone().filter(|n| !n.is_empty());
    let new_node = b.node_name.clone().filter(|n| !n.is_empty());
    if old_node.is_some() && new_node != old_node {
        errors.forbidden(
            "spec.nodeName",
            "a pod's node cannot change once it is bound",
        );
    }
    if strip(a, None) != strip(b, None) {
        errors.forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations) or `spec.nodeName` (binding)",
        );
    }
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
