//! Tests of env resolution, `$(VAR)` expansion and volume files.

use super::*;
use serde_json::json;

fn pod(container: serde_json::Value, volumes: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "demo", "uid": "u-1",
                     "labels": {"app": "web"}, "annotations": {"note": "hi"}},
        "spec": {"nodeName": "n1", "serviceAccountName": "sa", "containers": [container], "volumes": volumes}
    }))
    .unwrap()
}

fn sources() -> Sources {
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "cfg"}, "data": {"color": "blue", "size": "L", "bad key": "x"}
    }))
    .unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "creds"}, "data": {"password": "aHVudGVyMg=="}
    }))
    .unwrap();
    Sources {
        config_maps: HashMap::from([("cfg".into(), Some(cm)), ("gone".into(), None)]),
        secrets: HashMap::from([("creds".into(), Some(secret))]),
    }
}

fn ips() -> PodIps {
    PodIps {
        pod_ip: "10.88.0.5".into(),
        host_ip: "192.168.1.2".into(),
    }
}

fn env_of(container: serde_json::Value) -> Result<Vec<(String, String)>, ConfigError> {
    let p = pod(container, json!([]));
    let c = p.spec.as_ref().unwrap().containers[0].clone();
    environment(&p, &c, &sources(), &ips())
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn env_comes_from_values_objects_and_fields_in_order() {
    let env = env_of(json!({"name": "c",
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CM_"}],
        "env": [
            {"name": "A", "value": "one"},
            {"name": "CM_size", "value": "XL"},
            {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
            {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "NOTE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": true}}},
            {"name": "B", "value": "$(A)-$(COLOR)-$(NOPE)-$$(A)-$"}
        ]}))
    .unwrap();
    assert_eq!(
        env,
        pairs(&[
            ("CM_color", "blue"),
            ("A", "one"),
            ("CM_size", "XL"),
            ("COLOR", "blue"),
            ("PASS", "hunter2"),
            ("NAME", "web"),
            ("IP", "10.88.0.5"),
            ("HOST", "192.168.1.2"),
            ("APP", "web"),
            ("NOTE", "hi"),
            ("SA", "sa"),
            ("B", "one-blue-$(NOPE)-$(A)-$"),
        ])
    );
}

#[test]
fn missing_objects_and_keys_are_reported_as_the_kubelet_words_them() {
    let missing_map = env_of(json!({"name": "c", "env": [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]}));
    assert_eq!(
        missing_map,
        Err(ConfigError("configmap \"absent\" not found".into()))
    );
    let missing_key = env_of(json!({"name": "c", "env": [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]}));
    assert_eq!(
        missing_key,
        Err(ConfigError(
            "couldn't find key k in ConfigMap demo/cfg".into()
        ))
    );
    let missing_secret_key = env_of(json!({"name": "c", "env": [
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}}]}));
    assert_eq!(
        missing_secret_key,
        Err(ConfigError(
            "couldn't find key user in Secret demo/creds".into()
        ))
    );
    let missing_env_from =
        env_of(json!({"name": "c", "envFrom": [{"secretRef": {"name": "nope"}}]}));
    assert_eq!(
        missing_env_from,
        Err(ConfigError("secret \"nope\" not found".into()))
    );
    let optional = env_of(
        json!({"name": "c", "envFrom": [{"secretRef": {"name": "nope", "optional": true}}]}),
    );
    assert_eq!(optional, Ok(vec![]));
    let bad_field = env_of(json!({"name": "c", "env": [
        {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"}}}]}));
    assert_eq!(
        bad_field,
        Err(ConfigError("unsupported fieldPath: spec.hostname".into()))
    );
}

#[test]
fn resource_fields_give_whole_cores_and_bytes() {
    let env = env_of(json!({"name": "c",
    "resources": {"limits": {"cpu": "1500m", "memory": "64Mi"}},
    "env": [
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}}
    ]}))
    .unwrap();
    assert_eq!(env, pairs(&[("CPU", "2"), ("MEM", "67108864")]));
}

#[test]
fn expansion_follows_kubernetes() {
    let env = HashMap::from([("A", "x"), ("EMPTY", "")]);
    assert_eq!(
        expand("$(A)$(EMPTY)|$(B)|$$|$$$(A)|$(A", &env),
        "x|$(B)|$|$x|$(A"
    );
    assert_eq!(expand("no vars", &env), "no vars");
    assert_eq!(expand("trailing $", &env), "trailing $");
}

#[test]
fn references_cover_env_env_from_and_volumes_of_every_container() {
    let mut p = pod(
        json!({"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}}]}),
        json!([{"name": "v", "configMap": {"name": "m2"}}, {"name": "w", "secret": {"secretName": "s2"}}]),
    );
    p.spec.as_mut().unwrap().init_containers = Some(vec![serde_json::from_value(
        json!({"name": "i", "envFrom": [{"configMapRef": {"name": "m1"}}]}),
    )
    .unwrap()]);
    let (maps, secrets) = references(&p);
    assert_eq!(maps.into_iter().collect::<Vec<_>>(), ["m1", "m2"]);
    assert_eq!(secrets.into_iter().collect::<Vec<_>>(), ["s1", "s2"]);
}

#[test]
fn volume_files_follow_items_modes_and_optional() {
    let p = pod(json!({"name": "c"}), json!([]));
    let volume = |v: serde_json::Value| -> Volume { serde_json::from_value(v).unwrap() };
    let all = volume_files(
        &p,
        &volume(json!({"name": "v", "configMap": {"name": "cfg", "defaultMode": 0o600}})),
        &sources(),
    );
    let all = all.unwrap().unwrap();
    assert_eq!(
        all.iter()
            .map(|f| (f.path.as_str(), f.mode))
            .collect::<Vec<_>>(),
        [("bad key", 0o600), ("color", 0o600), ("size", 0o600)]
    );
    let items = volume_files(
        &p,
        &volume(json!({"name": "v", "secret": {"secretName": "creds",
            "items": [{"key": "password", "path": "db/pass", "mode": 0o400}]}})),
        &sources(),
    );
    assert_eq!(
        items,
        Some(Ok(vec![VolumeFile {
            path: "db/pass".into(),
            data: b"hunter2".to_vec(),
            mode: 0o400
        }]))
    );
    let missing = volume_files(
        &p,
        &volume(json!({"name": "v", "configMap": {"name": "absent"}})),
        &sources(),
    );
    assert_eq!(
        missing,
        Some(Err(ConfigError("configmap \"absent\" not found".into())))
    );
    let optional = volume_files(
        &p,
        &volume(json!({"name": "v", "configMap": {"name": "absent", "optional": true}})),
        &sources(),
    );
    assert_eq!(optional, Some(Ok(vec![])));
    let escape = volume_files(
        &p,
        &volume(
            json!({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "color", "path": "../x"}]}}),
        ),
        &sources(),
    );
    assert!(matches!(escape, Some(Err(_))));
    assert_eq!(
        volume_files(
            &p,
            &volume(json!({"name": "v", "emptyDir": {}})),
            &sources()
        ),
        None
    );
}
