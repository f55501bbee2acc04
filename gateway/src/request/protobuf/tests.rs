//! The decoder against bodies the real kubectl 1.32 sent (`tests/fixtures/protobuf/`, see `capture.py` there),
//! against messages built here for the special types, and against garbage.

use navarch_bus::api::Reason;
use prost_reflect::prost::Message;
use prost_reflect::{DynamicMessage, Kind, MapKey, MessageDescriptor, Value as Pb};
use serde_json::{json, Value};

use super::json::go_duration;
use super::schema::Schema;
use super::*;

macro_rules! fixture {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../../../tests/fixtures/protobuf/", $name, ".bin")).as_slice(),
            include_str!(concat!("../../../tests/fixtures/protobuf/", $name, ".json")),
        )
    };
}

/// Each kubectl body and the object `kubectl ... --dry-run=client -o json` printed for the same command.
const FIXTURES: &[(&str, &[u8], &str)] = &[
    fixture!("namespace"),
    fixture!("configmap"),
    fixture!("secret"),
    fixture!("deployment"),
    fixture!("deployment-zero"),
    fixture!("service"),
    fixture!("serviceaccount"),
    fixture!("role"),
    fixture!("rolebinding"),
    fixture!("clusterrole"),
    fixture!("clusterrolebinding"),
    fixture!("job"),
];

fn fixture(name: &str) -> Value {
    let (_, bin, _) = FIXTURES.iter().find(|(n, _, _)| *n == name).unwrap();
    decode(bin).unwrap()
}

#[test]
fn kubectl_bodies_decode_to_what_kubectl_prints_as_json() {
    for (name, bin, json) in FIXTURES {
        let expected: Value = serde_json::from_str(json).unwrap();
        let decoded = decode(bin).unwrap_or_else(|e| panic!("{name}: {}", e.message));
        assert_eq!(decoded, expected, "{name}");
    }
}

#[test]
fn the_fields_that_matter_come_through() {
    let ns = fixture("namespace");
    assert_eq!(ns["apiVersion"], "v1");
    assert_eq!(ns["kind"], "Namespace");
    assert_eq!(
        ns["metadata"],
        json!({"name": "team-a", "creationTimestamp": null})
    );

    let cm = fixture("configmap");
    assert_eq!(cm["metadata"]["name"], "cfg");
    assert_eq!(cm["data"], json!({"a": "b", "c": "d"}));

    let secret = fixture("secret");
    assert_eq!(secret["data"], json!({"password": "aHVudGVyMg=="})); // base64 of hunter2
    assert!(secret.get("type").is_none(), "{secret}"); // not set by kubectl; "" is omitted

    let d = fixture("deployment");
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "busybox");
    assert_eq!(container["ports"], json!([{"containerPort": 8080}]));
    // A pointer set to zero stays: without it the deployment would default to one replica.
    assert_eq!(fixture("deployment-zero")["spec"]["replicas"], 0);

    let svc = fixture("service");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}])
    );

    let role = fixture("role");
    assert_eq!(role["apiVersion"], "rbac.authorization.k8s.io/v1");
    assert_eq!(
        role["rules"],
        json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])
    );
    let rb = fixture("rolebinding");
    assert_eq!(
        rb["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"})
    );
    assert_eq!(
        rb["subjects"],
        json!([{"kind": "ServiceAccount", "name": "sa", "namespace": "default"}])
    );
    assert_eq!(fixture("serviceaccount")["metadata"]["name"], "sa");
}

