//! Sets of fields, as `metadata.managedFields` records them: a tree of path elements in Kubernetes' FieldsV1
//! encoding (`f:<field>`, `k:{<list-map keys>}`, `v:<set value>`), built from objects by their schema.
//!
//! A node stands for itself and its ancestors: a manager owning `.spec.replicas` owns the node `.spec` too, so a
//! node nobody's tree holds is a node nobody owns, subtree included. A node with no children is a leaf: a scalar,
//! an atomic list or map, a set member, or an empty object.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::schema::{ListType, Schema};

/// A set of fields: children by encoded path element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set(BTreeMap<String, Set>);

/// `f:<name>`.
pub fn field(name: &str) -> String {
    format!("f:{name}")
}

/// `k:{...}` of a list-map item: its key fields (those it has), in name order; None if it has none.
pub fn key(item: &Value, keys: &[String]) -> Option<String> {
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    let mut map = Map::new();
    for k in sorted {
        if let Some(v) = item.get(k.as_str()).filter(|v| !v.is_null()) {
            map.insert(k.clone(), v.clone());
        }
    }
    (!map.is_empty()).then(|| format!("k:{}", Value::Object(map)))
}

/// `v:<json>` of a set member.
pub fn member(value: &Value) -> String {
    format!("v:{value}")
}

/// Whether list item `item` is the one element `elem` (a `k:` or `v:`) names. Key fields the element does not name
/// are not compared, so an applied port without `protocol` finds the live port the server defaulted to TCP.
pub fn matches(item: &Value, elem: &str) -> bool {
    if let Some(raw) = elem.strip_prefix("k:") {
        let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(raw) else {
            return false;
        };
        keys.iter().all(|(k, v)| item.get(k) == Some(v))
    } else if let Some(raw) = elem.strip_prefix("v:") {
        serde_json::from_str::<Value>(raw).is_ok_and(|v| &v == item)
    } else {
        false
    }
}

/// The child of `value` that `elem` names.
pub fn lookup<'v>(value: &'v Value, elem: &str) -> Option<&'v Value> {
    match elem.strip_prefix("f:") {
        Some(name) => value.get(name).filter(|v| !v.is_null()),
        None => value.as_array()?.iter().find(|i| matches(i, elem)),
    }
}

/// [`lookup`], mutable.
pub fn lookup_mut<'v>(value: &'v mut Value, elem: &str) -> Option<&'v mut Value> {
    match elem.strip_prefix("f:") {
        Some(name) => value.get_mut(name),
        None => value.as_array_mut()?.iter_mut().find(|i| matches(i, elem)),
    }
}

/// The value at `path` in `value`.
pub fn lookup_path<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, e| lookup(v, e))
}

/// Removes the child of `value` that `elem` names.
pub fn remove(value: &mut Value, elem: &str) {
    match elem.strip_prefix("f:") {
        Some(name) => {
            if let Some(map) = value.as_object_mut() {
                map.remove(name);
            }
        }
        None => {
            if let Some(items) = value.as_array_mut() {
                items.retain(|i| !matches(i, elem));
            }
        }
    }
}

/// A path as structured-merge-diff prints it: `.spec.replicas`, `.spec.containers[name="web"].image`.
pub fn display(path: &[String]) -> String {
    let mut out = String::new();
    for elem in path {
        if let Some(name) = elem.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(raw) = elem.strip_prefix("k:") {
            let fields = match serde_json::from_str::<Value>(raw) {
                Ok(Value::Object(keys)) => keys
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                _ => raw.to_string(),
            };
            out.push_str(&format!("[{fields}]"));
        } else if let Some(raw) = elem.strip_prefix("v:") {
            out.push_str(&format!("[={raw}]"));
        } else {
            out.push_str(&format!("[{elem}]"));
        }
    }
    out
}

impl Set {
    /// Whether the set holds nothing (as a node: whether it is a leaf).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The children.
    pub fn children(&self) -> impl Iterator<Item = (&String, &Set)> {
        self.0.iter()
    }

    /// The child `elem`.
    pub fn child(&self, elem: &str) -> Option<&Set> {
        self.0.get(elem)
    }

    /// Adds a child (merging with one already there).
    pub fn insert(&mut self, elem: String, child: Set) {
        self.0.entry(elem).or_default().union(&child);
    }

    /// Adds every path of `other`.
    pub fn union(&mut self, other: &Set) {
        for (elem, child) in &other.0 {
            self.0.entry(elem.clone()).or_default().union(child);
        }
    }

    /// Whether the node at `path` is in the set.
    pub fn contains(&self, path: &[String]) -> bool {
        let mut node = self;
        for elem in path {
            match node.0.get(elem) {
                Some(child) => node = child,
                None => return false,
            }
        }
        true
    }

    /// Removes the node at `path` with its subtree, and the ancestors left without children.
    pub fn remove(&mut self, path: &[String]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        if rest.is_empty() {
            self.0.remove(first);
            return;
        }
        if let Some(child) = self.0.get_mut(first) {
            child.remove(rest);
            if child.is_empty() {
                self.0.remove(first);
            }
        }
    }

    /// The paths of the leaves.
    pub fn leaves(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect_leaves(&mut Vec::new(), &mut out);
        out
    }

