//! Three members on a real nats-server, each serving the etcd API: `etcdctl endpoint status` across them, writes
//! and linearizable reads through a follower, serializable reads, and a watch served by a follower.

#[path = "util/etcdctl.rs"]
mod etcdctl;
mod util;

use etcdctl::{Etcdctl, NatsServer};
use navarch_bus::Bus;
use navarch_store::Shutdown;

#[test]
fn three_members_serve_etcdctl() -> anyhow::Result<()> {
    util::run(async {
        let nats = NatsServer::start().await?;
        let dir = tempfile::tempdir()?;
        let ids = [1, 2, 3];
        let mut members = Vec::new();
        let mut addresses = Vec::new();
        for id in ids {
            let bus = Bus::nats(&nats.url, "etcd-cluster", &format!("member-{id}")).await?;
            let (member, address) = etcdctl::start_member(&bus, dir.path(), id, &ids).await?;
            members.push(member);
            addresses.push(address);
        }
        let leader = util::leader_of(&members).await?;
        let follower = ids
            .iter()
            .position(|id| *id != leader)
            .and_then(|i| addresses.get(i).copied())
            .ok_or_else(|| anyhow::anyhow!("no follower"))?;
        let all = Etcdctl::new(&addresses);
        let via_follower = Etcdctl::new(&[follower]);

        // Writes and linearizable reads through a follower reach the leader.
        assert_eq!(via_follower.ok(&["put", "k", "v1"]).await?, "OK\n");
        assert_eq!(via_follower.ok(&["get", "k"]).await?, "k\nv1\n");
        util::eventually("the follower applied the write", || async {
            via_follower
                .ok(&["get", "k", "--consistency=s", "--print-value-only"])
                .await
                .is_ok_and(|out| out == "v1\n")
        })
        .await?;

        // A watch served by a follower from its own state.
        let mut watch = via_follower.spawn(&["watch", "w", "--rev=1"])?;
        Etcdctl::new(&addresses[..1]).ok(&["put", "w", "1"]).await?;
        assert_eq!(watch.lines(3).await?, ["PUT", "w", "1"]);
        drop(watch);

        // endpoint status: one row per member, one leader, the same term everywhere.
        let table = all.ok(&["endpoint", "status", "-w", "table"]).await?;
        println!("{table}");
        let rows: Vec<Vec<String>> = table
            .lines()
            .filter(|l| l.contains("127.0.0.1"))
            .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
            .collect();
        assert_eq!(rows.len(), 3, "{table}");
        let leaders = rows
            .iter()
            .filter(|r| r.get(5).map(String::as_str) == Some("true"));
        assert_eq!(leaders.count(), 1, "{table}");
        let leader_hex = format!("{leader:x}");
        assert!(rows.iter().all(|r| r.get(2).is_some()), "{table}");
        assert!(
            rows.iter()
                .any(|r| r.get(2) == Some(&leader_hex)
                    && r.get(5).map(String::as_str) == Some("true")),
            "{table}"
        );
        let terms: Vec<_> = rows.iter().map(|r| r.get(7).cloned()).collect();
        assert!(terms.iter().all(|t| *t == terms[0]), "{table}");
        let health = all.run(&["endpoint", "health"]).await?;
        assert!(health.success, "{health:?}");
        assert_eq!(health.stderr.matches("is healthy").count(), 3, "{health:?}");

        for member in members {
            member.send(Shutdown).await??;
        }
        Ok(())
    })
}