#[test]
fn every_message_has_a_json_form() {
    let schema = Schema::get().unwrap();
    let custom = [
        "k8s.io.apimachinery.pkg.api.resource.Quantity",
        "k8s.io.apimachinery.pkg.api.resource.QuantityValue",
        "k8s.io.apimachinery.pkg.apis.meta.v1.Time",
        "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime",
        "k8s.io.apimachinery.pkg.apis.meta.v1.Verbs",
        "k8s.io.api.authentication.v1.ExtraValue",
        "k8s.io.api.authorization.v1.ExtraValue",
        "k8s.io.apimachinery.pkg.apis.meta.v1.Patch", // no fields
    ];
    let mut checked = 0;
    for message in schema.messages() {
        if message.is_map_entry() || custom.contains(&message.full_name()) {
            continue;
        }
        let rules = schema
            .rules(message.full_name())
            .unwrap_or_else(|| panic!("{} has no rules", message.full_name()));
        for field in message.fields() {
            assert!(rules.contains_key(&field.number()), "{}", field.full_name());
        }
        checked += 1;
    }
    assert!(checked > 400, "{checked}");
    for (api_version, kind) in [
        ("v1", "Namespace"),
        ("v1", "Pod"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"),
        ("v1", "Service"),
        ("v1", "Endpoints"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Node"),
        ("v1", "Event"),
        ("coordination.k8s.io/v1", "Lease"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("v1", "ServiceAccount"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("autoscaling/v1", "Scale"),
        ("v1", "DeleteOptions"),
        ("apps/v1", "DeleteOptions"),
        ("events.k8s.io/v1", "Event"),
    ] {
        assert!(
            schema.kind(api_version, kind).is_some(),
            "{api_version} {kind}"
        );
    }
    assert!(schema.kind("v1", "core.v1.Pod").is_none());
    assert!(schema.kind("apps/v1", "Gadget").is_none());
}

/// Builds a message from JSON written with protobuf field names: objects are messages or maps, arrays lists,
/// strings are strings or (for `bytes`) their UTF-8 bytes.
fn build(desc: MessageDescriptor, value: &Value) -> DynamicMessage {
    let mut message = DynamicMessage::new(desc.clone());
    for (name, v) in value.as_object().unwrap() {
        let field = desc
            .get_field_by_name(name)
            .unwrap_or_else(|| panic!("{} has no {name}", desc.full_name()));
        let one = |kind: &Kind, v: &Value| -> Pb {
            match kind {
                Kind::Message(m) => Pb::Message(build(m.clone(), v)),
                Kind::Int32 => Pb::I32(v.as_i64().unwrap() as i32),
                Kind::Int64 => Pb::I64(v.as_i64().unwrap()),
                Kind::Bool => Pb::Bool(v.as_bool().unwrap()),
                Kind::String => Pb::String(v.as_str().unwrap().into()),
                Kind::Bytes => Pb::Bytes(v.as_str().unwrap().as_bytes().to_vec().into()),
                Kind::Double => Pb::F64(v.as_f64().unwrap()),
                other => panic!("{other:?}"),
            }
        };
        let pb = if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                unreachable!()
            };
            let kind = entry.map_entry_value_field().kind();
            Pb::Map(
                v.as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (MapKey::String(k.clone()), one(&kind, v)))
                    .collect(),
            )
        } else if field.is_list() {
            Pb::List(
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| one(&field.kind(), v))
                    .collect(),
            )
        } else {
            one(&field.kind(), v)
        };
        message.set_field(&field, pb);
    }
    message
}

/// The envelope around `object` (protobuf field names) of `kind`.
fn envelope_of(api_version: &str, kind: &str, object: &Value) -> Vec<u8> {
    let schema = Schema::get().unwrap();
    let raw = build(schema.kind(api_version, kind).unwrap(), object).encode_to_vec();
    wrap(api_version, kind, raw)
}

