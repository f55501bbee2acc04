//! The Node a node agent keeps, as kubectl sees it: its Lease in `kube-node-lease`, the labels, taints and
//! reservation of its flags, its pressure conditions. Roles in separate processes over a real nats-server.

#![allow(clippy::disallowed_methods)]

mod util;

use util::*;

const NODE: &str = "lease-node";

/// A quantity of whole Ki (`"123Ki"`), in Ki.
fn kibibytes(q: &serde_json::Value) -> Option<u64> {
    q.as_str()?.strip_suffix("Ki")?.parse().ok()
}

#[test]
fn the_agent_keeps_its_lease_and_registers_with_its_flags() {
    let (_nats, url) = start_nats();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |p: &str| dir.path().join(p).to_str().expect("utf-8").to_string();
    let common = ["--nats", url.as_str(), "--cluster", "node-agent"];
    let start = |name: &str, args: &[&str]| spawn(name, &[args, &common[..]].concat());

    let plane = ControlPlane::start((&url, "node-agent"), dir.path());
    let (_agent, _) = start(
        "agent",
        &[
            "agent",
            "--data-dir",
            &path("agent"),
            "--node-name",
            NODE,
            "--node-labels",
            "disk=ssd",
            "--register-with-taints",
            "dedicated=infra:NoSchedule",
            "--system-reserved",
            "cpu=100m,memory=256Mi",
        ],
    );
    let k = plane.kubectl();

    let lease = wait_for("the node's lease", || {
        let out = k.run(&["get", "lease", "-n", "kube-node-lease", NODE, "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("lease JSON"))
    });
    assert_eq!(lease["spec"]["holderIdentity"], NODE);
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
    assert_eq!(lease["metadata"]["ownerReferences"][0]["kind"], "Node");
    assert_eq!(lease["metadata"]["ownerReferences"][0]["name"], NODE);
    let first = lease["spec"]["renewTime"]
        .as_str()
        .expect("renewTime")
        .to_string();
    let first = lease_renewal_after(&k, &first);

    let node = k.json(&["get", "node", NODE]);
    assert_eq!(node["metadata"]["labels"]["disk"], "ssd");
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], NODE);
    let taints = node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        taints.iter().any(|t| t["key"] == "dedicated"
            && t["value"] == "infra"
            && t["effect"] == "NoSchedule"),
        "{taints:?}"
    );
    let status = &node["status"];
    let capacity = kibibytes(&status["capacity"]["memory"]).expect("capacity in Ki");
    let allocatable = kibibytes(&status["allocatable"]["memory"]).expect("allocatable in Ki");
    assert_eq!(allocatable, capacity.saturating_sub((256 + 100) * 1024));
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let condition = |type_: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == type_)
            .unwrap_or_else(|| panic!("no {type_} condition: {conditions:?}"))
            .clone()
    };
    // A test machine normally has memory and disk to spare (False); one short of them (a full disk on a busy CI
    // host) must say True with the matching reason and taint.
    for (type_, calm, short, taint) in [
        (
            "MemoryPressure",
            "KubeletHasSufficientMemory",
            "KubeletHasInsufficientMemory",
            "node.kubernetes.io/memory-pressure",
        ),
        (
            "DiskPressure",
            "KubeletHasNoDiskPressure",
            "KubeletHasDiskPressure",
            "node.kubernetes.io/disk-pressure",
        ),
    ] {
        let c = condition(type_);
        let tainted = taints.iter().any(|t| t["key"] == taint);
        match c["status"].as_str() {
            Some("False") => assert!(c["reason"] == calm && !tainted, "{c} {taints:?}"),
            Some("True") => {
                eprintln!("this host is under {type_}");
                assert!(c["reason"] == short && tainted, "{c} {taints:?}");
            }
            other => panic!("{type_} status {other:?}"),
        }
    }
    assert_eq!(condition("Ready")["status"], "True");

    // Someone else's taint stays through the agent's updates.
    k.ok(&["taint", "node", NODE, "manual=yes:NoExecute"]);
    // Two lease renewals (10 s apart) span at least one Node heartbeat (every 10 s), which rewrites the taints.
    let mut seen = first;
    for _ in 0..2 {
        seen = lease_renewal_after(&k, &seen);
    }
    let node = k.json(&["get", "node", NODE]);
    let keys: Vec<&str> = node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["key"].as_str())
        .collect();
    assert!(
        keys.contains(&"manual") && keys.contains(&"dedicated"),
        "{keys:?}"
    );
}

/// The lease's renewTime once it differs from `previous`.
fn lease_renewal_after(k: &Kubectl, previous: &str) -> String {
    wait_for("a lease renewal", || {
        let lease = k.json(&["get", "lease", "-n", "kube-node-lease", NODE]);
        let renewed = lease["spec"]["renewTime"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (!renewed.is_empty() && renewed != previous).then_some(renewed)
    })
}

#[test]
fn a_bad_taint_flag_is_refused_with_one_line() {
    let out = navarch()
        .args([
            "agent",
            "--data-dir",
            "/nonexistent",
            "--nats",
            "nats://127.0.0.1:1",
            "--register-with-taints",
            "dedicated=infra:Sometimes",
        ])
        .env("RUST_LOG", "off")
        .output()
        .expect("run navarch");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    assert!(stderr.contains("--register-with-taints"), "{stderr}");
    assert!(stderr.contains("Sometimes"), "{stderr}");
}
