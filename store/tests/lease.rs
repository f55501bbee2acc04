//! Leases against real members: grant, attach, keep-alive, time-to-live, revoke and list; expiry deleting the
//! attached keys where watchers see it; expiry across a restart and across a leader's shutdown, each with a fresh
//! TTL from the new leader.

mod util;

use std::time::Duration;

use navarch_bus::store::*;
use navarch_bus::Bus;
use navarch_store::{Shutdown, StoreMember};

fn put(key: &str, lease: i64) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        lease,
        ..Default::default()
    }
}

/// The next `Changes` of a watch, skipping bookmarks.
async fn next_changes(watch: &mut WatchStream) -> anyhow::Result<(i64, Vec<Event>)> {
    loop {
        match util::within("a watch event", watch.next()).await? {
            Some(Ok(WatchEvent::Changes { revision, events })) => return Ok((revision, events)),
            Some(Ok(WatchEvent::Progress { .. })) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("watch ended"),
        }
    }
}

/// Waits up to 10 s until the members agree on a leader other than `old`.
async fn new_leader(addrs: &[actix::Addr<StoreMember>], old: u64) -> anyhow::Result<u64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if let Ok(leader) = util::leader_of(addrs).await {
            if leader != old {
                return Ok(leader);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("gave up waiting: a leader other than {old}")
}

fn is_store_error(result: &Result<impl std::fmt::Debug, Error>, want: &StoreError) -> bool {
    matches!(result, Err(Error::Store(e)) if e == want)
}

#[test]
fn grant_attach_keep_alive_time_to_live_revoke_and_list() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let member = util::start_single(&bus, dir.path()).await?;
        let client = StoreClient::new(bus.clone());

        let granted = client.lease_grant(60, 0).await?;
        assert!(granted.id > 0);
        assert_eq!(granted.ttl, 60);
        // Below the minimum TTL (1.5 election timeouts rounded up: 1 s with the tests' 300 ms) it is raised.
        assert_eq!(client.lease_grant(0, 0).await?.ttl, 1);
        let chosen = client.lease_grant(30, 4242).await?;
        assert_eq!(chosen.id, 4242);
        let again = client.lease_grant(30, 4242).await;
        assert!(
            is_store_error(&again, &StoreError::LeaseExists { id: 4242 }),
            "{again:?}"
        );
        let leases = client.lease_leases().await?.leases;
        assert_eq!(leases.len(), 3);
        assert!(leases.contains(&granted.id) && leases.contains(&4242));

        let id = granted.id;
        client.put(put("/registry/pods/a", id)).await?;
        client.put(put("/registry/pods/b", id)).await?;
        client.put(put("/registry/pods/free", 0)).await?;
        let unknown = client.put(put("/registry/pods/c", 999_999)).await;
        assert!(
            is_store_error(&unknown, &StoreError::LeaseNotFound { id: 999_999 }),
            "{unknown:?}"
        );
        assert_eq!(
            client.get(b"/registry/pods/a").await?.map(|kv| kv.lease),
            Some(id)
        );

        let ttl = client.lease_time_to_live(id, true).await?;
        assert_eq!(ttl.granted_ttl, 60);
        assert!(ttl.ttl > 0 && ttl.ttl <= 60, "{ttl:?}");
        assert_eq!(
            ttl.keys,
            vec![b"/registry/pods/a".to_vec(), b"/registry/pods/b".to_vec()]
        );
        let renewed = client.lease_keep_alive(id).await?;
        assert_eq!((renewed.id, renewed.ttl), (id, 60));

        let mut watch = client.watch_prefix(b"/registry/pods/", 0).await?;
        let revoked = client.lease_revoke(id).await?;
        let (revision, events) = next_changes(&mut watch).await?;
        assert_eq!(revision, revoked.revision, "one revision for the revoke");
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.kind == EventKind::Delete));
        assert_eq!(client.list(b"/registry/pods/").await?.count, 1);

        let gone = client.lease_keep_alive(id).await;
        assert!(
            is_store_error(&gone, &StoreError::LeaseNotFound { id }),
            "{gone:?}"
        );
        assert_eq!(client.lease_time_to_live(id, false).await?.ttl, -1);
        let twice = client.lease_revoke(id).await;
        assert!(
            is_store_error(&twice, &StoreError::LeaseNotFound { id }),
            "{twice:?}"
        );
        assert!(!client.lease_leases().await?.leases.contains(&id));
        member.send(Shutdown).await??;
        Ok(())
    })
}

