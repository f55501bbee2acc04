//! One entry point that feeds arbitrary bytes to every decoder of request input: bodies (JSON, YAML, Kubernetes'
//! protobuf), patches (merge, JSON, strategic) followed by admission, label and field selectors, quantities. The
//! cargo-fuzz target (`gateway/fuzz/`) calls it, and `gateway/tests/fuzz_corpus.rs` replays the kept corpus
//! through it as a regression test. Every input must end in a value or an `ApiError`, never a panic.

use axum::http::{header, HeaderMap, HeaderValue};
use navarch_bus::api::admission::{self, Context, FieldValidation, Part};
use navarch_bus::api::quantity::Quantity;
use navarch_bus::api::resource::RESOURCES;
use serde_json::{json, Value};

use crate::patch;
use crate::request::{decode_object, PatchKind, Query};
use crate::selector::{FieldSelector, LabelSelector};

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u", "creationTimestamp": "2026-01-01T00:00:00Z",
                     "generation": 1, "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "main", "image": "busybox",
                                                        "env": [{"name": "A", "value": "1"}],
                                                        "ports": [{"containerPort": 80}]}]}}}
    })
}

fn context() -> Context<'static> {
    Context {
        namespace: Some("default"),
        validation: FieldValidation::Strict,
        now: k8s_openapi::chrono::DateTime::UNIX_EPOCH,
        uid: "fuzz".into(),
        name_suffix: "abcde".into(),
    }
}

/// Feeds `data` to the decoder its first byte selects. Panics only on a bug.
pub fn exercise(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match selector % 8 {
        0..=2 => {
            let mut headers = HeaderMap::new();
            let content_type = CONTENT_TYPES[usize::from(selector % 8)];
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            if let Ok(object) = decode_object(&headers, rest) {
                // Whatever decoded goes through admission as a create of the kind it names, as POST does.
                let kind = object["kind"].as_str().unwrap_or_default();
                if let Some(info) = RESOURCES.iter().find(|r| r.kind == kind) {
                    let _ = admission::create(info, object, &context());
                }
            }
        }
        3..=5 => {
            let kind = [PatchKind::Merge, PatchKind::Json, PatchKind::Strategic]
                [usize::from(selector % 8 - 3)];
            let current = deployment();
            if let Ok(patched) = patch::apply(kind, "Deployment", &current, rest) {
                let info = RESOURCES
                    .iter()
                    .find(|r| r.kind == "Deployment")
                    .expect("Deployment is served");
                let _ = admission::update(info, &current, patched, Part::Main, &context());
            }
        }
        6 => {
            let _ = LabelSelector::parse(&text);
            for info in RESOURCES {
                let _ = FieldSelector::parse(info, &text);
            }
            let _ = Query::parse(Some(&text));
        }
        _ => {
            let _ = Quantity::parse(&text);
        }
    }
}
