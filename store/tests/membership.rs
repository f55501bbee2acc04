//! Membership at runtime on one embedded bus: a learner added, caught up and promoted, a voter removed, the
//! leader removing itself, all under a write load that must lose nothing; changes that would break the cluster
//! are refused; a removed member stops serving.

mod util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use actix::Addr;
use navarch_bus::store::*;
use navarch_bus::Bus;
use navarch_store::{Execute, GetMetrics, Shutdown, StoreConfig, StoreMember, UntilRemoved};

const LOAD: &[u8] = b"/registry/load/";

/// Writers putting distinct keys until stopped; they record every acknowledged put.
struct Load {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<(String, i64)>>>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(client: &StoreClient, writers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let writers = (0..writers)
            .map(|w| {
                let (client, stop, acknowledged) =
                    (client.clone(), stop.clone(), acknowledged.clone());
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("/registry/load/w{w}-{i:06}");
                        let put = PutRequest {
                            key: key.clone().into_bytes(),
                            value: format!("value {i}").into_bytes(),
                            ..Default::default()
                        };
                        // A failed put may or may not have been applied; only acknowledged ones must survive.
                        if let Ok(done) = client.put(put).await {
                            acknowledged
                                .lock()
                                .expect("lock")
                                .push((key, done.header.revision));
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        Self {
            stop,
            acknowledged,
            writers,
        }
    }

    fn count(&self) -> usize {
        self.acknowledged.lock().expect("lock").len()
    }

    async fn wait_for_more(&self, more: usize) -> anyhow::Result<()> {
        let target = self.count() + more;
        util::eventually(&format!("{target} acknowledged writes"), || async {
            self.count() >= target
        })
        .await
    }

    /// Stops the writers; returns what was acknowledged.
    async fn stop(self) -> anyhow::Result<Vec<(String, i64)>> {
        self.stop.store(true, Ordering::Relaxed);
        for writer in self.writers {
            writer.await?;
        }
        Ok(self.acknowledged.lock().expect("lock").clone())
    }
}

/// Checks that every acknowledged put is in the store with the revision it was acknowledged at, and that every
/// member holds the same data at the same revision.
async fn nothing_lost(
    client: &StoreClient,
    members: &[Addr<StoreMember>],
    acknowledged: &[(String, i64)],
) -> anyhow::Result<()> {
    let stored = client.list(LOAD).await?;
    let found: std::collections::HashMap<Vec<u8>, i64> = stored
        .kvs
        .iter()
        .map(|kv| (kv.key.clone(), kv.mod_revision))
        .collect();
    for (key, revision) in acknowledged {
        assert_eq!(
            found.get(key.as_bytes()),
            Some(revision),
            "acknowledged put of {key} at revision {revision}"
        );
    }
    let (revision, kvs) = util::converged(members, LOAD, stored.header.revision).await?;
    assert_eq!(kvs.len(), stored.kvs.len());
    println!(
        "{} acknowledged puts all present; {} members agree on revision {revision}",
        acknowledged.len(),
        members.len()
    );
    Ok(())
}

fn joining(dir: &std::path::Path, id: u64) -> StoreConfig {
    StoreConfig {
        bootstrap: false,
        ..util::config(dir, id, &[id])
    }
}

async fn ids(client: &StoreClient) -> anyhow::Result<Vec<(u64, bool)>> {
    let list = client.member_list().await?;
    Ok(list.members.iter().map(|m| (m.id, m.is_learner)).collect())
}

/// Waits until the removed member has stopped, then checks it refuses requests.
async fn stopped_serving(member: &Addr<StoreMember>) -> anyhow::Result<()> {
    util::within("the removed member to stop", member.send(UntilRemoved)).await??;
    let reply = member.send(Execute(StoreRequest::Status)).await?;
    assert!(
        matches!(reply, Err(StoreError::Unavailable(ref m)) if m.contains("removed")),
        "a removed member refuses requests: {reply:?}"
    );
    Ok(())
}

#[test]
fn a_learner_is_promoted_and_a_voter_removed_under_load() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let members = [1, 2, 3];
        let mut addrs =
            util::start_members(&bus, &members, |id| util::config(dir.path(), id, &members))
                .await?;
        let (leader, _) = util::leader_addr(&addrs).await?;
        let client = StoreClient::new(bus.clone());
        let load = Load::start(&client, 4);
        load.wait_for_more(50).await?;

        // Member 4 starts empty and waits to be added; it serves no clients until then.
        let four = util::start_members(&bus, &[4], |id| joining(dir.path(), id))
            .await?
            .remove(0);
        let added = client
            .member_add(MemberAddRequest {
                id: 4,
                name: "four".into(),
                is_learner: true,
            })
            .await?;
        let member = added.member.expect("the added member");
        assert_eq!(
            (member.id, member.name.as_str(), member.is_learner),
            (4, "four", true)
        );
        assert_eq!(member.peer_urls, vec![bus.subjects().raft(4)]);
        assert_eq!(added.members.len(), 4);
        load.wait_for_more(50).await?;

        // Promotion waits for the learner to be in sync: retry while it is not.
        util::eventually("learner 4 promoted", || async {
            match client.member_promote(4).await {
                Ok(_) => true,
                Err(e) => {
                    assert!(e.is_retryable(), "promotion refused for good: {e}");
                    false
                }
            }
        })
        .await?;
        assert_eq!(
            ids(&client).await?,
            vec![(1, false), (2, false), (3, false), (4, false)]
        );
        addrs.push(four);
        load.wait_for_more(50).await?;

        // Remove a voter other than the leader: it stops serving; the others go on.
        let gone = members
            .iter()
            .copied()
            .find(|id| *id != leader)
            .expect("a follower");
        let after = client.member_remove(gone).await?;
        assert!(after.members.iter().all(|m| m.id != gone));
        let index = members.iter().position(|id| *id == gone).expect("index");
        let removed = addrs.remove(index);
        stopped_serving(&removed).await?;
        load.wait_for_more(100).await?;
        assert_eq!(ids(&client).await?.len(), 3);

        let acknowledged = load.stop().await?;
        nothing_lost(&client, &addrs, &acknowledged).await?;
        let voters = addrs[0].send(GetMetrics).await?.voters;
        assert_eq!(voters.len(), 3, "{voters:?}");
        assert!(voters.contains(&4) && !voters.contains(&gone));
        removed.send(Shutdown).await??;
        for addr in addrs {
            addr.send(Shutdown).await??;
        }
        Ok(())
    })
}

