//! Secrets encrypted at rest. Through the real kubectl against `navarch up`: a Secret's value reads back but no
//! file of the data directory holds it, in plain text or base64, while a ConfigMap's value is found by the same scan;
//! rotating keys with `navarch secrets reencrypt` leaves every Secret readable under the new key alone; bad key files
//! are one-line errors. In-process against a real store member: every read and write path of `Objects` seals and
//! opens Secrets, reads values written before encryption, and refuses values under unknown keys with a 500 naming
//! the key.

#![allow(clippy::disallowed_methods)]

mod util;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine;
use navarch_bus::api::admission::{FieldValidation, Part};
use navarch_bus::api::{resource, DeleteOptions, EncryptionKeys, Objects, Reason, WatchType};
use navarch_bus::store::StoreClient;
use navarch_bus::transport::embedded::Embedded;
use navarch_bus::Bus;
use navarch_store::{Shutdown, StoreConfig, StoreMember};
use serde_json::{json, Value};
use util::*;

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Paths of every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if entry.file_type().expect("file type").is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// The files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .filter(|f| {
            std::fs::read(f)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .map(|f| f.display().to_string())
        .collect()
}

/// A Secret's `data[key]`, decoded.
fn secret_value(kubectl: &Kubectl, namespace: &str, name: &str, key: &str) -> String {
    let secret = kubectl.json(&["get", "secret", name, "-n", namespace]);
    let encoded = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no data.{key}: {secret}"));
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64"),
    )
    .expect("utf-8")
}

fn apply(kubectl: &Kubectl, manifest: &str) {
    let out = kubectl.apply_stdin(&["apply", "-f", "-"], manifest);
    assert!(
        out.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn secret_manifest(namespace: &str, name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\nstringData: {{password: {value}}}\n"
    )
}

#[test]
fn no_file_of_the_data_directory_holds_a_secret_value() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let (mut up, kubeconfig, api) = start_up_at(&data, &[]);
    let kubectl = Kubectl::new(&kubeconfig);

    // Without --encryption-key-file, `up` generated a key file only its owner can read.
    let key_file = data.join("encryption-keys.yaml");
    let mode = std::fs::metadata(&key_file)
        .expect("generated key file")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    let secret = "navarch-canary-secret-f3a9c71d";
    let changed = "navarch-canary-changed-0b6e52aa";
    let deleted = "navarch-canary-deleted-9d14c3e7";
    let config = "navarch-canary-configmap-5c2e8b40";
    apply(&kubectl, &secret_manifest("default", "db", secret));
    apply(
        &kubectl,
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: default}}\ndata: {{note: {config}}}\n"),
    );
    assert_eq!(secret_value(&kubectl, "default", "db", "password"), secret);
    let created_rv = kubectl.json(&["get", "secret", "db"])["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_string();

    // Every write path: apply (create, then patch), label (patch), replace (update), delete.
    apply(
        &kubectl,
        &format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: default}}\nstringData: {{password: {secret}, other: {changed}}}\n"),
    );
    kubectl.ok(&["label", "secret", "db", "tier=backend"]);
    let mut current = kubectl.json(&["get", "secret", "db"]);
    current["metadata"]["annotations"] = json!({"rotated": "no"});
    let out = kubectl.apply_stdin(&["replace", "-f", "-"], &current.to_string());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    apply(&kubectl, &secret_manifest("default", "doomed", deleted));
    kubectl.ok(&["delete", "secret", "doomed"]);

    assert_eq!(secret_value(&kubectl, "default", "db", "password"), secret);
    assert_eq!(secret_value(&kubectl, "default", "db", "other"), changed);
    let list = kubectl.json(&["get", "secrets", "-A"]);
    assert!(
        list["items"]
            .as_array()
            .is_some_and(|items| items.len() == 1),
        "{list}"
    );
    // A watch from the first version replays every change from the store's history, decrypted.
    let (code, events) = http_get(
        &api,
        &format!("/api/v1/namespaces/default/secrets?watch=1&resourceVersion={created_rv}&timeoutSeconds=1"),
    )
    .expect("watch");
    assert_eq!(code, 200, "{events}");
    for (kind, value) in [("MODIFIED", b64(changed)), ("DELETED", b64(deleted))] {
        assert!(
            events
                .lines()
                .any(|l| l.contains(kind) && l.contains(&value)),
            "a {kind} event with {value}: {events}"
        );
    }

    let status = up.terminate();
    assert!(status.success(), "navarch up exited with {status}");
    for needle in [secret, changed, deleted]
        .into_iter()
        .flat_map(|v| [v.to_string(), b64(v)])
    {
        let found = files_containing(&data, &needle);
        assert!(found.is_empty(), "{needle:?} is in {found:?}");
    }
    // The scan does see what is stored in plain text.
    assert!(
        !files_containing(&data.join("store"), config).is_empty(),
        "the ConfigMap's value should be in the store's files"
    );

    // A restart reuses the generated key file.
    let (mut up, kubeconfig, _) = start_up_at(&data, &[]);
    assert_eq!(
        secret_value(&Kubectl::new(&kubeconfig), "default", "db", "password"),
        secret
    );
    assert!(up.terminate().success());
}

