//! Leases through the etcd API with the real `etcdctl`: grant, put --lease, keep-alive, time-to-live with keys,
//! list, revoke, expiry, and unknown leases.

#[path = "util/etcdctl.rs"]
mod etcdctl;
mod util;

use etcdctl::Etcdctl;
use navarch_bus::Bus;
use navarch_store::etcd::proto::etcdserverpb::{self as pb, compare, kv_client::KvClient};
use navarch_store::Shutdown;

/// The lease id in etcdctl's "lease <hex id> granted with TTL(..)".
fn granted(out: &str) -> anyhow::Result<String> {
    let id = out
        .strip_prefix("lease ")
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| anyhow::anyhow!("unexpected grant output {out:?}"))?;
    Ok(id.to_string())
}

#[test]
fn leases_like_etcd() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("etcd-lease").await?;
        let (member, address) = etcdctl::start_member(&bus, dir.path(), 1, &[1]).await?;
        let etcdctl = Etcdctl::new(&[address]);

        let out = etcdctl.ok(&["lease", "grant", "60"]).await?;
        assert!(out.contains("granted with TTL(60s)"), "{out}");
        let id = granted(&out)?;
        let lease_flag = format!("--lease={id}");
        assert_eq!(
            etcdctl.ok(&["put", "held", "v", &lease_flag]).await?,
            "OK\n"
        );
        etcdctl.ok(&["put", "free", "v"]).await?;

        let out = etcdctl.ok(&["lease", "timetolive", &id, "--keys"]).await?;
        assert!(
            out.contains(&format!("lease {id} granted with TTL(60s)"))
                && out.contains("attached keys([held])"),
            "{out}"
        );
        let out = etcdctl.ok(&["lease", "keep-alive", "--once", &id]).await?;
        assert!(
            out.contains(&format!("lease {id} keepalived with TTL(60)")),
            "{out}"
        );
        let out = etcdctl.ok(&["lease", "list"]).await?;
        assert!(out.contains("found 1 leases") && out.contains(&id), "{out}");
        let json = etcdctl.ok(&["get", "held", "-w", "json"]).await?;
        let value: serde_json::Value = serde_json::from_str(&json)?;
        assert_eq!(
            value["kvs"][0]["lease"].as_i64(),
            i64::from_str_radix(&id, 16).ok(),
            "{json}"
        );

        // A transaction can compare a key's lease (etcdctl 3.4's own txn parser cannot express it: a client does).
        let mut kv = KvClient::new(
            tonic::transport::Channel::from_shared(format!("http://{address}"))?
                .connect()
                .await?,
        );
        let lease = i64::from_str_radix(&id, 16)?;
        let on = |key: &str, lease: i64| pb::Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Lease as i32,
            key: key.into(),
            target_union: Some(compare::TargetUnion::Lease(lease)),
            range_end: Vec::new(),
        };
        for (compares, holds) in [
            (
                vec![on("held", lease), on("free", 0), on("absent", 0)],
                true,
            ),
            (vec![on("held", 0)], false),
        ] {
            let txn = pb::TxnRequest {
                compare: compares,
                ..Default::default()
            };
            assert_eq!(kv.txn(txn).await?.into_inner().succeeded, holds);
        }

        // Revoking deletes the attached keys only.
        let out = etcdctl.ok(&["lease", "revoke", &id]).await?;
        assert!(out.contains(&format!("lease {id} revoked")), "{out}");
        assert_eq!(etcdctl.ok(&["get", "held"]).await?, "");
        assert_eq!(
            etcdctl.ok(&["get", "free", "--print-value-only"]).await?,
            "v\n"
        );
        let out = etcdctl.ok(&["lease", "timetolive", &id]).await?;
        assert!(out.contains("already expired"), "{out}");

        // Unknown leases get etcd's errors.
        let refused = etcdctl.fails(&["lease", "revoke", "1234"]).await?;
        assert!(
            refused.contains("etcdserver: requested lease not found"),
            "{refused}"
        );
        let refused = etcdctl.fails(&["put", "k", "v", "--lease=1234"]).await?;
        assert!(
            refused.contains("etcdserver: requested lease not found"),
            "{refused}"
        );
        let run = etcdctl
            .run(&["lease", "keep-alive", "--once", "1234"])
            .await?;
        assert!(
            // etcd answers with TTL 0, which etcd's client turns into its "not found" error.
            !run.success && run.stderr.contains("etcdserver: requested lease not found"),
            "{run:?}"
        );

        // Expiry: a short lease that is not kept alive takes its key with it, seen by a watch as a delete.
        let id = granted(&etcdctl.ok(&["lease", "grant", "1"]).await?)?;
        let out = etcdctl
            .ok(&["put", "short", "v", &format!("--lease={id}")])
            .await?;
        assert_eq!(out, "OK\n");
        let revision = serde_json::from_str::<serde_json::Value>(
            &etcdctl.ok(&["get", "short", "-w", "json"]).await?,
        )?["header"]["revision"]
            .as_i64()
            .unwrap_or_default();
        let mut watch = etcdctl.spawn(&["watch", "short", &format!("--rev={revision}")])?;
        assert_eq!(watch.lines(3).await?, ["PUT", "short", "v"]);
        assert_eq!(watch.lines(3).await?, ["DELETE", "short", ""]);
        assert_eq!(etcdctl.ok(&["get", "short"]).await?, "");

        member.send(Shutdown).await??;
        Ok(())
    })
}