fn wrap(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let schema = Schema::get().unwrap();
    let unknown = build(
        schema.message(UNKNOWN).unwrap(),
        &json!({"typeMeta": {"apiVersion": api_version, "kind": kind}}),
    );
    let mut unknown = unknown;
    unknown.set_field_by_name("raw", Pb::Bytes(raw.into()));
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

#[test]
fn special_types_print_as_go_prints_them() {
    let pod = json!({
        "metadata": {"name": "p", "creationTimestamp": {"seconds": 1_700_000_000, "nanos": 5},
                     "deletionGracePeriodSeconds": 0, "generation": 0},
        "spec": {
            "containers": [{
                "name": "c",
                "resources": {"limits": {"cpu": {"string": "500m"}, "memory": {"string": "64Mi"}}},
                "livenessProbe": {"handler": {"httpGet": {"path": "/", "port": {"type": 1, "strVal": "http"}}},
                                  "periodSeconds": 0},
                "ports": [{"containerPort": 80, "hostPort": 0}],
                "securityContext": {"runAsUser": 0, "privileged": false},
            }],
            "volumes": [{"name": "v", "volumeSource": {"configMap": {"localObjectReference": {"name": "cfg"}}}}],
            "terminationGracePeriodSeconds": 0,
            "restartPolicy": "",
        },
    });
    let v = decode(&envelope_of("v1", "Pod", &pod)).unwrap();
    assert_eq!(v["kind"], "Pod");
    assert_eq!(
        v["metadata"],
        json!({"name": "p", "creationTimestamp": "2023-11-14T22:13:20Z", "deletionGracePeriodSeconds": 0})
    );
    let c = &v["spec"]["containers"][0];
    assert_eq!(
        c["resources"]["limits"],
        json!({"cpu": "500m", "memory": "64Mi"})
    );
    // Probe inlines its handler; IntOrString of type 1 is a string.
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"path": "/", "port": "http"}})
    );
    assert_eq!(c["ports"], json!([{"containerPort": 80}]));
    assert_eq!(
        c["securityContext"],
        json!({"runAsUser": 0, "privileged": false})
    );
    // Volume inlines its source; ConfigMapVolumeSource inlines its LocalObjectReference.
    assert_eq!(
        v["spec"]["volumes"],
        json!([{"name": "v", "configMap": {"name": "cfg"}}])
    );
    assert_eq!(v["spec"]["terminationGracePeriodSeconds"], 0);
    assert!(v["spec"].get("restartPolicy").is_none());
    assert_eq!(v["status"], json!({}));

    // MicroTime keeps microseconds; Event's count is a value field.
    let event = json!({"metadata": {"name": "e"}, "eventTime": {"seconds": 1_700_000_000, "nanos": 123_456_789},
                       "involvedObject": {"kind": "Pod", "name": "p"}, "count": 3});
    let v = decode(&envelope_of("v1", "Event", &event)).unwrap();
    assert_eq!(v["eventTime"], "2023-11-14T22:13:20.123456Z");
    assert_eq!(v["count"], 3);
    assert_eq!(v["firstTimestamp"], Value::Null);

    let lease = json!({"metadata": {"name": "l"},
                       "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15,
                                "renewTime": {"seconds": 1_700_000_000, "nanos": 1_000}}});
    let v = decode(&envelope_of("coordination.k8s.io/v1", "Lease", &lease)).unwrap();
    assert_eq!(
        v["spec"],
        json!({"holderIdentity": "me", "leaseDurationSeconds": 15, "renewTime": "2023-11-14T22:13:20.000001Z"})
    );

    let hpa = json!({"metadata": {"name": "h"},
                     "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                              "minReplicas": 1, "maxReplicas": 4,
                              "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                  "target": {"type": "Utilization", "averageUtilization": 80}}}]}});
    let v = decode(&envelope_of(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        &hpa,
    ))
    .unwrap();
    assert_eq!(v["apiVersion"], "autoscaling/v2");
    assert_eq!(v["spec"]["minReplicas"], 1);
    assert_eq!(
        v["spec"]["metrics"][0]["resource"]["target"],
        json!({"type": "Utilization", "averageUtilization": 80})
    );
    assert_eq!(
        v["status"],
        json!({"desiredReplicas": 0, "currentMetrics": null})
    );

    let scale =
        json!({"metadata": {"name": "web", "resourceVersion": "7"}, "spec": {"replicas": 0}});
    let v = decode(&envelope_of("autoscaling/v1", "Scale", &scale)).unwrap();
    assert_eq!(v["spec"], json!({}), "a Scale's replicas is a value field");
    assert_eq!(v["metadata"]["resourceVersion"], "7");

    let delete = json!({"gracePeriodSeconds": 0, "propagationPolicy": "Foreground",
                        "preconditions": {"uid": "u1"}});
    let v = decode(&envelope_of("v1", "DeleteOptions", &delete)).unwrap();
    assert_eq!(
        v,
        json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
               "propagationPolicy": "Foreground", "preconditions": {"uid": "u1"}})
    );
}

#[test]
fn raw_extensions_fields_and_bytes_carry_their_json() {
    let secret = json!({"metadata": {"name": "s"}, "data": {"k": "\u{0}\u{1}x"}, "immutable": false,
                        "type": "Opaque"});
    let v = decode(&envelope_of("v1", "Secret", &secret)).unwrap();
    assert_eq!(v["data"], json!({"k": "AAF4"}));
    assert_eq!(v["immutable"], false);
    assert_eq!(v["type"], "Opaque");

    let revision = json!({"metadata": {"name": "r", "managedFields": [{"manager": "m",
                              "fieldsV1": {"Raw": "{\"f:spec\":{}}"}}]},
                          "data": {"raw": "{\"spec\":{\"replicas\":1}}"}, "revision": 2});
    let v = decode(&envelope_of("apps/v1", "ControllerRevision", &revision)).unwrap();
    assert_eq!(v["data"], json!({"spec": {"replicas": 1}}));
    assert_eq!(v["revision"], 2);
    assert_eq!(
        v["metadata"]["managedFields"],
        json!([{"manager": "m", "fieldsV1": {"f:spec": {}}}])
    );

    // An object inside a RawExtension may itself be a protobuf envelope.
    let schema = Schema::get().unwrap();
    let inner = envelope_of("v1", "ConfigMap", &json!({"metadata": {"name": "c"}}));
    let mut revision = build(
        schema.kind("apps/v1", "ControllerRevision").unwrap(),
        &json!({"metadata": {"name": "r"}, "data": {}}),
    );
    let data = revision.get_field_by_name_mut("data").unwrap();
    data.as_message_mut()
        .unwrap()
        .set_field_by_name("raw", Pb::Bytes(inner.into()));
    let v = decode(&wrap(
        "apps/v1",
        "ControllerRevision",
        revision.encode_to_vec(),
    ))
    .unwrap();
    assert_eq!(
        v["data"],
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "creationTimestamp": null}})
    );

    let bad = json!({"metadata": {"name": "r"}, "data": {"raw": "{not json"}});
    let e = decode(&envelope_of("apps/v1", "ControllerRevision", &bad)).unwrap_err();
    assert_eq!(e.reason, Reason::BadRequest, "{}", e.message);
    let bad = json!({"metadata": {"name": "p"}, "spec": {"ports": [{"port": 80,
                     "targetPort": {"type": 7}}]}});
    let e = decode(&envelope_of("v1", "Service", &bad)).unwrap_err();
    assert!(e.message.contains("IntOrString"), "{}", e.message);
    let bad = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c",
                     "resources": {"limits": {"cpu": {"string": ""}}}}]}});
    assert_eq!(
        decode(&envelope_of("v1", "Pod", &bad)).unwrap_err().code(),
        400
    );
}

