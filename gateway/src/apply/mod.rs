//! Server-side apply and field ownership: a subset of Kubernetes' structured-merge-diff. Pure: the handler reads
//! the live object, calls [`apply`] (or [`record_update`] for the other writes), and writes the result through
//! admission.
//!
//! What it does as Kubernetes does: the applied configuration merges into the live object by the schema's list and
//! map types (never replacing it whole); each manager's fields are kept in `metadata.managedFields` (FieldsV1);
//! applying a different value to a field another manager owns is a conflict (409) unless forced, which moves the
//! field to the applier; fields a manager applied before and no longer applies are removed when nobody else owns
//! them; other writes record `Update` entries for the fields they change and take them from the other managers.
//!
//! Where it is simpler: only `metadata.labels`, `annotations`, `finalizers` and `ownerReferences` are tracked in
//! metadata; the applied configuration is not defaulted before merging (list-map items match on the key fields the
//! applied item names, so a port applied without `protocol` matches the live one defaulted to TCP); no version
//! conversion of managed fields (one version is served per kind); the order of merged list items is the live order
//! with new items appended.

pub mod fieldset;
pub mod schema;

#[cfg(test)]
mod tests;

use navarch_bus::api::{ApiError, Reason};
use serde_json::{json, Map, Value};

pub use fieldset::Set;
pub use schema::{ListType, Schema};

/// Which part of an object a write concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Everything but `status` (and the metadata the server owns).
    Main,
    /// `status` only (the `/status` subresource).
    Status,
    /// `spec.replicas` through `/scale`.
    Scale,
}

impl Part {
    fn subresource(self) -> &'static str {
        match self {
            Part::Main => "",
            Part::Status => "status",
            Part::Scale => "scale",
        }
    }
}

/// The metadata fields whose ownership is tracked.
const TRACKED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// The part of `object` whose fields are tracked: for [`Part::Main`] everything but `apiVersion`, `kind`, `status`
/// and the server's metadata; for the subresources their fields.
fn tracked(object: &Value, part: Part) -> Value {
    let mut out = Map::new();
    let Some(map) = object.as_object() else {
        return Value::Object(out);
    };
    match part {
        Part::Main => {
            for (k, v) in map {
                match k.as_str() {
                    "apiVersion" | "kind" | "status" => {}
                    "metadata" => {
                        let mut meta = Map::new();
                        for f in TRACKED_METADATA {
                            if let Some(v) = v.get(*f).filter(|v| !v.is_null()) {
                                meta.insert((*f).into(), v.clone());
                            }
                        }
                        if !meta.is_empty() {
                            out.insert(k.clone(), Value::Object(meta));
                        }
                    }
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        Part::Status => {
            if let Some(s) = map.get("status") {
                out.insert("status".into(), s.clone());
            }
        }
        Part::Scale => {
            if let Some(r) = object.get("spec").and_then(|s| s.get("replicas")) {
                out.insert("spec".into(), json!({ "replicas": r }));
            }
        }
    }
    Value::Object(out)
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `manager`.
    pub manager: String,
    /// `operation`: `Apply` or `Update`.
    pub operation: String,
    /// `apiVersion` of the request.
    pub api_version: String,
    /// `time`, RFC 3339.
    pub time: Option<String>,
    /// `subresource` (empty for the object itself).
    pub subresource: String,
    /// `fieldsV1`.
    pub fields: Set,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    /// How a conflict names the manager, as kube-apiserver does (`"kubectl-scale" with subresource "scale" using
    /// apps/v1` for an update, just the quoted name for an apply).
    fn describe(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    fn to_value(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        if let Some(t) = &self.time {
            v["time"] = json!(t);
        }
        if !self.subresource.is_empty() {
            v["subresource"] = json!(self.subresource);
        }
        v
    }
}

/// The entries of `object`'s `metadata.managedFields` (malformed ones are dropped, as kube-apiserver drops
/// managed fields it cannot decode).
pub fn entries(object: &Value) -> Vec<Entry> {
    let s = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some(Entry {
                manager: s(e, "manager")?,
                operation: s(e, "operation")?,
                api_version: s(e, "apiVersion").unwrap_or_default(),
                time: s(e, "time"),
                subresource: s(e, "subresource").unwrap_or_default(),
                fields: Set::from_fields_v1(e.get("fieldsV1")?),
            })
        })
        .collect()
}

fn set_entries(object: &mut Value, entries: &[Entry]) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        let kept: Vec<Value> = entries
            .iter()
            .filter(|e| !e.fields.is_empty())
            .map(Entry::to_value)
            .collect();
        if kept.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(kept));
        }
    }
}

