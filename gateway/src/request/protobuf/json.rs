//! A decoded protobuf message printed as the JSON that Go's encoding/json prints for the same Kubernetes object:
//! the object client-go would have sent had it been asked for JSON.
//!
//! Go's rules, field by field (`schema::Rule`): a value (non-pointer) field is always on the wire, so its zero is
//! left out under `omitempty` and printed otherwise; a pointer field is on the wire only when set, so whatever is
//! there is printed, zero included; a struct is never omitted (`omitempty` does not apply to structs in Go);
//! embedded structs are inlined. The types with JSON of their own are printed as theirs: Time and MicroTime as
//! RFC 3339 strings, IntOrString as a number or a string, Quantity as a string, Duration as Go prints it,
//! RawExtension and FieldsV1 as the JSON they carry; `bytes` as base64, maps as objects.

use k8s_openapi::chrono::{DateTime, SecondsFormat};
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, ReflectMessage, Value as Pb};
use serde_json::{json, Map, Number, Value};

use super::schema::{Rule, Schema, META_V1};

/// Deepest nesting of messages printed (prost refuses deeper input at 100 already; this also bounds nested
/// envelopes inside RawExtensions).
pub(super) const MAX_DEPTH: usize = 100;

/// Why a message cannot be printed: the client sent something Go would have refused to decode or encode.
pub(super) type Invalid = String;

/// Decodes an object embedded as a protobuf envelope (in a RawExtension), at a nesting depth.
pub(super) type Envelope<'a> = dyn Fn(&[u8], usize) -> Result<Value, Invalid> + 'a;

/// Prints `message`. `depth` counts the messages around it; `envelope` decodes an embedded object that a
/// RawExtension carries as protobuf.
pub(super) fn message(
    schema: &Schema,
    message: &DynamicMessage,
    depth: usize,
    envelope: &Envelope<'_>,
) -> Result<Value, Invalid> {
    if depth > MAX_DEPTH {
        return Err(format!("objects nest deeper than {MAX_DEPTH} levels"));
    }
    let desc = message.descriptor();
    let name = desc.full_name();
    let field = |n: &str| {
        desc.get_field_by_name(n)
            .map(|f| message.get_field(&f).into_owned())
    };
    let present = |n: &str| {
        desc.get_field_by_name(n)
            .is_some_and(|f| message.has_field(&f))
    };
    match name.strip_prefix(META_V1).unwrap_or(name) {
        ".Time" => return time(present("seconds") || present("nanos"), field, false),
        ".MicroTime" => return time(present("seconds") || present("nanos"), field, true),
        ".Duration" => {
            return Ok(json!(go_duration(
                field("duration").and_then(|v| v.as_i64()).unwrap_or(0)
            )))
        }
        ".FieldsV1" => return raw_json(field("Raw"), depth, envelope, "fieldsV1"),
        ".Verbs" => return list_of_items(schema, message, depth, envelope),
        _ => {}
    }
    match name {
        // `type ExtraValue []string` (users' extra attributes in the review APIs): a named slice like Verbs.
        "k8s.io.api.authentication.v1.ExtraValue" | "k8s.io.api.authorization.v1.ExtraValue" => {
            list_of_items(schema, message, depth, envelope)
        }
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => {
            let kind = field("type").and_then(|v| v.as_i64()).unwrap_or(0);
            match kind {
                0 => Ok(json!(field("intVal").and_then(|v| v.as_i32()).unwrap_or(0))),
                1 => Ok(json!(field("strVal")
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default())),
                other => Err(format!("an IntOrString has the impossible type {other}")),
            }
        }
        "k8s.io.apimachinery.pkg.api.resource.Quantity"
        | "k8s.io.apimachinery.pkg.api.resource.QuantityValue" => {
            if !present("string") {
                return Ok(json!("0")); // Go's zero Quantity
            }
            match field("string").as_ref().and_then(Pb::as_str) {
                Some("") | None => Err("a quantity is empty".to_string()),
                Some(s) => Ok(json!(s)),
            }
        }
        "k8s.io.apimachinery.pkg.runtime.RawExtension" => {
            raw_json(field("raw"), depth, envelope, "RawExtension")
        }
        "k8s.io.apimachinery.pkg.runtime.Unknown" => {
            Err("a runtime.Unknown cannot appear inside an object".to_string())
        }
        _ => structure(schema, message, depth, envelope),
    }
}

