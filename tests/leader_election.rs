//! High availability: two `navarch controllers` and two `navarch scheduler` processes against one control plane;
//! one of each leads (holds its Lease in kube-system) and only that one runs its role; SIGKILL the leader during a
//! scale-up and the standby takes over within about the lease duration (15 s) and finishes the work. And fencing:
//! once another holder acquired the Lease, a write of the old one fails, in the store's own transaction.

#![allow(clippy::disallowed_methods)] // wall-clock deadlines and durations are fine in tests

mod util;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use navarch_bus::api::admission::{FieldValidation, Part};
use navarch_bus::api::fence::is_fenced;
use navarch_bus::api::{resource, DeleteOptions, Fence, Objects, Reason};
use navarch_bus::store::StoreClient;
use navarch_bus::transport::embedded::Embedded;
use navarch_bus::Bus;
use navarch_store::{StoreConfig, StoreMember};
use serde_json::{json, Value};
use util::*;

/// The stdout lines a process printed so far, gathered without blocking.
struct Lines {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn new(rx: mpsc::Receiver<String>) -> Self {
        Self { rx, seen: vec![] }
    }

    fn printed(&mut self, prefix: &str) -> bool {
        self.seen.extend(self.rx.try_iter());
        self.seen.iter().any(|l| l.starts_with(prefix))
    }
}

/// A candidate process of a role.
struct Candidate {
    proc: Proc,
    lines: Lines,
    identity: String,
}