#[test]
fn an_expired_lease_deletes_its_keys_and_watchers_see_it() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let member = util::start_single(&bus, dir.path()).await?;
        let client = StoreClient::new(bus.clone());

        let lease = client.lease_grant(1, 0).await?.id;
        client.put(put("/registry/pods/a", lease)).await?;
        let last = client.put(put("/registry/pods/b", lease)).await?;
        // From the revision after the puts, so the expiry is seen even if it came before the watch started.
        let mut watch = client
            .watch_prefix(b"/registry/pods/", last.header.revision + 1)
            .await?;
        let (_, events) = next_changes(&mut watch).await?;
        assert_eq!(events.len(), 2, "both keys go at one revision");
        assert!(events
            .iter()
            .all(|e| e.kind == EventKind::Delete
                && e.prev_kv.as_ref().map(|kv| kv.lease) == Some(lease)));
        assert_eq!(client.list(b"/registry/pods/").await?.count, 0);
        assert!(!client.lease_leases().await?.leases.contains(&lease));
        member.send(Shutdown).await??;
        Ok(())
    })
}

#[test]
fn a_restarted_member_gives_leases_a_fresh_ttl_and_still_expires_them() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let client = StoreClient::new(bus.clone());
        let member = util::start_single(&bus, dir.path()).await?;
        let lease = client.lease_grant(3, 0).await?.id;
        client.put(put("/registry/pods/a", lease)).await?;
        member.send(Shutdown).await??;
        // Down for longer than the TTL: the lease would be past its deadline on the old clock.
        tokio::time::sleep(Duration::from_secs(4)).await;

        let member = util::start_single(&bus, dir.path()).await?;
        assert!(
            client.get(b"/registry/pods/a").await?.is_some(),
            "the lease survived the restart with a fresh TTL"
        );
        let ttl = client.lease_time_to_live(lease, true).await?;
        assert_eq!(ttl.granted_ttl, 3);
        assert_eq!(ttl.keys, vec![b"/registry/pods/a".to_vec()]);
        util::eventually("the lease expires after the restart", || async {
            matches!(client.get(b"/registry/pods/a").await, Ok(None))
        })
        .await?;
        assert!(!client.lease_leases().await?.leases.contains(&lease));
        member.send(Shutdown).await??;
        Ok(())
    })
}

#[test]
fn a_lease_survives_the_leaders_shutdown_and_expires_under_the_next() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("test").await?;
        let members = [1, 2, 3];
        let mut addrs = Vec::new();
        for id in members {
            let own = Bus::new(bus.transport(), "test").await?;
            addrs.push(StoreMember::start(own, util::config(dir.path(), id, &members)).await?);
        }
        let leader = util::leader_of(&addrs).await?;
        let client = StoreClient::new(bus.clone());
        let lease = client.lease_grant(4, 0).await?.id;
        client.put(put("/registry/pods/a", lease)).await?;
        client.lease_keep_alive(lease).await?;

        let index = members.iter().position(|id| *id == leader).unwrap_or(0);
        addrs.remove(index).send(Shutdown).await??;
        let next = new_leader(&addrs, leader).await?;
        // The new leader knows the lease and renews it (requests may need a retry while leadership settles).
        util::eventually("the new leader renews the lease", || async {
            matches!(client.lease_keep_alive(lease).await, Ok(r) if r.id == lease)
        })
        .await?;
        assert!(client.get(b"/registry/pods/a").await?.is_some());
        let ttl = client.lease_time_to_live(lease, false).await?;
        assert_eq!(
            ttl.header.member_id, next,
            "the new leader answers for the lease"
        );
        assert!(ttl.ttl > 0, "{ttl:?}");

        // No more keep-alives: the new leader expires it, and every member applies the deletion.
        util::eventually("the lease expires under the new leader", || async {
            matches!(client.get(b"/registry/pods/a").await, Ok(None))
        })
        .await?;
        assert!(!client.lease_leases().await?.leases.contains(&lease));
        for addr in addrs {
            addr.send(Shutdown).await??;
        }
        Ok(())
    })
}
