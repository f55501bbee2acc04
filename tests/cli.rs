//! The command line: mistakes end with one clear line on stderr and a non-zero exit.

#![allow(clippy::disallowed_methods)]

mod util;

use util::*;

fn error_line(args: &[&str]) -> String {
    let out = navarch()
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run navarch");
    assert!(!out.status.success(), "navarch {args:?} succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    assert!(stderr.starts_with("navarch: error: "), "{stderr}");
    stderr
}

#[test]
fn a_role_without_nats_says_what_is_missing() {
    let line = error_line(&["scheduler"]);
    assert!(line.contains("--nats"), "{line}");
}

#[test]
fn a_busy_api_port_is_reported_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().to_str().expect("utf-8");
    let line = error_line(&["up", "--api-listen", &addr, "--data-dir", data]);
    assert!(line.contains(&format!("cannot listen on {addr}")), "{line}");
    assert_eq!(line.matches("Address already in use").count(), 1, "{line}");
}

#[test]
fn an_unreachable_nats_is_reported() {
    let port = free_port();
    let line = error_line(&["controllers", "--nats", &format!("nats://127.0.0.1:{port}")]);
    assert!(line.contains("connecting to NATS"), "{line}");
}
