//! Label maps and label selectors in their string syntax, as apimachinery prints them (`labels.FormatLabels`,
//! `LabelSelectorAsSelector(..).String()`).

use serde_json::Value;

use super::{items, text};

/// A label selector (`matchLabels` + `matchExpressions`) in the string syntax: `app=web,!canary,tier in (a,b)`;
/// empty for an empty or missing selector.
///
/// Requirements are sorted by key and `in`/`notin` values sorted, as apimachinery's selector does, so the
/// string does not depend on the order the object lists them in.
pub fn selector_string(selector: &Value) -> String {
    let mut requirements: Vec<(&str, String)> = Vec::new();
    for (key, value) in selector["matchLabels"].as_object().into_iter().flatten() {
        requirements.push((key, format!("{key}={}", text(value))));
    }
    for e in items(&selector["matchExpressions"]) {
        let key = text(&e["key"]);
        let mut values: Vec<&str> = items(&e["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let values = values.join(",");
        requirements.push((
            key,
            match text(&e["operator"]) {
                "In" => format!("{key} in ({values})"),
                "NotIn" => format!("{key} notin ({values})"),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                other => format!("{key} {other} ({values})"),
            },
        ));
    }
    requirements.sort_by(|a, b| a.0.cmp(b.0));
    requirements
        .into_iter()
        .map(|(_, r)| r)
        .collect::<Vec<_>>()
        .join(",")
}

/// A label map (a Service's `selector`, a pod template's `labels`) as `k=v` pairs joined with ",", sorted as
/// strings as `labels.Set.String` sorts them; `<none>` when empty (`labels.FormatLabels`).
pub fn format_labels(labels: &Value) -> String {
    let mut pairs: Vec<String> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", text(v)))
        .collect();
    pairs.sort();
    if pairs.is_empty() {
        "<none>".into()
    } else {
        pairs.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_sort_requirements_by_key() {
        let s = json!({"matchLabels": {"tier": "web", "app": "shop"},
                       "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["qa", "dev"]},
                                            {"key": "canary", "operator": "DoesNotExist"},
                                            {"key": "zone", "operator": "Exists"}]});
        assert_eq!(
            selector_string(&s),
            "app=shop,!canary,env notin (dev,qa),tier=web,zone"
        );
        assert_eq!(selector_string(&json!({})), "");
        assert_eq!(selector_string(&json!(null)), "");
    }

    #[test]
    fn label_maps_sort_as_pairs() {
        // "a.b=2" sorts before "a=1" ('.' < '='): the pairs are sorted, not the keys.
        assert_eq!(format_labels(&json!({"a": "1", "a.b": "2"})), "a.b=2,a=1");
        assert_eq!(format_labels(&json!({})), "<none>");
        assert_eq!(format_labels(&json!(null)), "<none>");
    }
}
