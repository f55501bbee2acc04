//! ConfigMap and Secret: key syntax, the 1 MiB size limit, `immutable`, Secret types and `stringData`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::ByteString;

use super::immutable;
use crate::api::validate::Errors;

/// Most bytes of data one ConfigMap or Secret holds (kube-apiserver's `MaxSecretSize`, also used for ConfigMaps).
pub(crate) const MAX_DATA_BYTES: usize = 1024 * 1024;

/// A data key: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.`, `..` or starting with `..`.
fn key(errors: &mut Errors, field: &str, key: &str) {
    let why = if key.is_empty() || key.len() > 253 {
        Some("must be no more than 253 characters and not empty")
    } else if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        Some("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")
    } else if key == "." || key == ".." {
        Some("must not be '.' or '..'")
    } else if key.starts_with("..") {
        Some("must not start with '..'")
    } else {
        None
    };
    if let Some(why) = why {
        errors.invalid(field, format!("\"{key}\""), why);
    }
}

fn too_large(errors: &mut Errors, size: usize) {
    if size > MAX_DATA_BYTES {
        errors.0.push(crate::api::Cause {
            reason: "FieldValueTooLong".into(),
            field: String::new(),
            message: format!("Too long: may not be more than {MAX_DATA_BYTES} bytes"),
        });
    }
}

/// `immutable: true` freezes the data and cannot be undone.
fn frozen<T: PartialEq>(
    errors: &mut Errors,
    old_immutable: Option<bool>,
    new_immutable: Option<bool>,
    old_data: &T,
    new_data: &T,
) {
    if old_immutable != Some(true) {
        return;
    }
    if new_immutable != Some(true) {
        errors.forbidden("immutable", "field is immutable when `immutable` is set");
    }
    if old_data != new_data {
        errors.forbidden("data", "field is immutable when `immutable` is set");
    }
}

/// Validates a ConfigMap (and its change from `old`).
pub(crate) fn config_map(cm: &mut ConfigMap, old: Option<&ConfigMap>, errors: &mut Errors) {
    let mut size = 0;
    for (k, v) in cm.data.iter().flatten() {
        key(errors, &format!("data[{k}]"), k);
        size += k.len() + v.len();
    }
    for (k, v) in cm.binary_data.iter().flatten() {
        key(errors, &format!("binaryData[{k}]"), k);
        if cm.data.as_ref().is_some_and(|d| d.contains_key(k)) {
            errors.invalid(
                &format!("binaryData[{k}]"),
                format!("\"{k}\""),
                "duplicate of key present in data",
            );
        }
        size += k.len() + v.0.len();
    }
    too_large(errors, size);
    if let Some(old) = old {
        frozen(
            errors,
            old.immutable,
            cm.immutable,
            &(&old.data, &old.binary_data),
            &(&cm.data, &cm.binary_data),
        );
    }
}

/// The keys each built-in Secret type requires.
fn required_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        _ => &[],
    }
}

/// Defaults (`type: Opaque`; `stringData` written into `data`, as kube-apiserver does on every write) and
/// validates a Secret.
pub(crate) fn secret(s: &mut Secret, old: Option<&Secret>, errors: &mut Errors) {
    let kind = s.type_.get_or_insert_with(|| "Opaque".into()).clone();
    if let Some(strings) = s.string_data.take() {
        let data = s.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in strings {
            data.insert(k, ByteString(v.into_bytes()));
        }
    }
    let mut size = 0;
    for (k, v) in s.data.iter().flatten() {
        key(errors, &format!("data[{k}]"), k);
        size += k.len() + v.0.len();
    }
    too_large(errors, size);
    let has = |k: &str| s.data.as_ref().is_some_and(|d| d.contains_key(k));
    for required in required_keys(&kind) {
        if !has(required) {
            errors.required(&format!("data[{required}]"), "");
        }
    }
    match kind.as_str() {
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => errors.required(
            "data[username]",
            "either username or password or both must be provided",
        ),
        "kubernetes.io/service-account-token" => {
            let named = s
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .is_some_and(|n| !n.is_empty());
            if !named {
                errors.required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                );
            }
        }
        _ => {}
    }
    if let Some(old) = old {
        immutable(errors, "type", Some(&old.type_), &s.type_);
        frozen(errors, old.immutable, s.immutable, &old.data, &s.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_causes(value: serde_json::Value) -> (Secret, Vec<String>) {
        let mut s: Secret = serde_json::from_value(value).unwrap();
        let mut errors = Errors::default();
        secret(&mut s, None, &mut errors);
        (s, errors.0.into_iter().map(|c| c.field).collect())
    }

    #[test]
    fn string_data_moves_into_data_and_type_defaults_to_opaque() {
        let (s, errors) = secret_causes(serde_json::json!({
            "metadata": {"name": "s"},
            "data": {"a": "eA=="},
            "stringData": {"password": "hunter2", "a": "y"}
        }));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        assert!(s.string_data.is_none());
        let data = s.data.unwrap();
        assert_eq!(data["password"].0, b"hunter2");
        assert_eq!(data["a"].0, b"y", "stringData wins over data");
    }

    #[test]
    fn typed_secrets_need_their_keys() {
        let (_, errors) = secret_causes(serde_json::json!({
            "metadata": {"name": "t"}, "type": "kubernetes.io/tls", "stringData": {"tls.crt": "c"}
        }));
        assert_eq!(errors, vec!["data[tls.key]"]);
    }

    #[test]
    fn keys_and_sizes_are_checked() {
        let mut cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c"},
            "data": {"ok.key": "v", "bad key": "v", "..x": "v"},
            "binaryData": {"ok.key": "eA=="}
        }))
        .unwrap();
        let mut errors = Errors::default();
        config_map(&mut cm, None, &mut errors);
        let fields: Vec<&str> = errors.0.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["data[..x]", "data[bad key]", "binaryData[ok.key]"]
        );

        let big = "x".repeat(MAX_DATA_BYTES);
        let mut cm: ConfigMap = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "c"}, "data": {"k": big}}),
        )
        .unwrap();
        let mut errors = Errors::default();
        config_map(&mut cm, None, &mut errors);
        assert_eq!(errors.0[0].reason, "FieldValueTooLong");
    }

    #[test]
    fn immutable_data_cannot_change_or_thaw() {
        let old: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c"}, "data": {"k": "1"}, "immutable": true
        }))
        .unwrap();
        let mut same = old.clone();
        let mut errors = Errors::default();
        config_map(&mut same, Some(&old), &mut errors);
        assert!(errors.0.is_empty());
        let mut changed = old.clone();
        changed.data = Some([("k".to_string(), "2".to_string())].into());
        changed.immutable = None;
        config_map(&mut changed, Some(&old), &mut errors);
        let fields: Vec<&str> = errors.0.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["immutable", "data"]);
    }
}