/// A Go struct: its fields by their rules.
fn structure(
    schema: &Schema,
    message: &DynamicMessage,
    depth: usize,
    envelope: &Envelope<'_>,
) -> Result<Value, Invalid> {
    let desc = message.descriptor();
    let rules = schema
        .rules(desc.full_name())
        .ok_or_else(|| format!("{} has no JSON form", desc.full_name()))?;
    let mut out = Map::new();
    for field in desc.fields() {
        let Some(rule) = rules.get(&field.number()) else {
            return Err(format!(
                "{}.{} has no JSON form",
                desc.full_name(),
                field.name()
            ));
        };
        if rule.json == "-" {
            continue;
        }
        let Some(value) = field_value(schema, message, &field, rule, depth, envelope)? else {
            continue;
        };
        if rule.json.is_empty() {
            // An embedded struct: Go promotes its fields, the outer struct's own fields winning.
            if let Value::Object(inner) = value {
                for (k, v) in inner {
                    out.entry(k).or_insert(v);
                }
            }
        } else {
            out.insert(rule.json.clone(), value);
        }
    }
    Ok(Value::Object(out))
}

/// One field's JSON, or `None` when Go leaves it out.
fn field_value(
    schema: &Schema,
    message: &DynamicMessage,
    field: &FieldDescriptor,
    rule: &Rule,
    depth: usize,
    envelope: &Envelope<'_>,
) -> Result<Option<Value>, Invalid> {
    let present = message.has_field(field);
    let nil = || (!rule.omitempty).then_some(Value::Null);
    if field.is_map() || field.is_list() {
        // Protobuf cannot tell an empty list from none; Go decodes both as nil.
        if !present {
            return Ok(nil());
        }
        let value = message.get_field(field);
        let kind = if field.is_map() {
            match field.kind() {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                other => other,
            }
        } else {
            field.kind()
        };
        return Ok(Some(match value.as_ref() {
            Pb::List(items) => Value::Array(
                items
                    .iter()
                    .map(|v| scalar_or_message(schema, &kind, v, depth, envelope))
                    .collect::<Result<_, _>>()?,
            ),
            Pb::Map(entries) => {
                let mut out = Map::new();
                for (k, v) in entries {
                    out.insert(
                        map_key(k),
                        scalar_or_message(schema, &kind, v, depth, envelope)?,
                    );
                }
                Value::Object(out)
            }
            _ => return Err(format!("{} is not a list or map", field.full_name())),
        }));
    }
    if let Kind::Message(desc) = field.kind() {
        return Ok(match (present, rule.pointer) {
            (true, _) => Some(message_value(
                schema,
                &message.get_field(field),
                depth,
                envelope,
            )?),
            (false, true) => nil(),
            // A value struct missing from the wire is Go's zero struct, printed in full.
            (false, false) => Some(self::message(
                schema,
                &DynamicMessage::new(desc),
                depth + 1,
                envelope,
            )?),
        });
    }
    if !present && rule.pointer {
        return Ok(nil());
    }
    if !present && field.kind() == Kind::Bytes {
        return Ok(nil()); // a nil []byte
    }
    let value = scalar(&message.get_field(field))?;
    let zero = match &value {
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        _ => false,
    };
    // Only a value field (always on the wire) is tested for its zero: a pointer that is present was set.
    Ok((rule.pointer || !rule.omitempty || !zero).then_some(value))
}

fn scalar_or_message(
    schema: &Schema,
    kind: &Kind,
    value: &Pb,
    depth: usize,
    envelope: &Envelope<'_>,
) -> Result<Value, Invalid> {
    match kind {
        Kind::Message(_) => message_value(schema, value, depth, envelope),
        _ => scalar(value),
    }
}

fn message_value(
    schema: &Schema,
    value: &Pb,
    depth: usize,
    envelope: &Envelope<'_>,
) -> Result<Value, Invalid> {
    match value {
        Pb::Message(m) => message(schema, m, depth + 1, envelope),
        other => Err(format!("expected a message, found {other:?}")),
    }
}