/// Writes a key file listing `keys` (name, byte repeated 32 times) in that order.
fn write_keys(path: &Path, keys: &[(&str, u8)]) {
    let mut text = String::from("keys:\n");
    for (name, byte) in keys {
        text.push_str(&format!(
            "- name: {name}\n  secret: {}\n",
            base64::engine::general_purpose::STANDARD.encode([*byte; 32])
        ));
    }
    std::fs::write(path, text).expect("write key file");
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
}

#[test]
fn rotation_leaves_every_secret_readable_under_the_new_key_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let (a, ba, b) = (
        dir.path().join("a.yaml"),
        dir.path().join("ba.yaml"),
        dir.path().join("b.yaml"),
    );
    write_keys(&a, &[("key-a", 1)]);
    write_keys(&ba, &[("key-b", 2), ("key-a", 1)]);
    write_keys(&b, &[("key-b", 2)]);
    let secrets = [
        ("default", "one", "rotate-one"),
        ("default", "two", "rotate-two"),
        ("team", "three", "rotate-three"),
    ];
    let check_all = |kubectl: &Kubectl| {
        for (ns, name, value) in secrets {
            assert_eq!(secret_value(kubectl, ns, name, "password"), value);
        }
    };

    let (mut up, kubeconfig, _) =
        start_up_at(&data, &["--encryption-key-file", a.to_str().unwrap()]);
    let kubectl = Kubectl::new(&kubeconfig);
    apply(
        &kubectl,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n",
    );
    for (ns, name, value) in secrets {
        apply(&kubectl, &secret_manifest(ns, name, value));
    }
    check_all(&kubectl);
    assert!(up.terminate().success());

    // The new key first, the old one still there to read.
    let (mut up, kubeconfig, _) =
        start_up_at(&data, &["--encryption-key-file", ba.to_str().unwrap()]);
    let kubectl = Kubectl::new(&kubeconfig);
    check_all(&kubectl);
    let out = navarch()
        .args([
            "secrets",
            "reencrypt",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ])
        .output()
        .expect("run navarch secrets reencrypt");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!(
        "$ navarch secrets reencrypt\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());
    assert!(stdout.contains("re-encrypted 3 of 3 secrets"), "{stdout}");
    assert!(up.terminate().success());

    // Only the new key: everything reads.
    let (mut up, kubeconfig, _) =
        start_up_at(&data, &["--encryption-key-file", b.to_str().unwrap()]);
    check_all(&Kubectl::new(&kubeconfig));
    assert!(up.terminate().success());

    // Only the old key: a 500 naming the key the Secret needs, not garbage.
    let (mut up, kubeconfig, _) =
        start_up_at(&data, &["--encryption-key-file", a.to_str().unwrap()]);
    let out = Kubectl::new(&kubeconfig).run(&["get", "secret", "one"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("InternalError") && stderr.contains("\"key-b\""),
        "{stderr}"
    );
    assert!(up.terminate().success());
}

#[test]
fn bad_key_files_are_one_line_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let malformed = dir.path().join("malformed.yaml");
    std::fs::write(&malformed, "keys:\n- name: k\n  secret: c2hvcnQ=\n").unwrap();
    let missing = dir.path().join("missing.yaml");
    let data = dir.path().join("data");
    for (args, says) in [
        (
            vec![
                "up",
                "--data-dir",
                data.to_str().unwrap(),
                "--encryption-key-file",
                missing.to_str().unwrap(),
            ],
            "cannot read the encryption key file",
        ),
        (
            vec![
                "up",
                "--data-dir",
                data.to_str().unwrap(),
                "--encryption-key-file",
                malformed.to_str().unwrap(),
            ],
            "is 5 bytes; it must be 32",
        ),
        // The gateway reads its keys before it needs the bus.
        (
            vec![
                "gateway",
                "--nats",
                "nats://127.0.0.1:1",
                "--encryption-key-file",
                malformed.to_str().unwrap(),
            ],
            "is not valid",
        ),
        (
            vec![
                "controllers",
                "--nats",
                "nats://127.0.0.1:1",
                "--encryption-key-file",
                missing.to_str().unwrap(),
            ],
            "cannot read the encryption key file",
        ),
    ] {
        let out = navarch().args(&args).output().expect("run navarch");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        let line = stderr
            .lines()
            .find(|l| l.starts_with("navarch: error:"))
            .unwrap_or_else(|| panic!("{args:?}: no error line in {stderr}"));
        assert!(line.contains(says), "{args:?}: {line}");
    }
}

