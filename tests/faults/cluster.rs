//! Store members as real `navarch store` processes on a real nats-server, each connected through its own
//! [`Proxy`]: `kill -9`, restart on the same data directory, partition (the member is moved to a second,
//! otherwise empty nats-server where only "minority" clients reach it), and a member's own status.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use navarch_bus::store::{StatusResponse, StoreRequest};
use navarch_bus::Bus;
use navarch_store::network::{RaftMessage, RaftReply};

use super::proxy::Proxy;
use crate::util::{navarch, start_nats, Proc};

/// The cluster name of every fault test (each cluster has its own nats-server).
pub const CLUSTER: &str = "faults";

/// How long a cluster may take to agree on a leader or to catch up; a bound, never a measurement.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Log filter of the member processes: Navarch at info, and openraft's elections and snapshot transfers.
const MEMBER_LOG: &str = "warn,navarch=info,navarch_store=info,openraft::raft=info,openraft::network=info,openraft::engine=info";

/// One member: its proxy, its process (when running), its log file.
pub struct Member {
    /// Its id.
    pub id: u64,
    proxy: Proxy,
    proc: Option<Proc>,
    data_dir: PathBuf,
    log: PathBuf,
    starts: u32,
    /// Added at runtime: it starts with `--join` instead of the initial `--members`.
    joined: bool,
}

/// A nats-server and where it listens.
pub struct Nats {
    _proc: Proc,
    /// Its client URL.
    pub url: String,
    addr: SocketAddr,
}

impl Nats {
    fn start() -> Nats {
        let (proc, url) = start_nats();
        let addr = url
            .trim_start_matches("nats://")
            .parse()
            .expect("nats address");
        Nats {
            _proc: proc,
            url,
            addr,
        }
    }
}