#[test]
fn changes_that_would_break_the_cluster_are_refused() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let members = [1, 2, 3];
        let mut addrs =
            util::start_members(&bus, &members, |id| util::config(dir.path(), id, &members))
                .await?;
        let (leader, _) = util::leader_addr(&addrs).await?;
        let client = StoreClient::new(bus.clone());
        let refused = |result: Result<MemberListResponse, navarch_bus::store::Error>| match result {
            Err(navarch_bus::store::Error::Store(e)) => e,
            other => panic!("expected a refusal, got {other:?}"),
        };

        let exists = MemberAddRequest {
            id: 2,
            ..Default::default()
        };
        assert_eq!(
            refused(client.member_add(exists).await),
            StoreError::MemberExists { id: 2 }
        );
        assert_eq!(
            refused(client.member_remove(9).await),
            StoreError::MemberNotFound { id: 9 }
        );
        assert!(matches!(
            refused(client.member_promote(2).await),
            StoreError::InvalidArgument(_)
        ));

        // A learner that is not running cannot be promoted; a voter that is not running stays a learner.
        let absent = MemberAddRequest {
            id: 7,
            is_learner: true,
            ..Default::default()
        };
        client.member_add(absent).await?;
        assert!(matches!(
            refused(client.member_promote(7).await),
            StoreError::Unhealthy(_)
        ));
        let absent_voter = MemberAddRequest {
            id: 8,
            ..Default::default()
        };
        assert!(matches!(
            refused(client.member_add(absent_voter).await),
            StoreError::Unhealthy(_)
        ));
        assert_eq!(
            ids(&client).await?,
            vec![(1, false), (2, false), (3, false), (7, true), (8, true)]
        );
        // Learners go without touching the quorum.
        client.member_remove(7).await?;
        client.member_remove(8).await?;

        // One follower down: removing the other would leave {leader, down} without a quorum.
        let followers: Vec<u64> = members.iter().copied().filter(|id| *id != leader).collect();
        let (down, up) = (followers[0], followers[1]);
        let index = members.iter().position(|id| *id == down).expect("index");
        addrs.remove(index).send(Shutdown).await??;
        assert!(matches!(
            refused(client.member_remove(up).await),
            StoreError::Unhealthy(_)
        ));
        // Removing the member that is down leaves {leader, up}, both running.
        client.member_remove(down).await?;
        client.member_remove(up).await?;
        assert_eq!(ids(&client).await?, vec![(leader, false)]);
        // The last voter stays.
        assert!(matches!(
            refused(client.member_remove(leader).await),
            StoreError::Unhealthy(_)
        ));
        let put = PutRequest {
            key: b"/registry/still/serving".to_vec(),
            value: b"yes".to_vec(),
            ..Default::default()
        };
        client.put(put).await?;
        for addr in addrs {
            addr.send(Shutdown).await??;
        }
        Ok(())
    })
}

