//! A second real client: the official Python `kubernetes` client (PyPI; `.ci/run` installs it) creates, lists,
//! watches, patches and deletes objects through Navarch's API (`tests/python/client_flow.py`).

#![allow(clippy::disallowed_methods)]

mod util;

use std::process::Command;

use util::*;

#[test]
fn the_python_kubernetes_client_creates_lists_watches_patches_and_deletes() {
    let up = start_up(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client_flow.py");
    let out = Command::new("python3")
        .arg(script)
        .env("KUBECONFIG", &up.kubeconfig)
        .output()
        .expect("run python3 (the tests need python3 with the `kubernetes` package: python3 -m pip install kubernetes)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the Python client flow failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok: delete, then 404"), "{stdout}");
}