/// Merges `config` into `live` by `schema`: objects field by field (atomic maps replaced), list-maps item by item
/// on their keys, sets as unions, everything else replaced.
pub fn merge(live: &Value, config: &Value, schema: &Schema<'_>) -> Value {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) if !schema.is_atomic_map() => {
            let mut out = l.clone();
            for (k, v) in c.iter().filter(|(_, v)| !v.is_null()) {
                let merged = match l.get(k) {
                    Some(lv) => merge(lv, v, &schema.field(k)),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => match schema.list_type() {
            ListType::Set => {
                let mut out = l.clone();
                for item in c {
                    if !out.contains(item) {
                        out.push(item.clone());
                    }
                }
                Value::Array(out)
            }
            ListType::Map(keys) => {
                let items = schema.items();
                let mut out = l.clone();
                for item in c {
                    let Some(k) = fieldset::key(item, &keys) else {
                        return config.clone();
                    };
                    match out.iter().position(|i| fieldset::matches(i, &k)) {
                        Some(at) => out[at] = merge(&out[at], item, &items),
                        None => out.push(item.clone()),
                    }
                }
                Value::Array(out)
            }
            ListType::Atomic => config.clone(),
        },
        _ => config.clone(),
    }
}

/// Removes from `object` the nodes of `old` that `keep` does not hold (with their subtrees).
fn prune(object: &mut Value, old: &Set, keep: Option<&Set>) {
    for (elem, child) in old.children() {
        match keep.and_then(|k| k.child(elem)) {
            None => fieldset::remove(object, elem),
            Some(kept) => {
                if let Some(next) = fieldset::lookup_mut(object, elem) {
                    prune(next, child, Some(kept));
                }
            }
        }
    }
}

/// What an apply produced.
#[derive(Debug)]
pub struct Applied {
    /// The next state of the object, `managedFields` included.
    pub object: Value,
}

/// Applies `config` as `manager` to `live` (None: the object is created), an object of `api_version` with
/// structure `schema`. `base` is the object to merge into when there is none live (apiVersion, kind, name,
/// namespace). `now` stamps the manager's entry.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    live: Option<&Value>,
    base: &Value,
    config: &Value,
    schema: &Schema<'_>,
    manager: &str,
    api_version: &str,
    force: bool,
    part: Part,
    now: &str,
) -> Result<Applied, ApiError> {
    let subresource = part.subresource();
    let live_value = live.unwrap_or(base);
    let mut entries = entries(live_value);
    let applied_config = tracked(config, part);
    let applied = Set::of_value(&applied_config, schema);
    let mut merged = merge(live_value, &applied_config, schema);

    // Conflicts: a field of the applied set that another manager owns and whose value the apply changes.
    let mut conflicts: Vec<(usize, Vec<String>)> = Vec::new();
    for path in applied.leaves() {
        let before = fieldset::lookup_path(live_value, &path);
        if before.is_none() || before == fieldset::lookup_path(&merged, &path) {
            continue;
        }
        for (i, e) in entries.iter().enumerate() {
            if !e.is(manager, "Apply", subresource) && e.fields.contains(&path) {
                conflicts.push((i, path.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            let messages: Vec<String> = conflicts
                .iter()
                .map(|(i, p)| {
                    format!(
                        "conflict with {}: {}",
                        entries[*i].describe(),
                        fieldset::display(p)
                    )
                })
                .collect();
            let noun = if messages.len() == 1 {
                "conflict"
            } else {
                "conflicts"
            };
            return Err(ApiError::new(
                Reason::Conflict,
                format!(
                    "Apply failed with {} {noun}: {}",
                    messages.len(),
                    messages.join(", ")
                ),
            ));
        }
        for (i, path) in &conflicts {
            entries[*i].fields.remove(path);
        }
    }

    // Fields this manager applied before and no longer applies go, unless another manager owns them.
    let previous = entries
        .iter()
        .position(|e| e.is(manager, "Apply", subresource));
    if let Some(old) = previous.map(|i| entries[i].fields.clone()) {
        let mut keep = applied.clone();
        for (i, e) in entries.iter().enumerate() {
            if Some(i) != previous {
                keep.union(&e.fields);
            }
        }
        prune(&mut merged, &old, Some(&keep));
    }

    let entry = Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: api_version.to_string(),
        time: Some(now.to_string()),
        subresource: subresource.to_string(),
        fields: applied,
    };
    match previous {
        // An unchanged entry keeps its time, so an apply that changes nothing writes nothing.
        Some(i) if entries[i].fields == entry.fields && entries[i].api_version == api_version => {}
        Some(i) => entries[i] = entry,
        None => entries.push(entry),
    }
    set_entries(&mut merged, &entries);
    Ok(Applied { object: merged })
}

/// Records a write that is not an apply (create, update, patch, scale) by `manager`: the fields it sets or changes
/// become the manager's `Update` entry's and leave the other managers'; removed fields leave every entry. `new` is
/// the object about to be written (its `managedFields` as the client left them, which kube-apiserver honours).
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    schema: &Schema<'_>,
    manager: &str,
    api_version: &str,
    part: Part,
    now: &str,
) {
    let subresource = part.subresource();
    let new_tracked = tracked(new, part);
    let old_tracked = old.map(|o| tracked(o, part));
    let changed = Set::changed(old_tracked.as_ref(), &new_tracked, schema).unwrap_or_default();
    let removed = old_tracked
        .as_ref()
        .and_then(|o| Set::removed(o, Some(&new_tracked), schema))
        .map(|r| r.leaves())
        .unwrap_or_default();
    if changed.is_empty() && removed.is_empty() {
        return;
    }
    // A client that leaves managedFields out (a PUT of an object it built) keeps the stored ones, as admission does.
    let sent = new["metadata"].get("managedFields").is_some();
    let mut entries = match old {
        Some(old) if !sent => entries(old),
        _ => entries(new),
    };
    let changed_leaves = changed.leaves();
    for e in entries.iter_mut() {
        for path in removed.iter() {
            e.fields.remove(path);
        }
        if !e.is(manager, "Update", subresource) {
            for path in &changed_leaves {
                e.fields.remove(path);
            }
        }
    }
    match entries
        .iter_mut()
        .find(|e| e.is(manager, "Update", subresource))
    {
        Some(e) => {
            e.fields.union(&changed);
            e.api_version = api_version.to_string();
            e.time = Some(now.to_string());
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            api_version: api_version.to_string(),
            time: Some(now.to_string()),
            subresource: subresource.to_string(),
            fields: changed,
        }),
    }
    set_entries(new, &entries);
}
