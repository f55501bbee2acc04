//! Kubernetes' strategic merge patch (apimachinery `pkg/util/strategicpatch`), server side: maps merge
//! recursively, `null` deletes, lists merge by the strategy of [`super::schema`], and the directives `$patch`
//! (replace, delete, merge), `$retainKeys`, `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>`
//! are honored.

use std::collections::{HashMap, HashSet};

use navarch_bus::api::ApiError;
use serde_json::{Map, Value};

use super::schema::{list_strategy, ListStrategy};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(format!("invalid strategic merge patch: {}", message.into()))
}

/// Applies `patch` to `original`, an object of kind `kind`.
pub fn apply(kind: &str, original: &Value, patch: &Value) -> Result<Value, ApiError> {
    let Value::Object(patch) = patch else {
        return Err(bad("the patch must be a JSON object"));
    };
    let original = match original {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    let mut merger = Merger {
        kind,
        path: Vec::new(),
    };
    Ok(Value::Object(merger.map(original, patch.clone())?))
}

struct Merger<'a> {
    kind: &'a str,
    /// Field names from the root to the value being merged (list indices left out).
    path: Vec<String>,
}

impl Merger<'_> {
    fn strategy(&self, field: &str) -> ListStrategy {
        let mut path = self.path.clone();
        path.push(field.to_string());
        list_strategy(self.kind, &path)
    }

    fn map(
        &mut self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
    ) -> Result<Map<String, Value>, ApiError> {
        if let Some(directive) = patch.remove(PATCH) {
            match directive.as_str() {
                // The patch's map replaces the original (its own directives still apply inside).
                Some("replace") => return self.map(Map::new(), patch),
                Some("delete") => return Ok(Map::new()),
                Some("merge") => {}
                _ => return Err(bad(format!("unknown $patch directive {directive}"))),
            }
        }
        if let Some(keys) = patch.remove(RETAIN_KEYS) {
            let keys: Vec<&str> = keys
                .as_array()
                .and_then(|a| a.iter().map(Value::as_str).collect())
                .ok_or_else(|| bad("$retainKeys must be a list of field names"))?;
            original.retain(|k, _| keys.contains(&k.as_str()));
        }
        // Directives naming a sibling list: collected first, applied around that list's merge.
        let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
        let directive_keys: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with('$'))
            .cloned()
            .collect();
        for key in directive_keys {
            let value = patch.remove(&key).unwrap_or(Value::Null);
            if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
                let Value::Array(order) = value else {
                    return Err(bad(format!("{key} must be a list")));
                };
                orders.push((field.to_string(), order));
            } else if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                let Value::Array(remove) = value else {
                    return Err(bad(format!("{key} must be a list")));
                };
                if let Some(Value::Array(list)) = original.get_mut(field) {
                    list.retain(|v| !remove.contains(v));
                }
            } else {
                return Err(bad(format!("unknown directive {key}")));
            }
        }
        let server_orders: Vec<(String, Vec<Value>, Vec<Value>)> = orders
            .into_iter()
            .map(|(field, order)| {
                let server = match original.get(&field) {
                    Some(Value::Array(list)) => list.clone(),
                    _ => Vec::new(),
                };
                (field, order, server)
            })
            .collect();
        for (key, value) in patch {
            if value.is_null() {
                original.remove(&key);
                continue;
            }
            let current = original.remove(&key);
            self.path.push(key.clone());
            let merged = match (current, value) {
                (Some(Value::Object(o)), Value::Object(p)) => self.map(o, p).map(Value::Object),
                (Some(Value::Array(o)), Value::Array(p)) => self.list(o, p).map(Value::Array),
                // New fields, and fields whose type changes, take the patch's value (its directives applied).
                (_, Value::Object(p)) => self.map(Map::new(), p).map(Value::Object),
                (_, Value::Array(p)) => self.list(Vec::new(), p).map(Value::Array),
                (_, scalar) => Ok(scalar),
            };
            self.path.pop();
            original.insert(key, merged?);
        }
        for (field, order, server) in server_orders {
            let strategy = self.strategy(&field);
            let key = match strategy {
                ListStrategy::Replace => continue,
                ListStrategy::MergeByKey(k) => Some(k),
                ListStrategy::MergeScalars => None,
            };
            if let Some(Value::Array(list)) = original.get_mut(&field) {
                let merged = std::mem::take(list);
                *list = reorder(merged, &order, &server, key)?;
            }
        }
        Ok(original)
    }

    fn list(&mut self, original: Vec<Value>, patch: Vec<Value>) -> Result<Vec<Value>, ApiError> {
        // The caller has pushed this list's own field name.
        match list_strategy(self.kind, &self.path) {
            ListStrategy::Replace => Ok(patch),
            ListStrategy::MergeScalars => {
                if patch.iter().any(|v| v.is_object() || v.is_array()) {
                    return Err(bad(format!("{} is a list of scalars", self.path.join("."))));
                }
                let mut seen: HashSet<String> = original.iter().map(Value::to_string).collect();
                let mut out = original;
                for v in patch {
                    if seen.insert(v.to_string()) {
                        out.push(v);
                    }
                }
                Ok(out)
            }
            ListStrategy::MergeByKey(key) => self.list_by_key(original, patch, key),
        }
    }

    fn list_by_key(
        &mut self,
        mut original: Vec<Value>,
        patch: Vec<Value>,
        key: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let missing_key = |item: &Map<String, Value>| {
            bad(format!(
                "{} does not contain declared merge key {key:?}",
                Value::Object(item.clone())
            ))
        };
        let mut items = Vec::new();
        let mut deleted = HashSet::new();
        let mut replace = false;
        for item in patch {
            let Value::Object(mut item) = item else {
                return Err(bad(format!(
                    "{} is a list of objects merged on {key:?}",
                    self.path.join(".")
                )));
            };
            match item.get(PATCH).cloned() {
                None => items.push(item),
                Some(directive) => match directive.as_str() {
                    Some("delete") => {
                        let id = item.get(key).ok_or_else(|| missing_key(&item))?;
                        deleted.insert(id.to_string());
                    }
                    Some("replace") => replace = true,
                    Some("merge") => {
                        item.remove(PATCH);
                        if !item.is_empty() {
                            items.push(item);
                        }
                    }
                    _ => return Err(bad(format!("unknown $patch directive {directive}"))),
                },
            }
        }
        if replace {
            original.clear();
        }
        if !deleted.is_empty() {
            original.retain(|o| {
                o.get(key)
                    .is_none_or(|id| !deleted.contains(&id.to_string()))
            });
        }
        // Items are found by their key through an index, so a patch of n items costs O(n), not O(n²).
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, o) in original.iter().enumerate() {
            if let Some(id) = o.get(key) {
                index.entry(id.to_string()).or_insert(i);
            }
        }
        for item in items {
            let id = item.get(key).ok_or_else(|| missing_key(&item))?.to_string();
            match index.get(&id).and_then(|&i| original.get_mut(i)) {
                Some(Value::Object(existing)) => {
                    let merged = self.map(std::mem::take(existing), item)?;
                    *existing = merged;
                }
                _ => {
                    index.insert(id, original.len());
                    original.push(Value::Object(self.map(Map::new(), item)?));
                }
            }
        }
        Ok(original)
    }
}