/// Members `1..=n` forming one cluster.
pub struct Cluster {
    /// The NATS server of the majority: clients and every member not partitioned.
    pub nats: Nats,
    /// The server a partitioned member is moved to (started on first use).
    minority: Option<Nats>,
    /// A connection of the test to the majority's server.
    pub bus: Bus,
    members: BTreeMap<u64, Member>,
    /// The voters as the test changed them: initially every member.
    voters: Vec<u64>,
    /// The voters the cluster was formed with.
    initial: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts members `1..=n`, forming one cluster, and waits for a leader.
    pub async fn start(n: u64) -> Cluster {
        let nats = Nats::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut members = BTreeMap::new();
        for id in 1..=n {
            members.insert(
                id,
                Member {
                    id,
                    proxy: Proxy::start(nats.addr).await,
                    proc: None,
                    data_dir: dir.path().join(format!("member-{id}")),
                    log: dir.path().join(format!("member-{id}.log")),
                    starts: 0,
                    joined: false,
                },
            );
        }
        let bus = Bus::nats(&nats.url, CLUSTER, "fault-test")
            .await
            .expect("test bus");
        let voters: Vec<u64> = members.keys().copied().collect();
        let initial = voters
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            nats,
            minority: None,
            bus,
            members,
            voters,
            initial,
            dir,
        };
        let ids: Vec<u64> = cluster.members.keys().copied().collect();
        for id in ids {
            cluster.start_member(id);
        }
        cluster.leader().await;
        cluster
    }

    /// Ids of the voting members.
    pub fn ids(&self) -> Vec<u64> {
        self.voters.clone()
    }

    /// Starts a new member `id` that waits to be added (`navarch store --join`); the test adds it with the
    /// store's membership calls, then records it with [`Cluster::set_voters`].
    pub async fn start_joining(&mut self, id: u64) {
        assert!(!self.members.contains_key(&id), "member {id} exists");
        self.members.insert(
            id,
            Member {
                id,
                proxy: Proxy::start(self.nats.addr).await,
                proc: None,
                data_dir: self.dir.path().join(format!("member-{id}")),
                log: self.dir.path().join(format!("member-{id}.log")),
                starts: 0,
                joined: true,
            },
        );
        self.start_member(id);
    }

    /// Records the voters after a membership change.
    pub fn set_voters(&mut self, voters: &[u64]) {
        self.voters = voters.to_vec();
    }

    /// Waits for member `id`'s process to exit by itself (a removed member stops); answers whether it exited
    /// cleanly.
    pub async fn exited(&mut self, id: u64) -> bool {
        let member = self.member(id);
        let status = super::eventually(&format!("member {id} to exit"), PATIENCE, || {
            let status = member
                .proc
                .as_mut()
                .and_then(|p| p.child.try_wait().ok().flatten());
            async move { status }
        })
        .await;
        member.proc = None;
        status.success()
    }

    fn member(&mut self, id: u64) -> &mut Member {
        self.members.get_mut(&id).expect("a member of this cluster")
    }

    /// Starts (or restarts, on its data directory) member `id`.
    pub fn start_member(&mut self, id: u64) {
        let initial = self.initial.clone();
        let member = self.member(id);
        assert!(member.proc.is_none(), "member {id} is running already");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .expect("member log");
        member.starts += 1;
        let mut marker = log.try_clone().expect("log handle");
        use std::io::Write;
        let _ = writeln!(marker, "===== fault test: start #{} =====", member.starts);
        let formation = if member.joined {
            vec!["--join"]
        } else {
            vec!["--members", initial.as_str()]
        };
        let child = navarch()
            .args(["store", "--id", &id.to_string()])
            .args(formation)
            .args(["--cluster", CLUSTER, "--nats", &member.proxy.url()])
            // Writes proposed together share a log entry: smaller than the defaults (10,000 and 5,000) so the
            // leader purges past a member that is down for the catch-up test's writes.
            .args([
                "--snapshot-count",
                "1000",
                "--snapshot-catchup-entries",
                "500",
            ])
            .arg("--data-dir")
            .arg(&member.data_dir)
            .env("RUST_LOG", MEMBER_LOG)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start navarch store");
        member.proc = Some(Proc {
            child,
            name: format!("store member {id}"),
        });
    }

    /// `kill -9` member `id` and reaps it.
    pub fn kill(&mut self, id: u64) {
        let mut proc = self.member(id).proc.take().expect("a running member");
        proc.child.kill().expect("kill -9");
        proc.child.wait().expect("reap");
    }

    /// `kill -9` every running member at once (signals first, then reaping).
    pub fn kill_all(&mut self) {
        let mut procs: Vec<Proc> = self
            .members
            .values_mut()
            .filter_map(|m| m.proc.take())
            .collect();
        for proc in &mut procs {
            proc.child.kill().expect("kill -9");
        }
        for proc in &mut procs {
            proc.child.wait().expect("reap");
        }
    }

    /// Deletes the data directory of member `id` (stopped): its disk is lost.
    pub fn wipe(&mut self, id: u64) {
        assert!(!self.is_running(id), "member {id} must be stopped");
        let dir = self.member(id).data_dir.clone();
        std::fs::remove_dir_all(&dir).expect("remove the data directory");
    }

    /// Whether member `id`'s process is running.
    pub fn is_running(&self, id: u64) -> bool {
        self.members.get(&id).is_some_and(|m| m.proc.is_some())
    }

    /// Cuts member `id` off the majority: its connection is dropped and it reconnects to a second nats-server,
    /// where only clients on [`Cluster::minority_url`] reach it and no other member does.
    pub fn partition(&mut self, id: u64) {
        let minority = self.minority.get_or_insert_with(Nats::start).addr;
        self.member(id).proxy.route_to(Some(minority));
    }

    /// Connects member `id` back to the majority's server.
    pub fn heal(&mut self, id: u64) {
        let majority = self.nats.addr;
        self.member(id).proxy.route_to(Some(majority));
    }

    /// The URL of the minority's server (after a [`Cluster::partition`]).
    pub fn minority_url(&self) -> Option<String> {
        self.minority.as_ref().map(|n| n.url.clone())
    }

    /// Member `id`'s own view, asked on its Raft subject over `bus` (so it answers itself, not the queue group).
    pub async fn status_on(bus: &Bus, id: u64) -> Option<StatusResponse> {
        let message = RaftMessage::Forward(StoreRequest::Status);
        let reply: RaftReply = bus
            .request_encoded(&bus.subjects().raft(id), &message, Duration::from_secs(2))
            .await
            .ok()?;
        match reply {
            RaftReply::Forward(Ok(navarch_bus::store::StoreResponse::Status(status))) => {
                Some(status)
            }
            _ => None,
        }
    }

    /// Member `id`'s own view, on the majority's server.
    pub async fn status(&self, id: u64) -> Option<StatusResponse> {
        Self::status_on(&self.bus, id).await
    }

    /// Waits until the running members reachable on the majority's server agree on a leader, that leader is one
    /// of them, and a majority of the cluster agrees; returns it.
    pub async fn leader(&self) -> u64 {
        let quorum = self.voters.len() / 2 + 1;
        let ids: Vec<u64> = self.ids();
        super::eventually("a leader known to a majority", PATIENCE, || {
            let ids = ids.clone();
            async move {
                let mut views = BTreeMap::new();
                for id in ids.iter().filter(|id| self.is_running(**id)) {
                    if let Some(status) = self.status(*id).await {
                        views.insert(*id, status.leader);
                    }
                }
                let (&leader, _) = views.iter().find(|(id, leader)| *id == *leader)?;
                let agree = views.values().filter(|l| **l == leader).count();
                (agree >= quorum).then_some(leader)
            }
        })
        .await
    }

    /// Waits until member `id` has applied everything the leader had applied when this was called; returns that
    /// revision.
    pub async fn caught_up(&self, id: u64) -> i64 {
        let leader = self.leader().await;
        let target = super::eventually("the leader's status", PATIENCE, || async move {
            self.status(leader).await.map(|s| s.header.revision)
        })
        .await;
        super::eventually(
            &format!("member {id} to reach revision {target}"),
            PATIENCE,
            || async move {
                let mine = self.status(id).await?.header.revision;
                (mine >= target).then_some(target)
            },
        )
        .await
    }

    /// The part of member `id`'s log written since its last start.
    pub fn log_since_start(&self, id: u64) -> String {
        let log = self.log(id);
        match log.rfind("===== fault test: start #") {
            Some(i) => log[i..].to_string(),
            None => log,
        }
    }

    /// The log of member `id` so far (every start of it, in order).
    pub fn log(&self, id: u64) -> String {
        self.members
            .get(&id)
            .and_then(|m| std::fs::read_to_string(&m.log).ok())
            .unwrap_or_default()
    }

    /// Keeps the members' logs for a failed test to look at: copies them out of the temp dir and answers where.
    pub fn keep_logs(&self) -> PathBuf {
        let keep = std::env::temp_dir().join(format!(
            "navarch-faults-{}",
            self.dir
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let _ = std::fs::create_dir_all(&keep);
        for member in self.members.values() {
            let _ = std::fs::copy(&member.log, keep.join(format!("member-{}.log", member.id)));
        }
        keep
    }
}

impl Drop for Cluster {
    /// A test that panics (a failed check, a wait that gave up) keeps the members' logs, and says where.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("members' logs kept in {}", self.keep_logs().display());
        }
    }
}