/// In-process: a store member on an embedded bus, and `Objects` with and without keys.
#[test]
fn every_object_path_seals_and_opens_secrets() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    run_in_system(async move {
        let router = Arc::new(Embedded::new());
        let bus = || Bus::new(router.clone(), "secrets-at-rest");
        let config = StoreConfig {
            data_dir: dir.path().join("store"),
            progress_interval: Duration::from_millis(100),
            ..Default::default()
        };
        let member = StoreMember::start(bus().await?, config).await?;
        let store = StoreClient::new(bus().await?);
        let keys = |names: &[(&str, u8)]| {
            EncryptionKeys::new(
                names
                    .iter()
                    .map(|(n, b)| (n.to_string(), [*b; 32]))
                    .collect(),
            )
        };
        let plain = Objects::new(store.clone());
        let sealed = Objects::new(store.clone()).with_encryption(Some(keys(&[("a", 1)])?));
        let secrets = resource::by_kind("v1", "Secret").context("Secret kind")?;
        let config_maps = resource::by_kind("v1", "ConfigMap").context("ConfigMap kind")?;
        let ns = Some("demo");
        let raw = |name: &'static str| {
            let store = store.clone();
            async move {
                let kv = store
                    .get(format!("/registry/secrets/demo/{name}").as_bytes())
                    .await?;
                anyhow::Ok(kv.context("stored")?.value)
            }
        };
        let secret = |name: &str, value: &str| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"v": value}});

        // The store elects itself a leader first.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while let Err(e) = plain
            .create(
                resource::by_kind("v1", "Namespace").context("Namespace kind")?,
                None,
                json!({"metadata": {"name": "demo"}}),
                FieldValidation::Strict,
            )
            .await
        {
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "no namespace: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // Written before encryption was on: plain JSON, and still readable with keys.
        plain
            .create(
                secrets,
                ns,
                secret("old", "before"),
                FieldValidation::Strict,
            )
            .await?;
        assert!(raw("old").await?.starts_with(b"{"));
        assert_eq!(
            sealed.get(secrets, ns, "old").await?["data"]["v"],
            b64("before")
        );
        let mut watch = sealed.watch(secrets, ns, 0).await?;

        let is_sealed = |value: &[u8], plaintext: &str| {
            value.starts_with(b"k8s:enc:xchacha20poly1305:v1:a:")
                && !value
                    .windows(plaintext.len())
                    .any(|w| w == plaintext.as_bytes())
        };
        // update: the old plain Secret is sealed on its next write.
        let mut old = sealed.get(secrets, ns, "old").await?;
        old["data"]["v"] = json!(b64("after"));
        sealed
            .update(secrets, ns, "old", old, Part::Main, FieldValidation::Strict)
            .await?;
        assert!(is_sealed(&raw("old").await?, &b64("after")));
        // create
        sealed
            .create(secrets, ns, secret("new", "fresh"), FieldValidation::Strict)
            .await?;
        assert!(is_sealed(&raw("new").await?, &b64("fresh")));
        // update_with (what patches and controllers use)
        sealed
            .update_with(secrets, ns, "new", Part::Main, |mut s| {
                s["metadata"]["labels"] = json!({"x": "y"});
                Ok(s)
            })
            .await?;
        assert!(is_sealed(&raw("new").await?, &b64("fresh")));
        // delete returns the decrypted object
        let gone = sealed
            .delete(secrets, ns, "new", &DeleteOptions::default())
            .await?;
        assert_eq!(gone["data"]["v"], b64("fresh"));
        // list
        let (items, _) = sealed.list(secrets, ns).await?;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["data"]["v"], b64("after"));
        // Other kinds stay plain JSON.
        sealed
            .create(
                config_maps,
                ns,
                json!({"metadata": {"name": "cm"}, "data": {"k": "visible"}}),
                FieldValidation::Strict,
            )
            .await?;
        let cm = store
            .get(b"/registry/configmaps/demo/cm")
            .await?
            .context("stored")?;
        assert!(cm.value.starts_with(b"{"));

        // The watch saw every change decrypted, with the previous versions.
        let mut seen = Vec::new();
        while seen.len() < 4 {
            let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
                .await?
                .context("watch ended")??;
            if event.kind != WatchType::Bookmark {
                seen.push(event);
            }
        }
        let data = |v: &Value| v["data"]["v"].as_str().unwrap_or_default().to_string();
        assert_eq!(seen[0].kind, WatchType::Modified);
        assert_eq!(
            (data(&seen[0].object), seen[0].previous.as_ref().map(data)),
            (b64("after"), Some(b64("before")))
        );
        assert_eq!(
            (seen[1].kind, data(&seen[1].object)),
            (WatchType::Added, b64("fresh"))
        );
        assert_eq!(seen[2].kind, WatchType::Modified);
        assert_eq!(seen[2].previous.as_ref().map(data), Some(b64("fresh")));
        assert_eq!(
            (seen[3].kind, data(&seen[3].object)),
            (WatchType::Deleted, b64("fresh"))
        );

        // Without the key: a 500 naming it, for get, list and watch.
        for objects in [
            plain.clone(),
            Objects::new(store.clone()).with_encryption(Some(keys(&[("b", 2)])?)),
        ] {
            let err = objects.get(secrets, ns, "old").await.unwrap_err();
            assert_eq!(err.reason, Reason::InternalError);
            assert!(err.message.contains("key \"a\""), "{err}");
            let err = objects.list(secrets, ns).await.unwrap_err();
            assert!(err.message.contains("key \"a\""), "{err}");
            let mut watch = objects.watch(secrets, ns, 1).await?;
            let err = loop {
                match tokio::time::timeout(Duration::from_secs(10), watch.next())
                    .await?
                    .context("watch ended")?
                {
                    Ok(_) => continue,
                    Err(e) => break e,
                }
            };
            assert!(err.message.contains("key \"a\""), "{err}");
        }

        member.send(Shutdown).await??;
        anyhow::Ok(())
    })
}
