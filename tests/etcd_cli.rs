//! `navarch store --etcd-listen`: the member serves the etcd API that the real `etcdctl` uses, and a busy address
//! is one clear error line.

#![allow(clippy::disallowed_methods)]

mod util;

use std::process::Command;

use util::*;

fn etcdctl(endpoint: &str, args: &[&str]) -> std::process::Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--dial-timeout=5s")
        .args(args)
        .output()
        .expect("etcdctl (Debian package etcd-client) must be installed")
}

#[test]
fn navarch_store_serves_etcdctl_and_reports_a_busy_port() {
    let (_nats, url) = start_nats();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().to_str().expect("utf-8");
    let (mut store, rx) = spawn(
        "store",
        &[
            "store",
            "--nats",
            &url,
            "--data-dir",
            data,
            "--etcd-listen",
            "127.0.0.1:0",
        ],
    );
    let line = read_line_starting(&rx, "etcd API: http://");
    let endpoint = line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let put = etcdctl(&endpoint, &["put", "/hello", "world"]);
    assert!(put.status.success(), "{put:?}");
    let get = etcdctl(&endpoint, &["get", "/hello", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&get.stdout), "world\n", "{get:?}");
    assert!(store.terminate().success());

    // A busy address is one clear line (one test with one nats-server: tests that start their own at once race
    // for free ports).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let other = tempfile::tempdir().expect("temp dir");
    let data = other.path().to_str().expect("utf-8");
    let out = navarch()
        .args([
            "store",
            "--nats",
            &url,
            "--data-dir",
            data,
            "--etcd-listen",
            &addr,
        ])
        .env("RUST_LOG", "off")
        .output()
        .expect("run navarch");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    assert!(
        stderr.contains(&format!("cannot serve the etcd API on {addr}")),
        "{stderr}"
    );
}
