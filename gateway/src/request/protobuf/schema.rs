//! Kubernetes' protobuf messages (the descriptors `build.rs` compiles from `proto/`) and, for each field, how Go's
//! encoding/json prints it (`proto/go-json.tsv`): which message a kind's body is, and each field's JSON rule.

use std::collections::HashMap;
use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, MessageDescriptor};

/// The descriptor set of every `proto/**/generated.proto`.
static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s.bin"));

/// Field rules extracted from the Go structs of the same Kubernetes version (`proto/extract.py`).
static GO_JSON: &str = include_str!("../../../proto/go-json.tsv");

/// Package of `meta/v1` messages, some of which every group serves (DeleteOptions).
pub(super) const META_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

/// Kinds that `metav1.AddToGroupVersion` registers in every group version: their messages live in `meta/v1`.
const META_KINDS: &[&str] = &["DeleteOptions"];

/// How the Go field behind one protobuf field prints as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rule {
    /// The JSON key; empty when the Go field is an embedded struct whose fields are inlined into the parent;
    /// `-` when Go never prints it (the raw bytes of RawExtension and FieldsV1, which print themselves).
    pub json: String,
    /// A Go pointer: present on the wire only when set, so a present zero value (`replicas: 0`) is kept.
    pub pointer: bool,
    /// `omitempty`: a zero value of a non-pointer field (and an empty list or map) is left out.
    pub omitempty: bool,
}

/// The messages and the JSON rules of their fields.
pub(super) struct Schema {
    pool: DescriptorPool,
    rules: HashMap<String, HashMap<u32, Rule>>,
}

impl Schema {
    fn load() -> Result<Self, String> {
        let pool = DescriptorPool::decode(DESCRIPTORS)
            .map_err(|e| format!("the compiled Kubernetes descriptors do not load: {e}"))?;
        let mut rules: HashMap<String, HashMap<u32, Rule>> = HashMap::new();
        for (n, line) in GO_JSON.lines().enumerate() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let bad = || format!("proto/go-json.tsv line {}: {line:?}", n + 1);
            let [message, number, json, flags] = line.split('\t').collect::<Vec<_>>()[..] else {
                return Err(bad());
            };
            let number = number.parse().map_err(|_| bad())?;
            let rule = Rule {
                json: json.to_string(),
                pointer: flags.contains('p'),
                omitempty: flags.contains('o'),
            };
            if flags.contains('i') != json.is_empty() {
                return Err(bad());
            }
            rules
                .entry(message.to_string())
                .or_default()
                .insert(number, rule);
        }
        Ok(Self { pool, rules })
    }

    /// The schema, loaded once. It is built into the binary, so failing to load is a build defect (reported to
    /// the client as a 500 rather than a panic).
    pub(super) fn get() -> Result<&'static Schema, String> {
        static SCHEMA: LazyLock<Result<Schema, String>> = LazyLock::new(Schema::load);
        SCHEMA.as_ref().map_err(Clone::clone)
    }

    /// The message named `full_name` (`k8s.io.apimachinery.pkg.runtime.Unknown`).
    pub(super) fn message(&self, full_name: &str) -> Option<MessageDescriptor> {
        self.pool.get_message_by_name(full_name)
    }

    /// The message a body of `kind` in `api_version` is, as client-go's protobuf serializer writes it:
    /// `apps/v1` `Deployment` is `k8s.io.api.apps.v1.Deployment`, `rbac.authorization.k8s.io/v1` `Role` is
    /// `k8s.io.api.rbac.v1.Role` (the package is the group's first label; `core` for the legacy group).
    pub(super) fn kind(&self, api_version: &str, kind: &str) -> Option<MessageDescriptor> {
        let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
        if !plain(kind) {
            return None;
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let package = match group {
            "" => "core",
            g => g.split('.').next().unwrap_or_default(),
        };
        if !plain(package) || !plain(version) {
            return None;
        }
        if META_KINDS.contains(&kind) {
            return self.message(&format!("{META_V1}.{kind}"));
        }
        self.message(&format!("k8s.io.api.{package}.{version}.{kind}"))
    }

    /// The JSON rules of the fields of the message `full_name`, by field number.
    pub(super) fn rules(&self, full_name: &str) -> Option<&HashMap<u32, Rule>> {
        self.rules.get(full_name)
    }

    /// Every message of the schema.
    #[cfg(test)]
    pub(super) fn messages(&self) -> impl Iterator<Item = MessageDescriptor> + '_ {
        self.pool.all_messages()
    }
}