fn lease(k: &Kubectl, name: &str) -> Option<Value> {
    let out = k.run(&["get", "lease", "-n", "kube-system", name, "-o", "json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("lease JSON"))
}

fn holder(k: &Kubectl, name: &str) -> Option<String> {
    lease(k, name)?["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_string)
}

/// Waits until one of `candidates` holds `lease_name` and has started its role; returns its index, having checked
/// that the other did not start its role.
fn leader_of(k: &Kubectl, lease_name: &str, role: &str, candidates: &mut [Candidate]) -> usize {
    let leading = format!("{role}: leading as");
    let index = wait_for(&format!("a leader of {lease_name}"), || {
        let holder = holder(k, lease_name)?;
        candidates.iter().position(|c| c.identity == holder)
    });
    wait_for(
        &format!("{} to start the {role}", candidates[index].identity),
        || candidates[index].lines.printed(&leading).then_some(()),
    );
    for (i, c) in candidates.iter_mut().enumerate() {
        if i != index {
            assert!(
                !c.lines.printed(&leading),
                "the standby {} runs the {role} too",
                c.identity
            );
        }
    }
    index
}

fn ready_replicas(k: &Kubectl) -> Option<i64> {
    let d = k.json(&["get", "deployment", "web", "-n", "ha"]);
    let fresh = d["status"]["observedGeneration"] == d["metadata"]["generation"];
    fresh.then(|| d["status"]["readyReplicas"].as_i64().unwrap_or(0))
}

/// Kills the leader (SIGKILL: no chance to release its Lease), scales the deployment to `replicas`, and waits for the
/// standby to lead and the deployment to get there. Returns how long the takeover took.
fn kill_leader_during_scale_up(
    k: &Kubectl,
    lease_name: &str,
    role: &str,
    candidates: &mut [Candidate],
    replicas: i64,
) -> Duration {
    let leader = leader_of(k, lease_name, role, candidates);
    let standby = 1 - leader;
    let before = lease(k, lease_name).expect("the lease");
    let transitions = before["spec"]["leaseTransitions"].as_i64().unwrap_or(0);
    k.ok(&[
        "scale",
        "deployment",
        "web",
        "-n",
        "ha",
        &format!("--replicas={replicas}"),
    ]);
    let _ = candidates[leader].proc.child.kill();
    let _ = candidates[leader].proc.child.wait();
    let killed = Instant::now();
    let leading = format!("{role}: leading as");
    wait_for(&format!("the standby {role} to take over"), || {
        candidates[standby].lines.printed(&leading).then_some(())
    });
    let takeover = killed.elapsed();
    println!("{role}: the standby took over {takeover:?} after the leader was killed");
    let after = lease(k, lease_name).expect("the lease");
    assert_eq!(
        after["spec"]["holderIdentity"],
        candidates[standby].identity.as_str()
    );
    assert_eq!(after["spec"]["leaseTransitions"], transitions + 1);
    assert_eq!(after["spec"]["leaseDurationSeconds"], 15);
    wait_for(
        &format!("{replicas} ready replicas after the takeover"),
        || (ready_replicas(k)? == replicas).then_some(()),
    );
    takeover
}

#[test]
fn a_standby_controller_manager_and_scheduler_take_over_from_a_killed_leader() {
    let cluster = "leader-election";
    let (_nats, url) = start_nats();
    let dir = tempfile::tempdir().expect("temp dir");
    let plane = ControlPlane::start((&url, cluster), dir.path());
    plane.wait_ready();
    let k = plane.kubectl();
    // Simulated nodes: pods become Running without processes, so the test is about the control plane only.
    let (_nodes, _) = spawn_role(
        "hollow-nodes",
        (&url, cluster),
        &["agent", "--simulate", "2", "--node-prefix", "ha"],
    );
    let candidate = |role: &str, identity: &str| {
        let (proc, rx) = spawn_role(
            identity,
            (&url, cluster),
            &[role, "--leader-elect-identity", identity],
        );
        Candidate {
            proc,
            lines: Lines::new(rx),
            identity: identity.to_string(),
        }
    };
    let mut schedulers = vec![
        candidate("scheduler", "sched-a"),
        candidate("scheduler", "sched-b"),
    ];
    let mut controllers = vec![
        candidate("controllers", "ctl-a"),
        candidate("controllers", "ctl-b"),
    ];
    leader_of(&k, "navarch-scheduler", "scheduler", &mut schedulers);
    leader_of(&k, "navarch-controllers", "controllers", &mut controllers);

    let manifest = r#"apiVersion: v1
kind: Namespace
metadata: {name: ha}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ha}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: main, image: busybox, command: ["sleep", "3600"]}]
"#;
    assert!(k
        .apply_stdin(&["apply", "-f", "-"], manifest)
        .status
        .success());
    wait_for("2 ready replicas", || {
        (ready_replicas(&k)? == 2).then_some(())
    });

    // The controller manager dies while it scales up: the standby finishes the scale-up.
    let controllers_takeover = kill_leader_during_scale_up(
        &k,
        "navarch-controllers",
        "controllers",
        &mut controllers,
        8,
    );
    // The scheduler dies while pods wait to be placed: the standby places them.
    let scheduler_takeover =
        kill_leader_during_scale_up(&k, "navarch-scheduler", "scheduler", &mut schedulers, 12);
    // Within the lease duration and a few retry periods (generous: the machine is loaded; the figure is printed).
    for takeover in [controllers_takeover, scheduler_takeover] {
        assert!(takeover < Duration::from_secs(60), "took {takeover:?}");
    }
    let pods = k.json(&["get", "pods", "-n", "ha"]);
    let live = pods["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .count();
    assert_eq!(
        live, 12,
        "exactly the replicas, no duplicate from two leaders"
    );
}

/// One store member on an embedded bus, and an unfenced client with namespaces `kube-system` and `demo`.
async fn store(dir: &std::path::Path) -> (actix::Addr<StoreMember>, Bus, Objects) {
    let router = Arc::new(Embedded::new());
    let bus = Bus::new(router, "fence").await.expect("bus");
    let config = StoreConfig {
        data_dir: dir.join("store"),
        heartbeat_interval: Duration::from_millis(50),
        election_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let member = StoreMember::start(bus.clone(), config)
        .await
        .expect("store");
    let objects = Objects::new(StoreClient::new(bus.clone()));
    let deadline = Instant::now() + Duration::from_secs(60);
    for ns in ["kube-system", "demo"] {
        let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        loop {
            let info = resource::by_kind("v1", "Namespace").expect("Namespace");
            match objects
                .create(info, None, namespace.clone(), FieldValidation::Strict)
                .await
            {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    println!("waiting for the store: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("the store did not come up: {e}"),
            }
        }
    }
    (member, bus, objects)
}

fn leader_lease(holder: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "navarch-test", "namespace": "kube-system"},
           "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}})
}

#[test]
fn writes_of_a_deposed_leader_are_fenced() {
    let dir = tempfile::tempdir().expect("temp dir");
    run_in_system(async {
        let (_member, _bus, objects) = store(dir.path()).await;
        let leases = resource::by_kind("coordination.k8s.io/v1", "Lease").expect("Lease");
        let configmaps = resource::by_kind("v1", "ConfigMap").expect("ConfigMap");
        let cm = |name: &str, value: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": value}});

        // A, not leading yet: its writes are refused without reaching the store.
        let fence_a = Fence::new("kube-system", "navarch-test");
        let as_a = objects.clone().with_fence(Some(fence_a.clone()));
        let refused = as_a
            .create(
                configmaps,
                Some("demo"),
                cm("early", "a"),
                FieldValidation::Strict,
            )
            .await
            .unwrap_err();
        assert!(is_fenced(&refused), "{refused:?}");
        assert_eq!(refused.reason, Reason::Forbidden);

        // A acquires the Lease (the fence key moves in the same transaction) and writes.
        let acquired = objects
            .write_acquiring(leases, leader_lease("a"), None, &fence_a)
            .await
            .expect("acquire")
            .expect("the lease was free");
        let revision: i64 = acquired["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        fence_a.hold(revision);
        as_a.create(
            configmaps,
            Some("demo"),
            cm("shared", "a1"),
            FieldValidation::Strict,
        )
        .await
        .expect("the leader writes");

        // A's renewals (plain updates of the Lease) do not fence A's own writes.
        let mut renewed = acquired.clone();
        renewed["spec"]["renewTime"] = json!("2026-11-27T12:00:02.000000Z");
        let renewed = objects
            .update(
                leases,
                Some("kube-system"),
                "navarch-test",
                renewed,
                Part::Main,
                FieldValidation::Strict,
            )
            .await
            .expect("renew")
            .object;
        as_a.update_with(configmaps, Some("demo"), "shared", Part::Main, |mut o| {
            o["data"]["k"] = json!("a2");
            Ok(o)
        })
        .await
        .expect("the leader writes after renewing");

        // B takes the Lease over (say A was paused past the lease duration): every write of A fails from then on.
        let fence_b = Fence::new("kube-system", "navarch-test");
        let rv: i64 = renewed["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let taken = objects
            .write_acquiring(leases, leader_lease("b"), Some(rv), &fence_b)
            .await
            .expect("take over")
            .expect("no one wrote meanwhile");
        fence_b.hold(
            taken["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
        );
        // A still believes it leads (its fence is unchanged), yet the store refuses its write.
        assert_eq!(fence_a.revision(), Some(revision));
        let fenced = as_a
            .update_with(configmaps, Some("demo"), "shared", Part::Main, |mut o| {
                o["data"]["k"] = json!("a3");
                Ok(o)
            })
            .await
            .unwrap_err();
        assert!(is_fenced(&fenced), "{fenced:?}");
        assert!(
            fenced
                .message
                .contains("lost the leader lease kube-system/navarch-test"),
            "{}",
            fenced.message
        );
        // Having seen that, A refuses its next writes itself.
        assert_eq!(fence_a.revision(), None);
        let deleted = as_a
            .delete(
                configmaps,
                Some("demo"),
                "shared",
                &DeleteOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(is_fenced(&deleted), "{deleted:?}");
        // Even a write A had prepared under its old fence (as one in flight during the takeover would be) fails in
        // the store, not only in A.
        fence_a.hold(revision);
        let in_flight = as_a
            .create(
                configmaps,
                Some("demo"),
                cm("late", "a"),
                FieldValidation::Strict,
            )
            .await
            .unwrap_err();
        assert!(is_fenced(&in_flight), "{in_flight:?}");
        // Nothing of A's landed after the takeover; B's writes do.
        let stored = objects
            .get(configmaps, Some("demo"), "shared")
            .await
            .expect("shared");
        assert_eq!(stored["data"]["k"], "a2");
        let missing = objects
            .get(configmaps, Some("demo"), "late")
            .await
            .unwrap_err();
        assert_eq!(missing.reason, Reason::NotFound);
        let as_b = objects.clone().with_fence(Some(fence_b));
        as_b.update_with(configmaps, Some("demo"), "shared", Part::Main, |mut o| {
            o["data"]["k"] = json!("b1");
            Ok(o)
        })
        .await
        .expect("the new leader writes");
        // An ordinary conflict under a valid fence is still an ordinary conflict, not a fenced write.
        let mut stale = stored.clone();
        stale["data"]["k"] = json!("b2");
        let conflict = as_b
            .update(
                configmaps,
                Some("demo"),
                "shared",
                stale,
                Part::Main,
                FieldValidation::Strict,
            )
            .await
            .unwrap_err();
        assert_eq!(conflict.reason, Reason::Conflict);
        assert!(!is_fenced(&conflict));
    });
}