fn scalar(value: &Pb) -> Result<Value, Invalid> {
    Ok(match value {
        Pb::Bool(b) => json!(b),
        Pb::I32(n) => json!(n),
        Pb::I64(n) => json!(n),
        Pb::U32(n) => json!(n),
        Pb::U64(n) => json!(n),
        Pb::F32(n) => float(f64::from(*n))?,
        Pb::F64(n) => float(*n)?,
        Pb::String(s) => json!(s),
        // Go prints []byte as standard base64, as k8s-openapi's ByteString does.
        Pb::Bytes(b) => {
            serde_json::to_value(k8s_openapi::ByteString(b.to_vec())).map_err(|e| e.to_string())?
        }
        Pb::EnumNumber(n) => json!(n),
        Pb::Message(_) | Pb::List(_) | Pb::Map(_) => {
            return Err(format!("expected a scalar, found {value:?}"))
        }
    })
}

fn float(n: f64) -> Result<Value, Invalid> {
    Number::from_f64(n)
        .map(Value::Number)
        .ok_or_else(|| format!("{n} has no JSON form"))
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

/// Go's zero `time.Time` (January 1, year 1, UTC) in seconds since 1970.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// metav1.Time (whole seconds: its protobuf decoder drops the nanoseconds) or MicroTime, in UTC; Go's zero time
/// (an empty message) is `null`.
fn time(set: bool, field: impl Fn(&str) -> Option<Pb>, micro: bool) -> Result<Value, Invalid> {
    if !set {
        return Ok(Value::Null);
    }
    let seconds = field("seconds").and_then(|v| v.as_i64()).unwrap_or(0);
    let nanos = if micro {
        field("nanos").and_then(|v| v.as_i32()).unwrap_or(0)
    } else {
        0
    };
    if seconds == GO_ZERO_TIME && nanos == 0 {
        return Ok(Value::Null); // time.Time{} sent explicitly
    }
    let nanos = u32::try_from(nanos).map_err(|_| format!("a time has {nanos} nanoseconds"))?;
    let at = DateTime::from_timestamp(seconds, nanos)
        .ok_or_else(|| format!("the time {seconds}s after 1970 is out of range"))?;
    let format = if micro {
        SecondsFormat::Micros
    } else {
        SecondsFormat::Secs
    };
    Ok(json!(at.to_rfc3339_opts(format, true)))
}

/// The JSON bytes of a RawExtension or FieldsV1 (or an embedded object in the protobuf envelope).
fn raw_json(
    raw: Option<Pb>,
    depth: usize,
    envelope: &Envelope<'_>,
    what: &str,
) -> Result<Value, Invalid> {
    let bytes = match raw {
        Some(Pb::Bytes(b)) if !b.is_empty() => b,
        _ => return Ok(Value::Null),
    };
    if bytes.starts_with(&super::MAGIC) {
        return envelope(&bytes, depth + 1);
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("the {what} is not JSON: {e}"))
}

/// A named Go slice (`type Verbs []string`), which protobuf wraps in a message of `items`.
fn list_of_items(
    schema: &Schema,
    message: &DynamicMessage,
    depth: usize,
    envelope: &Envelope<'_>,
) -> Result<Value, Invalid> {
    let desc = message.descriptor();
    let items = desc
        .get_field_by_name("items")
        .ok_or_else(|| format!("{} has no items", desc.full_name()))?;
    if !message.has_field(&items) {
        return Ok(Value::Null);
    }
    let kind = items.kind();
    match message.get_field(&items).as_ref() {
        Pb::List(values) => Ok(Value::Array(
            values
                .iter()
                .map(|v| scalar_or_message(schema, &kind, v, depth, envelope))
                .collect::<Result<_, _>>()?,
        )),
        _ => Err(format!("{}.items is not a list", desc.full_name())),
    }
}

/// A duration as Go's `time.Duration.String` prints it: `1h2m3.5s`, `1.5ms`, `0s`.
pub(super) fn go_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n == 0 {
        return "0s".into();
    }
    // Below a second Go uses the largest unit that keeps the integer part non-zero.
    let fraction = |value: u64, unit: u64| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            whole.to_string()
        } else {
            let digits = unit.to_string().len() - 1;
            let rest = format!("{rest:0digits$}");
            format!("{whole}.{}", rest.trim_end_matches('0'))
        }
    };
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", fraction(n, 1_000));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", fraction(n, 1_000_000));
    }
    let seconds = fraction(n % 60_000_000_000, 1_000_000_000);
    let minutes = n / 60_000_000_000;
    match (minutes / 60, minutes % 60) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}
