//! A 3-member store cluster of real `navarch store` processes on a real nats-server: it forms from
//! `--members 1,2,3` alone, survives `kill -9` of its leader, takes the member back, and is managed with
//! `navarch store member|get|status`. Nothing here is random: which member leads is whatever the cluster elects,
//! and the test follows it.

#![allow(clippy::disallowed_methods)]

mod util;

use std::process::Output;
use std::sync::mpsc::Receiver;

use navarch_bus::store::{PutRequest, StoreClient, StoreRequest, StoreResponse};
use navarch_bus::Bus;
use util::*;

struct Cluster {
    url: String,
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    client: StoreClient,
}

impl Cluster {
    /// Starts `navarch store --id <id> <extra>` on this cluster's NATS with its own data directory.
    fn member(&self, id: u64, extra: &[&str]) -> (Proc, Receiver<String>) {
        let data = self.data_dir(id);
        let id_arg = id.to_string();
        let mut args = vec![
            "store",
            "--id",
            &id_arg,
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--nats",
            &self.url,
        ];
        args.extend_from_slice(extra);
        let (proc, rx) = spawn(&format!("store-{id}"), &args);
        read_line_starting(&rx, &format!("store member {id} is serving"));
        (proc, rx)
    }

    fn data_dir(&self, id: u64) -> std::path::PathBuf {
        self.dir.path().join(format!("member-{id}"))
    }

