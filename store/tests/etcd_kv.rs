//! The real `etcdctl` 3.4 against a member's etcd API: put, get (prefix, revision, JSON, keys only, limit, sort),
//! del, txn from stdin, compaction, endpoint status and health, and what Navarch itself stores.

#[path = "util/etcdctl.rs"]
mod etcdctl;
mod util;

use etcdctl::Etcdctl;
use navarch_bus::api::k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec};
use navarch_bus::api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use navarch_bus::api::Objects;
use navarch_bus::store::StoreClient;
use navarch_bus::Bus;
use navarch_store::Shutdown;
use serde_json::Value;

/// The lines of etcdctl's output, without empty ones.
fn lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| !l.is_empty()).collect()
}

fn json(out: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(out)?)
}

#[test]
fn put_get_del_like_etcd() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("etcd-kv").await?;
        let (member, address) = etcdctl::start_member(&bus, dir.path(), 1, &[1]).await?;
        let etcdctl = Etcdctl::new(&[address]);

        assert_eq!(etcdctl.ok(&["put", "foo", "bar"]).await?, "OK\n");
        for (key, value) in [("foo1", "bar1"), ("foo2", "bar2"), ("zoo", "z")] {
            etcdctl.ok(&["put", key, value]).await?;
        }
        assert_eq!(etcdctl.ok(&["get", "foo"]).await?, "foo\nbar\n");
        assert_eq!(
            lines(&etcdctl.ok(&["get", "foo", "--prefix"]).await?),
            ["foo", "bar", "foo1", "bar1", "foo2", "bar2"]
        );
        assert_eq!(
            lines(
                &etcdctl
                    .ok(&["get", "foo", "--prefix", "--keys-only"])
                    .await?
            ),
            ["foo", "foo1", "foo2"]
        );
        assert_eq!(
            lines(&etcdctl.ok(&["get", "foo", "--prefix", "--limit=2"]).await?),
            ["foo", "bar", "foo1", "bar1"]
        );
        assert_eq!(
            lines(
                &etcdctl
                    .ok(&["get", "--from-key", "foo1", "--keys-only"])
                    .await?
            ),
            ["foo1", "foo2", "zoo"]
        );
        assert_eq!(
            lines(
                &etcdctl
                    .ok(&[
                        "get",
                        "foo",
                        "--prefix",
                        "--sort-by=VALUE",
                        "--order=DESCEND",
                        "--keys-only"
                    ])
                    .await?
            ),
            ["foo2", "foo1", "foo"]
        );
        assert_eq!(
            lines(&etcdctl.ok(&["get", "nothing"]).await?),
            Vec::<&str>::new()
        );

        // -w json: etcd's header and base64 keys and values; a past revision reads the old value.
        let first = json(&etcdctl.ok(&["get", "foo", "-w", "json"]).await?)?;
        let header = &first["header"];
        assert!(
            header["cluster_id"].as_u64().is_some_and(|id| id != 0),
            "{first}"
        );
        assert_eq!(header["member_id"], 1);
        assert!(
            header["raft_term"].as_u64().is_some_and(|t| t > 0),
            "{first}"
        );
        let revision = header["revision"].as_i64().unwrap_or_default();
        assert_eq!(revision, 5, "{first}");
        assert_eq!(first["kvs"][0]["key"], "Zm9v");
        assert_eq!(first["kvs"][0]["value"], "YmFy");
        assert_eq!(first["kvs"][0]["create_revision"], 2);
        assert_eq!(first["count"], 1);
        etcdctl.ok(&["put", "foo", "baz"]).await?;
        assert_eq!(etcdctl.ok(&["get", "foo", "--rev=5"]).await?, "foo\nbar\n");
        let now = json(&etcdctl.ok(&["get", "foo", "-w", "json"]).await?)?;
        assert_eq!(
            (
                now["kvs"][0]["version"].as_i64(),
                now["kvs"][0]["mod_revision"].as_i64()
            ),
            (Some(2), Some(6))
        );
        let limited = json(
            &etcdctl
                .ok(&["get", "foo", "--prefix", "--limit=1", "-w", "json"])
                .await?,
        )?;
        assert_eq!(
            (limited["count"].as_i64(), limited["more"].as_bool()),
            (Some(3), Some(true)),
            "{limited}"
        );

        // del: one key with its previous value, then a prefix.
        assert_eq!(
            lines(&etcdctl.ok(&["del", "foo1", "--prev-kv"]).await?),
            ["1", "foo1", "bar1"]
        );
        assert_eq!(
            lines(&etcdctl.ok(&["del", "foo", "--prefix"]).await?),
            ["2"]
        );
        assert_eq!(lines(&etcdctl.ok(&["del", "foo"]).await?), ["0"]);
        assert_eq!(
            lines(&etcdctl.ok(&["get", "", "--prefix", "--keys-only"]).await?),
            ["zoo"]
        );

        member.send(Shutdown).await??;
        Ok(())
    })
}