#[test]
fn a_leader_removes_itself_and_a_member_removed_while_down_stops_when_back() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let members = [1, 2, 3];
        let config = |id| util::config(dir.path(), id, &members);
        let mut addrs = util::start_members(&bus, &members, config).await?;
        let client = StoreClient::new(bus.clone());
        let load = Load::start(&client, 2);
        load.wait_for_more(30).await?;

        // Member 4 joins as a voter in one step: it is running, so it catches up before it is promoted.
        let four = util::start_members(&bus, &[4], |id| joining(dir.path(), id))
            .await?
            .remove(0);
        let added = client
            .member_add(MemberAddRequest {
                id: 4,
                ..Default::default()
            })
            .await?;
        assert_eq!(
            added.member.map(|m| (m.name, m.is_learner)),
            Some(("member-4".into(), false))
        );
        addrs.push(four);

        // The leader removes itself: it answers, steps down and stops; another member leads.
        let (leader, leader_addr) = util::leader_addr(&addrs).await?;
        client.member_remove(leader).await?;
        stopped_serving(&leader_addr).await?;
        addrs.retain(|a| a != &leader_addr);
        let (next, _) = util::leader_addr(&addrs).await?;
        assert_ne!(next, leader);
        load.wait_for_more(30).await?;

        // A member removed while it was down does not know it; when it comes back, the leader tells it.
        let (_, down_addr) = {
            let mut found = None;
            for addr in &addrs {
                let id = addr.send(GetMetrics).await?.id;
                if id != next {
                    found = Some((id, addr.clone()));
                }
            }
            found.expect("a follower")
        };
        let down = down_addr.send(GetMetrics).await?.id;
        down_addr.send(Shutdown).await??;
        addrs.retain(|a| a != &down_addr);
        client.member_remove(down).await?;
        load.wait_for_more(30).await?;
        // Restarted as it was started: the initial members with the initial list, member 4 as joining.
        let restart = |id| {
            if id == 4 {
                joining(dir.path(), id)
            } else {
                config(id)
            }
        };
        let back = util::start_members(&bus, &[down], restart).await?.remove(0);
        stopped_serving(&back).await?;
        load.wait_for_more(30).await?;

        let acknowledged = load.stop().await?;
        nothing_lost(&client, &addrs, &acknowledged).await?;
        assert_eq!(ids(&client).await?.len(), 2);
        for addr in [leader_addr, back].into_iter().chain(addrs) {
            addr.send(Shutdown).await??;
        }
        Ok(())
    })
}

#[test]
fn a_learner_removed_while_down_stops_when_back() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let members = [1, 2, 3];
        let addrs =
            util::start_members(&bus, &members, |id| util::config(dir.path(), id, &members))
                .await?;
        let client = StoreClient::new(bus.clone());
        let learner = util::start_members(&bus, &[4], |id| joining(dir.path(), id))
            .await?
            .remove(0);
        let add = MemberAddRequest {
            id: 4,
            is_learner: true,
            ..Default::default()
        };
        client.member_add(add).await?;
        util::eventually("the learner has the log", || async {
            matches!(learner.send(GetMetrics).await, Ok(m) if m.applied_index > 0)
        })
        .await?;
        learner.send(Shutdown).await??;

        // Learners never stand for election, so only its own check tells it.
        client.member_remove(4).await?;
        let back = util::start_members(&bus, &[4], |id| joining(dir.path(), id))
            .await?
            .remove(0);
        stopped_serving(&back).await?;
        assert_eq!(
            ids(&client).await?,
            vec![(1, false), (2, false), (3, false)]
        );
        for addr in addrs.into_iter().chain([back]) {
            addr.send(Shutdown).await??;
        }
        Ok(())
    })
}

#[test]
fn members_record_their_client_urls_in_the_membership() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let members = [1, 2, 3];
        let url = |id: u64| format!("http://127.0.0.1:{}", 2379 + id);
        let addrs = util::start_members(&bus, &members, |id| StoreConfig {
            client_urls: vec![url(id)],
            ..util::config(dir.path(), id, &members)
        })
        .await?;
        let client = StoreClient::new(bus.clone());
        // Followers ask the leader to record theirs; the leader records its own.
        util::eventually("every member's client URL in the member list", || async {
            let Ok(list) = client.member_list().await else {
                return false;
            };
            list.members
                .iter()
                .all(|m| m.client_urls == vec![url(m.id)] && m.name == format!("member-{}", m.id))
        })
        .await?;
        for addr in addrs {
            addr.send(Shutdown).await??;
        }
        Ok(())
    })
}
