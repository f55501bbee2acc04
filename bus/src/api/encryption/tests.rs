use super::*;

const KEY: &[u8] = b"/registry/secrets/default/db";

fn keys(names: &[(&str, u8)]) -> EncryptionKeys {
    EncryptionKeys::new(
        names
            .iter()
            .map(|(n, b)| (n.to_string(), [*b; KEY_BYTES]))
            .collect(),
    )
    .unwrap()
}

#[test]
fn a_sealed_value_round_trips_and_hides_the_plaintext() {
    let a = keys(&[("a", 1)]);
    let plain = br#"{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}"#;
    let sealed = a.seal(KEY, plain).unwrap();
    assert!(sealed.starts_with(b"k8s:enc:xchacha20poly1305:v1:a:"));
    assert!(!sealed.windows(12).any(|w| w == b"aHVudGVyMg=="));
    assert_eq!(sealed_with(&sealed), Some("a"));
    assert_eq!(open(Some(&a), KEY, &sealed).unwrap().as_ref(), plain);
    // A fresh nonce each time: the same object never seals to the same bytes.
    assert_ne!(a.seal(KEY, plain).unwrap(), sealed);
}

#[test]
fn every_listed_key_opens_but_only_the_first_seals() {
    let old = keys(&[("a", 1)]);
    let rotated = keys(&[("b", 2), ("a", 1)]);
    let by_a = old.seal(KEY, b"{}").unwrap();
    assert_eq!(open(Some(&rotated), KEY, &by_a).unwrap().as_ref(), b"{}");
    let by_b = rotated.seal(KEY, b"{}").unwrap();
    assert_eq!(sealed_with(&by_b), Some("b"));
    assert_eq!(rotated.write_key(), "b");
}

#[test]
fn an_unknown_key_name_is_an_error_naming_it() {
    let sealed = keys(&[("gone", 1)]).seal(KEY, b"{}").unwrap();
    let err = open(Some(&keys(&[("b", 2), ("c", 3)])), KEY, &sealed).unwrap_err();
    assert!(matches!(&err, EncryptionError::UnknownKey { name, .. } if name == "gone"));
    let text = err.to_string();
    assert!(
        text.contains("\"gone\"")
            && text.contains("b, c")
            && text.contains("/registry/secrets/default/db")
    );
    let err = open(None, KEY, &sealed).unwrap_err();
    assert!(matches!(&err, EncryptionError::NoKeys { name, .. } if name == "gone"));
}

#[test]
fn a_tampered_value_or_one_moved_to_another_key_does_not_open() {
    let a = keys(&[("a", 1)]);
    let sealed = a.seal(KEY, b"{\"x\":1}").unwrap();
    for i in [
        sealed.len() - 1,
        sealed.len() - 20,
        b"k8s:enc:xchacha20poly1305:v1:a:".len(),
    ] {
        let mut bad = sealed.clone();
        bad[i] ^= 0x01;
        assert!(matches!(
            open(Some(&a), KEY, &bad),
            Err(EncryptionError::Inauthentic { .. })
        ));
    }
    assert!(matches!(
        open(Some(&a), b"/registry/secrets/default/other", &sealed),
        Err(EncryptionError::Inauthentic { .. })
    ));
    // Another key that happens to carry the same name.
    assert!(matches!(
        open(Some(&keys(&[("a", 9)])), KEY, &sealed),
        Err(EncryptionError::Inauthentic { .. })
    ));
}

#[test]
fn plain_values_read_as_they_are() {
    let plain = br#"{"kind":"Secret"}"#;
    assert_eq!(
        open(Some(&keys(&[("a", 1)])), KEY, plain).unwrap().as_ref(),
        plain
    );
    assert_eq!(open(None, KEY, plain).unwrap().as_ref(), plain);
    assert_eq!(open(None, KEY, b"").unwrap().as_ref(), b"");
    assert_eq!(sealed_with(plain), None);
}

#[test]
fn broken_envelopes_are_errors_not_panics() {
    let a = keys(&[("a", 1)]);
    let long = [b"k8s:enc:".as_slice(), &[b'x'; 500]].concat();
    for bad in [
        b"k8s:enc:".as_slice(),
        b"k8s:enc:aescbc:v1:a:0123456789012345678901234567890123456789",
        b"k8s:enc:xchacha20poly1305:v2:a:0123456789012345678901234567890123456789",
        b"k8s:enc:xchacha20poly1305:v1:a:short",
        b"k8s:enc:xchacha20poly1305:v1:",
        b"k8s:enc:xchacha20poly1305:v1:bad name!:0123456789012345678901234567890123456789",
        b"k8s:enc:xchacha20poly1305:v1:\xff\xfe:0123456789012345678901234567890123456789",
        &long,
    ] {
        let err = open(Some(&a), KEY, bad).unwrap_err();
        assert!(matches!(err, EncryptionError::Malformed { .. }), "{err}");
        assert!(err.to_string().len() < 400, "errors quote little: {err}");
    }
}

#[test]
fn key_lists_need_valid_unique_names() {
    assert_eq!(EncryptionKeys::new(vec![]).unwrap_err(), KeysError::Empty);
    for bad in ["", "a:b", "a b", &"k".repeat(65)] {
        assert!(matches!(
            EncryptionKeys::new(vec![(bad.to_string(), [0; KEY_BYTES])]),
            Err(KeysError::BadName(_))
        ));
    }
    assert_eq!(
        EncryptionKeys::new(vec![
            ("a".into(), [0; KEY_BYTES]),
            ("a".into(), [1; KEY_BYTES])
        ])
        .unwrap_err(),
        KeysError::Duplicate("a".into())
    );
    let debug = format!("{:?}", keys(&[("a", 7)]));
    assert!(
        debug.contains("\"a\"") && !debug.contains("7, 7"),
        "Debug shows no key bytes: {debug}"
    );
}

#[test]
fn key_files_parse_and_generated_ones_read_back() {
    let name = key_file::random_name().unwrap();
    assert!(valid_name(&name) && name.starts_with("key-"), "{name}");
    let text = key_file::generate(&name).unwrap();
    let generated = key_file::parse(&text, "f").unwrap();
    assert_eq!(generated.write_key(), name);
    let two = "keys:\n- name: b\n  secret: AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n- name: a\n  secret: AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n";
    assert_eq!(
        key_file::parse(two, "f").unwrap(),
        keys(&[("b", 2), ("a", 1)])
    );
    for (bad, says) in [
        ("", "keys"),
        ("keys: []", "no encryption keys"),
        ("keys:\n- name: a\n  secret: '!!'", "not base64"),
        ("keys:\n- name: a\n  secret: AQID", "3 bytes"),
        (
            "keys:\n- name: a\n  secret: AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n  extra: 1",
            "extra",
        ),
        (
            "keys:\n- name: 'a:b'\n  secret: AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
            "key name",
        ),
        ("[not, a, map", "f"),
    ] {
        let err = key_file::parse(bad, "f").unwrap_err().to_string();
        assert!(err.contains(says), "{bad:?}: {err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
    assert!(matches!(
        key_file::read(std::path::Path::new("/nonexistent/keys.yaml")),
        Err(KeyFileError::Read { .. })
    ));
}

#[test]
fn only_secrets_are_encrypted() {
    assert!(applies_to(b"/registry/secrets/default/db"));
    assert!(!applies_to(b"/registry/configmaps/default/db"));
    assert!(!applies_to(b"/registry/secretsx/default/db"));
}