#[test]
fn durations_print_as_go_prints_them() {
    for (nanos, text) in [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (1_500_000, "1.5ms"),
        (1_000_000_000, "1s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_723_500_000_000, "1h2m3.5s"),
        (-2_000_000_000, "-2s"),
    ] {
        assert_eq!(go_duration(nanos), text, "{nanos}");
    }
}

#[test]
fn kinds_it_cannot_decode_are_415_naming_the_kind() {
    let body = wrap("apps/v1", "Gadget", vec![]);
    let e = decode(&body).unwrap_err();
    assert_eq!(e.reason, Reason::UnsupportedMediaType);
    assert!(e.message.contains("\"Gadget\""), "{}", e.message);
    let e = decode(&wrap("apps/v9", "Deployment", vec![])).unwrap_err();
    assert_eq!(e.code(), 415, "{}", e.message);
    let e = decode(&wrap("v1", "", vec![])).unwrap_err();
    assert_eq!(e.code(), 400, "{}", e.message);
}

#[test]
fn garbage_is_400_and_never_a_panic() {
    for body in [
        &b""[..],
        b"k8s",
        b"k8s\x01\x0a\x00",
        b"{\"kind\":\"Namespace\"}",
        b"k8s\0\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        b"k8s\0\x0a\x05\x0a\x02v1",
        b"k8s\0\x12\x7f",
    ] {
        let e = decode(body).unwrap_err();
        assert_eq!(e.reason, Reason::BadRequest, "{body:?}: {}", e.message);
    }
    // Unknown groups nested far past prost's recursion limit: refused, not a stack overflow.
    let mut raw = Vec::new();
    for _ in 0..10_000 {
        raw.extend([0xa3, 0x06]); // field 100, start group
    }
    assert_eq!(decode(&wrap("v1", "Pod", raw)).unwrap_err().code(), 400);

    // Every truncation and many corruptions of every real body: an object or a 400/415, never a panic.
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (name, bin, _) in FIXTURES {
        for cut in 0..bin.len() {
            match decode(&bin[..cut]) {
                Ok(v) => assert!(v.is_object(), "{name} cut at {cut}"),
                Err(e) => assert_eq!(e.code(), 400, "{name} cut at {cut}: {}", e.message),
            }
        }
        assert_eq!(
            decode(&bin[..bin.len() - 1]).unwrap_err().code(),
            400,
            "{name}"
        );
        for _ in 0..500 {
            let mut body = bin.to_vec();
            for _ in 0..1 + next() % 4 {
                let at = 4 + (next() as usize) % (body.len() - 4);
                body[at] = next() as u8;
            }
            match decode(&body) {
                Ok(v) => assert!(v.is_object(), "{name}: {body:?}"),
                Err(e) => assert!(
                    matches!(e.code(), 400 | 415),
                    "{name}: {body:?}: {}",
                    e.message
                ),
            }
        }
    }
}

#[test]
fn unknown_fields_are_ignored_as_kube_apiserver_ignores_them() {
    let (_, bin, _) = FIXTURES[0];
    let schema = Schema::get().unwrap();
    let unknown = DynamicMessage::decode(schema.message(UNKNOWN).unwrap(), &bin[4..]).unwrap();
    let mut raw = unknown
        .get_field_by_name("raw")
        .unwrap()
        .as_bytes()
        .unwrap()
        .to_vec();
    raw.extend([0xf8, 0x06, 0x01]); // field 111, varint 1
    let v = decode(&wrap("v1", "Namespace", raw)).unwrap();
    assert_eq!(v["metadata"]["name"], "team-a");
}