    /// Runs `navarch store <args> --nats URL` to completion.
    fn tool(&self, args: &[&str]) -> Output {
        let out = navarch()
            .arg("store")
            .args(args)
            .args(["--nats", &self.url])
            .env("RUST_LOG", "off")
            .output()
            .expect("run navarch store");
        println!(
            "$ navarch store {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn tool_ok(&self, args: &[&str]) -> String {
        let out = self.tool(args);
        assert!(out.status.success(), "navarch store {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Puts `key` until one put is acknowledged (a leader election may refuse a few); returns its revision.
    fn put(&self, key: &str, value: &str) -> i64 {
        wait_for(&format!("a put of {key} acknowledged"), || {
            let put = PutRequest {
                key: key.as_bytes().to_vec(),
                value: value.as_bytes().to_vec(),
                ..Default::default()
            };
            self.rt
                .block_on(self.client.put(put))
                .ok()
                .map(|r| r.header.revision)
        })
    }

    /// Member `id`'s own status (revision, leader), asked on its Raft subject.
    fn status_of(&self, id: u64) -> Option<(i64, u64)> {
        let answer = self.rt.block_on(navarch_store::network::forward(
            self.client.bus(),
            id,
            StoreRequest::Status,
            std::time::Duration::from_secs(2),
        ));
        match answer {
            Ok(Ok(StoreResponse::Status(s))) => Some((s.header.revision, s.leader)),
            _ => None,
        }
    }

    /// The leader every one of `ids` names, once they agree.
    fn leader(&self, ids: &[u64]) -> u64 {
        wait_for("one leader named by every member", || {
            let leaders: Vec<u64> = ids
                .iter()
                .map(|id| self.status_of(*id).map_or(0, |(_, l)| l))
                .collect();
            let first = *leaders.first()?;
            (first != 0 && ids.contains(&first) && leaders.iter().all(|l| *l == first))
                .then_some(first)
        })
    }

    /// Waits until every one of `ids` has applied up to `revision`.
    fn caught_up(&self, ids: &[u64], revision: i64) {
        for id in ids {
            wait_for(&format!("member {id} at revision {revision}"), || {
                self.status_of(*id).filter(|(r, _)| *r >= revision)
            });
        }
    }
}

fn member_ids(list: &str) -> Vec<(u64, String)> {
    list.lines()
        .skip(1)
        .filter_map(|line| {
            let mut cells = line.split_whitespace();
            let id = cells.next()?.parse().ok()?;
            let role = cells.nth(1)?.to_string();
            Some((id, role))
        })
        .collect()
}

#[test]
fn three_processes_form_a_cluster_survive_kill_9_of_the_leader_and_change_members() {
    let (_nats, url) = start_nats();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let bus = rt
        .block_on(Bus::nats(&url, "default", "store-cluster-test"))
        .expect("bus");
    let cluster = Cluster {
        url,
        dir: tempfile::tempdir().expect("temp dir"),
        rt,
        client: StoreClient::new(bus),
    };

    // Three processes, the same `--members`, nothing else: they form one cluster.
    let mut members: Vec<(u64, Proc, Receiver<String>)> = (1..=3)
        .map(|id| {
            let (proc, rx) = cluster.member(id, &["--members", "1,2,3"]);
            (id, proc, rx)
        })
        .collect();
    let leader = cluster.leader(&[1, 2, 3]);
    let mut acknowledged = Vec::new();
    for i in 0..50 {
        let key = format!("/registry/configmaps/default/before-{i}");
        acknowledged.push((key.clone(), cluster.put(&key, "before")));
    }

    // kill -9 the leader: the two others elect another and take writes.
    let index = members
        .iter()
        .position(|(id, _, _)| *id == leader)
        .expect("leader");
    let (killed, mut proc, _) = members.remove(index);
    proc.child.kill().expect("kill -9");
    proc.child.wait().expect("reap");
    let others: Vec<u64> = members.iter().map(|(id, _, _)| *id).collect();
    let next = cluster.leader(&others);
    assert_ne!(next, killed);
    for i in 0..50 {
        let key = format!("/registry/configmaps/default/after-{i}");
        acknowledged.push((key.clone(), cluster.put(&key, "after")));
    }

    // The killed member restarts on its data directory: it rejoins (no second bootstrap) and catches up.
    let (proc, rx) = cluster.member(killed, &["--members", "1,2,3"]);
    members.push((killed, proc, rx));
    let revision = acknowledged.iter().map(|(_, r)| *r).max().unwrap_or(0);
    cluster.caught_up(&[1, 2, 3], revision);
    let status = cluster.tool_ok(&["status"]);
    assert_eq!(status.lines().count(), 4, "a header and 3 members");
    assert!(!status.contains("unreachable"), "{status}");

    // Membership with the CLI: a 4th member joins, is added as a voter, then removed; it stops by itself.
    let list = cluster.tool_ok(&["member", "list"]);
    let voters = |ids: &[u64]| {
        ids.iter()
            .map(|id| (*id, "voter".to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(member_ids(&list), voters(&[1, 2, 3]));
    let (mut four, _four_out) = cluster.member(4, &["--join"]);
    let added = cluster.tool_ok(&["member", "add", "4"]);
    assert_eq!(added.trim(), "added member 4 (member-4) as a voter");
    assert_eq!(
        member_ids(&cluster.tool_ok(&["member", "list"])),
        voters(&[1, 2, 3, 4])
    );
    cluster.caught_up(&[4], revision);
    assert_eq!(
        cluster.tool_ok(&["member", "remove", "4"]).trim(),
        "removed member 4"
    );
    let exit = wait_for("the removed member to exit", || {
        four.child.try_wait().ok().flatten()
    });
    assert!(exit.success(), "a removed member exits cleanly: {exit}");
    assert_eq!(
        member_ids(&cluster.tool_ok(&["member", "list"])),
        voters(&[1, 2, 3])
    );
    let missing = cluster.tool(&["member", "remove", "9"]);
    assert!(!missing.status.success());
    let error = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(error.trim().lines().count(), 1, "{error}");
    assert!(error.contains("member not found"), "{error}");

    // `navarch store get` prints objects as YAML.
    let namespace = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"demo"}}"#;
    cluster.put("/registry/namespaces/demo", namespace);
    let yaml = cluster.tool_ok(&["get", "/registry/namespaces/demo"]);
    assert_eq!(
        yaml,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n"
    );
    let all = cluster.tool_ok(&["get", "--prefix", "/registry/configmaps/default/after-"]);
    assert_eq!(all.matches("---").count(), 50);

    // Nothing acknowledged was lost, on any member.
    let stored = cluster
        .rt
        .block_on(cluster.client.list(b"/registry/configmaps/"))
        .expect("list");
    let found: std::collections::HashMap<Vec<u8>, i64> = stored
        .kvs
        .iter()
        .map(|kv| (kv.key.clone(), kv.mod_revision))
        .collect();
    for (key, revision) in &acknowledged {
        assert_eq!(found.get(key.as_bytes()), Some(revision), "{key}");
    }
    cluster.caught_up(&[1, 2, 3], stored.header.revision);
    drop(members);
}