#[test]
fn txn_from_stdin_and_compaction() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("etcd-txn").await?;
        let (member, address) = etcdctl::start_member(&bus, dir.path(), 1, &[1]).await?;
        let etcdctl = Etcdctl::new(&[address]);
        let limit = std::time::Duration::from_secs(30);
        etcdctl.ok(&["put", "counter", "1"]).await?; // revision 2

        // etcdctl's txn syntax: compares, blank line, success ops, blank line, failure ops, blank line.
        let txn = b"mod(\"counter\") = \"2\"\nval(\"counter\") = \"1\"\nver(\"counter\") > \"0\"\n\nput counter 2\nget counter\n\nget counter\n\n";
        let run = etcdctl.run_with(&["txn"], txn, limit).await?;
        assert!(run.success, "{run:?}");
        assert_eq!(lines(&run.stdout), ["SUCCESS", "OK", "counter", "2"]);
        // The same compares fail now: the failure branch runs and nothing is written.
        let run = etcdctl.run_with(&["txn"], txn, limit).await?;
        assert_eq!(lines(&run.stdout), ["FAILURE", "counter", "2"], "{run:?}");
        let run = etcdctl
            .run_with(
                &["txn"],
                b"c(\"missing\") = \"0\"\n\nput missing here\ndel counter\n\n\n",
                limit,
            )
            .await?;
        assert_eq!(lines(&run.stdout), ["SUCCESS", "OK", "1"], "{run:?}");

        // Revisions: 2 counter=1, 3 counter=2, 4 missing + delete counter.
        assert_eq!(
            etcdctl.ok(&["get", "counter", "--rev=3"]).await?,
            "counter\n2\n"
        );
        assert_eq!(
            etcdctl.ok(&["compaction", "3"]).await?,
            "compacted revision 3\n"
        );
        let refused = etcdctl.fails(&["get", "counter", "--rev=2"]).await?;
        assert!(
            refused.contains("etcdserver: mvcc: required revision has been compacted"),
            "{refused}"
        );
        assert_eq!(
            etcdctl.ok(&["get", "counter", "--rev=3"]).await?,
            "counter\n2\n"
        );
        let refused = etcdctl.fails(&["get", "counter", "--rev=99"]).await?;
        assert!(
            refused.contains("etcdserver: mvcc: required revision is a future revision"),
            "{refused}"
        );
        let refused = etcdctl.fails(&["compaction", "2"]).await?;
        assert!(
            refused.contains("required revision has been compacted"),
            "{refused}"
        );

        member.send(Shutdown).await??;
        Ok(())
    })
}

#[test]
fn endpoint_status_health_and_navarch_objects() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("etcd-status").await?;
        let (member, address) = etcdctl::start_member(&bus, dir.path(), 1, &[1]).await?;
        let etcdctl = Etcdctl::new(&[address]);

        let table = etcdctl.ok(&["endpoint", "status", "-w", "table"]).await?;
        println!("{table}");
        let row = table
            .lines()
            .find(|l| l.contains(&address.to_string()))
            .unwrap_or_default();
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // | ENDPOINT | ID | VERSION | DB SIZE | IS LEADER | IS LEARNER | RAFT TERM | RAFT INDEX | RAFT APPLIED INDEX | ERRORS |
        assert_eq!(cells.get(2), Some(&"1"), "{table}");
        assert_eq!(cells.get(3), Some(&"3.4.0-navarch"), "{table}");
        assert_eq!(cells.get(5), Some(&"true"), "{table}");
        assert_eq!(cells.get(6), Some(&"false"), "{table}");
        let status = json(&etcdctl.ok(&["endpoint", "status", "-w", "json"]).await?)?;
        assert_eq!(status[0]["Status"]["leader"], 1, "{status}");
        assert!(
            status[0]["Status"]["dbSize"]
                .as_i64()
                .is_some_and(|s| s > 0),
            "{status}"
        );

        // etcdctl reports health on standard error.
        let health = etcdctl.run(&["endpoint", "health"]).await?;
        assert!(
            health.success && health.stderr.contains("is healthy"),
            "{health:?}"
        );

        // What a Navarch cluster stores is readable as etcd users expect: JSON objects under /registry/.
        let objects = Objects::new(StoreClient::new(bus.clone()));
        let meta = |name: &str, namespace: Option<&str>| ObjectMeta {
            name: Some(name.into()),
            namespace: namespace.map(Into::into),
            ..Default::default()
        };
        objects
            .create_as(&Namespace {
                metadata: meta("default", None),
                ..Default::default()
            })
            .await?;
        objects
            .create_as(&Pod {
                metadata: meta("my-app", Some("default")),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "main".into(),
                        image: Some("busybox".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await?;
        let out = etcdctl.ok(&["get", "/registry/namespaces/default"]).await?;
        let [key, value] = lines(&out)[..] else {
            anyhow::bail!("unexpected output {out}");
        };
        assert_eq!(key, "/registry/namespaces/default");
        let namespace = json(value)?;
        assert_eq!(
            (
                namespace["kind"].as_str(),
                namespace["metadata"]["name"].as_str()
            ),
            (Some("Namespace"), Some("default"))
        );
        let out = etcdctl
            .ok(&["get", "/registry/pods/default/my-app", "--print-value-only"])
            .await?;
        let pod = json(out.trim())?;
        assert_eq!(pod["spec"]["containers"][0]["image"], "busybox", "{pod}");

        member.send(Shutdown).await??;
        Ok(())
    })
}