    fn collect_leaves(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        for (elem, child) in &self.0 {
            prefix.push(elem.clone());
            if child.is_empty() {
                out.push(prefix.clone());
            } else {
                child.collect_leaves(prefix, out);
            }
            prefix.pop();
        }
    }

    /// The FieldsV1 encoding: `{"f:spec":{"f:replicas":{}}}`; list items with children also carry `".":{}`, as
    /// Kubernetes writes them.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        for (elem, child) in &self.0 {
            let mut encoded = child.to_fields_v1();
            if elem.starts_with("k:") && !child.is_empty() {
                if let Some(m) = encoded.as_object_mut() {
                    m.insert(".".into(), Value::Object(Map::new()));
                }
            }
            map.insert(elem.clone(), encoded);
        }
        Value::Object(map)
    }

    /// Reads a FieldsV1 value (`.` entries and anything not an object are dropped).
    pub fn from_fields_v1(value: &Value) -> Set {
        let mut set = Set::default();
        if let Some(map) = value.as_object() {
            for (elem, child) in map {
                if elem != "." && child.is_object() {
                    set.0.insert(elem.clone(), Set::from_fields_v1(child));
                }
            }
        }
        set
    }

    /// The fields `value` sets, by `schema`: every node down to scalars, atomic lists and maps, and set members.
    pub fn of_value(value: &Value, schema: &Schema<'_>) -> Set {
        let mut set = Set::default();
        match value {
            Value::Object(map) if !schema.is_atomic_map() => {
                for (k, v) in map.iter().filter(|(_, v)| !v.is_null()) {
                    set.0.insert(field(k), Set::of_value(v, &schema.field(k)));
                }
            }
            Value::Array(items) => match schema.list_type() {
                ListType::Set => {
                    for item in items {
                        set.0.insert(member(item), Set::default());
                    }
                }
                ListType::Map(keys) => {
                    let items_schema = schema.items();
                    for item in items {
                        // An item without keys cannot be addressed: the list is then owned whole.
                        let Some(k) = key(item, &keys) else {
                            return Set::default();
                        };
                        set.insert(k, Set::of_value(item, &items_schema));
                    }
                }
                ListType::Atomic => {}
            },
            _ => {}
        }
        set
    }

    /// The nodes of `new` that differ from `old` (absent or other values); None when there are none.
    pub fn changed(old: Option<&Value>, new: &Value, schema: &Schema<'_>) -> Option<Set> {
        if old == Some(new) || new.is_null() {
            return None;
        }
        let mut set = Set::default();
        match (old, new) {
            (Some(Value::Object(o)), Value::Object(n)) if !schema.is_atomic_map() => {
                for (k, v) in n {
                    if let Some(child) = Set::changed(o.get(k), v, &schema.field(k)) {
                        set.0.insert(field(k), child);
                    }
                }
                return (!set.is_empty()).then_some(set);
            }
            (Some(Value::Array(o)), Value::Array(n)) => match schema.list_type() {
                ListType::Set => {
                    for item in n.iter().filter(|i| !o.contains(i)) {
                        set.0.insert(member(item), Set::default());
                    }
                    return (!set.is_empty()).then_some(set);
                }
                ListType::Map(keys) => {
                    let items_schema = schema.items();
                    for item in n {
                        let Some(k) = key(item, &keys) else {
                            return Some(Set::default());
                        };
                        let before = o.iter().find(|i| matches(i, &k));
                        if let Some(child) = Set::changed(before, item, &items_schema) {
                            set.0.insert(k, child);
                        }
                    }
                    return (!set.is_empty()).then_some(set);
                }
                ListType::Atomic => {}
            },
            _ => {}
        }
        // New, or replaced whole: every node of it.
        Some(Set::of_value(new, schema))
    }

    /// The nodes of `old` that `new` no longer has; None when there are none. A node listed with no children is
    /// gone whole.
    pub fn removed(old: &Value, new: Option<&Value>, schema: &Schema<'_>) -> Option<Set> {
        let Some(new) = new.filter(|v| !v.is_null()) else {
            return Some(Set::default());
        };
        let mut set = Set::default();
        match (old, new) {
            (Value::Object(o), Value::Object(n)) if !schema.is_atomic_map() => {
                for (k, v) in o.iter().filter(|(_, v)| !v.is_null()) {
                    if let Some(child) = Set::removed(v, n.get(k), &schema.field(k)) {
                        set.0.insert(field(k), child);
                    }
                }
            }
            (Value::Array(o), Value::Array(n)) => match schema.list_type() {
                ListType::Set => {
                    for item in o.iter().filter(|i| !n.contains(i)) {
                        set.0.insert(member(item), Set::default());
                    }
                }
                ListType::Map(keys) => {
                    let items_schema = schema.items();
                    for item in o {
                        let Some(k) = key(item, &keys) else { continue };
                        let after = n.iter().find(|i| matches(i, &k));
                        if let Some(child) = Set::removed(item, after, &items_schema) {
                            set.0.insert(k, child);
                        }
                    }
                }
                ListType::Atomic => {}
            },
            _ => {}
        }
        (!set.is_empty()).then_some(set)
    }
}
