use std::os::unix::fs::PermissionsExt as _;

use super::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn names(hosts: &[&str]) -> Vec<ServerName<'static>> {
    names_to_cover(&hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>()).unwrap()
}

#[test]
fn creates_a_ca_and_a_serving_certificate_with_private_keys() {
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("pki");
    let pki = ensure_pki(&pki_dir, &["10.1.2.3".into(), "api.example".into()]).unwrap();
    for file in ["ca.crt", "ca.key", "apiserver.crt", "apiserver.key"] {
        assert!(pki_dir.join(file).is_file(), "{file}");
    }
    assert_eq!(mode(&pki_dir), 0o700);
    assert_eq!(mode(&pki_dir.join("ca.key")), 0o600);
    assert_eq!(mode(&pki_dir.join("apiserver.key")), 0o600);
    assert_eq!(pki.ca_file, pki_dir.join("ca.crt"));
    assert_eq!(std::fs::read(&pki.ca_file).unwrap(), pki.ca_pem);
    pki.serving.server_config().unwrap();
    assert!(covers(
        &pki.ca_pem,
        &pki.serving.cert_chain_pem,
        &names(&["10.1.2.3", "api.example", "kubernetes.default.svc"])
    ));
    assert!(!covers(
        &pki.ca_pem,
        &pki.serving.cert_chain_pem,
        &names(&["elsewhere.example"])
    ));
}

#[test]
fn a_second_call_reuses_everything_and_a_new_host_gets_a_new_serving_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let first = ensure_pki(dir.path(), &["node-a".into()]).unwrap();
    let again = ensure_pki(dir.path(), &["node-a".into()]).unwrap();
    assert_eq!(first, again, "nothing changes when nothing needs to");

    let moved = ensure_pki(dir.path(), &["node-a".into(), "192.168.7.9".into()]).unwrap();
    assert_eq!(moved.ca_pem, first.ca_pem, "the CA is kept");
    assert_ne!(
        moved.serving, first.serving,
        "the serving certificate is replaced"
    );
    assert!(covers(
        &moved.ca_pem,
        &moved.serving.cert_chain_pem,
        &names(&["node-a", "192.168.7.9"])
    ));
    assert_eq!(mode(&dir.path().join("apiserver.key")), 0o600);
}

#[test]
fn a_serving_certificate_from_another_ca_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let mine = ensure_pki(dir.path(), &[]).unwrap();
    ensure_pki(other.path(), &[]).unwrap();
    for file in ["apiserver.crt", "apiserver.key"] {
        std::fs::copy(other.path().join(file), dir.path().join(file)).unwrap();
    }
    let fixed = ensure_pki(dir.path(), &[]).unwrap();
    assert_eq!(fixed.ca_pem, mine.ca_pem);
    assert!(covers(
        &fixed.ca_pem,
        &fixed.serving.cert_chain_pem,
        &names(&[])
    ));
}

#[test]
fn half_a_ca_is_an_error_not_a_new_ca() {
    let dir = tempfile::tempdir().unwrap();
    ensure_pki(dir.path(), &[]).unwrap();
    std::fs::remove_file(dir.path().join("ca.key")).unwrap();
    assert!(matches!(
        ensure_pki(dir.path(), &[]),
        Err(Error::HalfCa { .. })
    ));
}

#[test]
fn bad_hosts_and_bad_pem_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        ensure_pki(dir.path(), &["not a host!".into()]),
        Err(Error::Host(_))
    ));
    let pki = ensure_pki(dir.path(), &[]).unwrap();
    let cert = pki.serving.cert_chain_pem.clone();
    let key = pki.serving.key_pem.clone();
    let cases = [
        (cert[..cert.len() / 2].to_vec(), key.clone()),
        (cert.clone(), key[..key.len() / 2].to_vec()),
        (Vec::new(), key.clone()),
        (cert.clone(), Vec::new()),
        (b"garbage".to_vec(), b"garbage".to_vec()),
        // The CA's certificate with the serving key: a key that is not the certificate's.
        (pki.ca_pem.clone(), key.clone()),
    ];
    for (cert_chain_pem, key_pem) in cases {
        let config = TlsConfig {
            cert_chain_pem,
            key_pem,
            files: None,
        };
        assert!(config.server_config().is_err(), "{config:?}");
    }
    // A truncated CA key is reported, never replaced.
    std::fs::write(dir.path().join("ca.key"), &key[..10]).unwrap();
    assert!(matches!(
        ensure_pki(dir.path(), &[]),
        Err(Error::Key { .. })
    ));
}

#[test]
fn debug_never_shows_the_key() {
    let config = TlsConfig {
        cert_chain_pem: b"CERT".to_vec(),
        key_pem: b"SECRET KEY".to_vec(),
        files: None,
    };
    let shown = format!("{config:?}");
    assert!(
        shown.contains("CERT") && !shown.contains("SECRET"),
        "{shown}"
    );
}