/// What identifies a list item: its merge key's value, or the scalar itself.
fn identity<'v>(item: &'v Value, key: Option<&str>) -> Option<&'v Value> {
    match key {
        Some(k) => item.get(k),
        None => Some(item),
    }
}

/// Positions of the items of `list` by identity (first occurrence wins), for O(1) lookups.
fn positions(list: &[Value], key: Option<&str>) -> HashMap<String, usize> {
    let mut out = HashMap::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        if let Some(id) = identity(item, key) {
            out.entry(id.to_string()).or_insert(i);
        }
    }
    out
}

fn position(index: &HashMap<String, usize>, item: &Value, key: Option<&str>) -> Option<usize> {
    index.get(&identity(item, key)?.to_string()).copied()
}

/// apimachinery's `normalizeElementOrder`: items named by `$setElementOrder` come in its order; the others (the
/// server's own) keep their order and are interleaved where they stood in the `server` list.
fn reorder(
    merged: Vec<Value>,
    order: &[Value],
    server: &[Value],
    key: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    if key.is_some() && order.iter().any(|o| identity(o, key).is_none()) {
        return Err(bad("every $setElementOrder item must carry the merge key"));
    }
    let (order, server) = (positions(order, key), positions(server, key));
    let (mut ordered, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| position(&order, v, key).is_some());
    ordered.sort_by_cached_key(|v| position(&order, v, key).unwrap_or(usize::MAX));
    server_only.sort_by_cached_key(|v| position(&server, v, key).unwrap_or(usize::MAX));
    // mergeSortedSlice: insert each server-only item before the first ordered item that comes after it on the
    // server.
    let mut out = Vec::with_capacity(ordered.len() + server_only.len());
    let (mut left, mut right) = (
        server_only.into_iter().peekable(),
        ordered.into_iter().peekable(),
    );
    loop {
        match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => out.extend(left.next()),
            (None, Some(_)) => out.extend(right.next()),
            (Some(l), Some(r)) => {
                let before = match (position(&server, l, key), position(&server, r, key)) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                };
                if before {
                    out.extend(left.next());
                } else {
                    out.extend(right.next());
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "strategic_tests.rs"]
mod tests;
