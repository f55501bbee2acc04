//! Field selectors (`metadata.name=web,status.phase!=Running`) over the fields each kind supports.

use navarch_bus::api::{ApiError, ResourceInfo};
use serde_json::Value;

/// The fields a kind can be selected by, besides `metadata.name` and `metadata.namespace`. Kubernetes supports
/// these per kind; anything else is refused (400), as kube-apiserver does.
fn kind_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Node" => &["spec.unschedulable"],
        "Namespace" => &["status.phase"],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        _ => &[],
    }
}

/// Boolean fields that read `false` when absent.
const FALSE_WHEN_ABSENT: &[&str] = &["spec.hostNetwork", "spec.unschedulable"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    field: String,
    value: String,
    negate: bool,
}

/// A parsed field selector: every term must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<Term>);

/// Splits on `sep` outside backslash escapes, keeping the escapes.
fn split_unescaped(raw: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in raw.chars() {
        let part = parts.last_mut().expect("starts with one part");
        if escaped {
            part.push('\\');
            part.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(String::new());
        } else {
            part.push(c);
        }
    }
    if escaped {
        if let Some(part) = parts.last_mut() {
            part.push('\\');
        }
    }
    parts
}

fn unescape(raw: &str, whole: &str) -> Result<String, ApiError> {
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid field selector {whole:?}: bad escape in {raw:?}"
                    )))
                }
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

impl FieldSelector {
    /// Parses a selector for kind `info`; the empty string selects everything.
    pub fn parse(info: &ResourceInfo, raw: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        if raw.trim().is_empty() {
            return Ok(Self(terms));
        }
        for part in split_unescaped(raw, ',') {
            let (field, value, negate) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, false)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector {raw:?}: {part:?} is not of the form field=value"
                )));
            };
            let field = field.trim();
            if !matches!(field, "metadata.name" | "metadata.namespace")
                && !kind_fields(info.kind).contains(&field)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            terms.push(Term {
                field: field.to_string(),
                value: unescape(value, raw)?,
                negate,
            });
        }
        Ok(Self(terms))
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every term holds for `object`.
    pub fn matches(&self, object: &Value) -> bool {
        self.0
            .iter()
            .all(|t| (field_value(object, &t.field) == t.value) != t.negate)
    }
}

/// A field as a selector compares it: strings as is, booleans and numbers printed, absent as empty.
fn field_value(object: &Value, field: &str) -> String {
    let value = field
        .split('.')
        .try_fold(object, |v, segment| v.get(segment));
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ if FALSE_WHEN_ABSENT.contains(&field) => "false".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::resource::by_kind;
    use serde_json::json;

    fn pod() -> Value {
        json!({"metadata": {"name": "web-1", "namespace": "demo"},
               "spec": {"nodeName": "n1", "restartPolicy": "Always"},
               "status": {"phase": "Running"}})
    }

    fn selects(selector: &str, object: &Value) -> bool {
        let pods = by_kind("v1", "Pod").unwrap();
        FieldSelector::parse(pods, selector)
            .unwrap()
            .matches(object)
    }

    #[test]
    fn pod_fields_match() {
        let p = pod();
        assert!(selects("", &p));
        assert!(selects("metadata.name=web-1", &p));
        assert!(selects("metadata.name==web-1,metadata.namespace=demo", &p));
        assert!(!selects("metadata.name=web-2", &p));
        assert!(selects("spec.nodeName=n1", &p));
        assert!(selects("spec.nodeName!=n2", &p));
        assert!(selects("status.phase!=Pending", &p));
        assert!(!selects("status.phase=Pending", &p));
        assert!(
            selects("spec.schedulerName=", &p),
            "absent fields read empty"
        );
        assert!(selects("spec.hostNetwork=false", &p));
        assert!(selects("spec.restartPolicy=Always", &p));
    }

    #[test]
    fn escapes_and_errors() {
        let odd = json!({"metadata": {"name": "a,b=c"}});
        assert!(selects(r"metadata.name=a\,b\=c", &odd));
        let pods = by_kind("v1", "Pod").unwrap();
        let e = FieldSelector::parse(pods, "spec.foo=x").unwrap_err();
        assert_eq!(e.code(), 400);
        assert_eq!(e.message, "field label not supported: spec.foo");
        assert!(FieldSelector::parse(pods, "metadata.name").is_err());
        assert!(FieldSelector::parse(pods, r"metadata.name=a\x").is_err());
        let deploy = by_kind("apps/v1", "Deployment").unwrap();
        assert!(FieldSelector::parse(deploy, "status.phase=Running").is_err());
        assert!(FieldSelector::parse(deploy, "metadata.name=web").is_ok());
        let nodes = by_kind("v1", "Node").unwrap();
        let s = FieldSelector::parse(nodes, "spec.unschedulable=false").unwrap();
        assert!(s.matches(&json!({"metadata": {"name": "n"}, "spec": {}})));
        assert!(!s.matches(&json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}})));
    }
}
