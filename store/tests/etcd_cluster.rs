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

        // member list: every member with its etcd URL (each records it through the leader once it runs), and
        // `endpoint status --cluster`, which dials every listed URL.
        let urls: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
        let listed = std::cell::RefCell::new(String::new());
        util::eventually(
            "every member's client URL is listed and reachable",
            || async {
                let Ok(list) = all.ok(&["member", "list", "-w", "table"]).await else {
                    return false;
                };
                let Ok(cluster) = all
                    .run(&["endpoint", "status", "--cluster", "-w", "table"])
                    .await
                else {
                    return false;
                };
                *listed.borrow_mut() = format!("{list}{}{}", cluster.stdout, cluster.stderr);
                urls.iter().all(|url| list.contains(url.as_str()))
                    && cluster.stdout.matches("3.4.0-navarch").count() == 3
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}: {}", listed.borrow()))?;
        let listed = listed.into_inner();
        println!("{listed}");
        for id in ids {
            assert!(listed.contains(&format!("member-{id}")), "{listed}");
        }

        // Membership changes through etcd's API: a learner (its id in the peer URL), then removed.
        let peer = "--peer-urls=http://member-4:2380";
        let added = all
            .run(&["member", "add", "member-4", peer, "--learner"])
            .await?;
        assert!(added.success, "{added:?}");
        assert!(
            added.stdout.contains("Member                4 added"),
            "{added:?}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&all.ok(&["member", "list", "-w", "json"]).await?)?;
        let learner = json["members"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["ID"] == 4))
            .cloned()
            .unwrap_or_default();
        assert_eq!(learner["isLearner"], true, "{json}");
        let removed = all.ok(&["member", "remove", "4"]).await?;
        assert!(
            removed.contains("Member                4 removed"),
            "{removed}"
        );
        let refused = all.fails(&["member", "remove", "99"]).await?;
        assert!(refused.contains("member not found"), "{refused}");

        for member in members {
            member.send(Shutdown).await??;
        }
        Ok(())
    })
}
