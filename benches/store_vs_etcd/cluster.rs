//! The clusters the bench compares: member processes on loopback, their readiness, their stop and what they logged.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use navarch_store::etcd::proto::etcdserverpb::{self as pb, maintenance_client::MaintenanceClient};
use tonic::transport::{Channel, Endpoint};

use crate::util::{self, Proc, PATIENCE};
use crate::{CHANNELS_COUNT, REQUEST_TIMEOUT};

/// One cluster's member processes (stopped when dropped, even on panic), their logs and data in a temp dir.
pub struct Cluster {
    pub label: &'static str,
    /// The members' etcd API addresses (host:port), in member order.
    pub endpoints: Vec<String>,
    // Dropped in declaration order: members, then their nats-server, then the directory.
    members: Vec<Proc>,
    nats: Option<Proc>,
    logs: Vec<PathBuf>,
    dir: tempfile::TempDir,
}

/// `n` distinct free loopback ports (all bound at once, so none repeats).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local address").port())
        .collect()
}

/// Starts `command` with stdout and stderr going to `log`.
fn spawn_logged(name: &str, mut command: Command, log: &PathBuf) -> Proc {
    let file = File::create(log).expect("create log file");
    let child = command
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone log file"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("start {name}: {e} (apt-get install -y etcd-server etcd-client nats-server)")
        });
    Proc {
        child,
        name: name.to_string(),
    }
}

impl Cluster {
    /// Three etcd members on free loopback ports, default settings (fsync on every commit).
    pub fn etcd() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports = free_ports(6);
        let peer = |i: usize| format!("http://127.0.0.1:{}", ports[2 * i + 1]);
        let initial: Vec<String> = (0..3).map(|i| format!("e{}={}", i + 1, peer(i))).collect();
        let initial = initial.join(",");
        let mut cluster = Self::empty("etcd", dir);
        for i in 0..3 {
            let name = format!("e{}", i + 1);
            let client = format!("http://127.0.0.1:{}", ports[2 * i]);
            let data = cluster.dir.path().join(&name);
            let mut command = Command::new("etcd");
            command
                .args(["--name", &name, "--data-dir"])
                .arg(&data)
                .args(["--listen-client-urls", &client])
                .args(["--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer(i)])
                .args(["--initial-advertise-peer-urls", &peer(i)])
                .args(["--initial-cluster", &initial])
                .args(["--initial-cluster-state", "new"]);
            cluster.add(&name, command, format!("127.0.0.1:{}", ports[2 * i]));
        }
        cluster
    }

    /// One nats-server and three `navarch store` members (the release binary this bench was built with).
    pub fn navarch() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (nats, url) = util::start_nats();
        let mut cluster = Self::empty("Navarch", dir);
        cluster.nats = Some(nats);
        for (id, port) in (1..=3).zip(free_ports(3)) {
            let name = format!("store-{id}");
            let address = format!("127.0.0.1:{port}");
            let mut command = util::navarch();
            command
                .args(["store", "--id", &id.to_string(), "--data-dir"])
                .arg(cluster.dir.path().join(&name))
                .args(["--nats", &url, "--members", "1,2,3"])
                .args(["--etcd-listen", &address])
                // Plain log lines, so the warnings can be found in them.
                .env("NO_COLOR", "1");
            cluster.add(&name, command, address);
        }
        cluster
    }

    fn empty(label: &'static str, dir: tempfile::TempDir) -> Self {
        Self {
            label,
            endpoints: Vec::new(),
            members: Vec::new(),
            nats: None,
            logs: Vec::new(),
            dir,
        }
    }

    fn add(&mut self, name: &str, command: Command, endpoint: String) {
        let log = self.dir.path().join(format!("{name}.log"));
        self.members.push(spawn_logged(name, command, &log));
        self.logs.push(log);
        self.endpoints.push(endpoint);
    }

    /// Waits until every member answers `Status` naming the same leader; returns the leader's index.
    pub async fn wait_ready(&mut self) -> usize {
        let deadline = Instant::now() + PATIENCE;
        loop {
            for (member, log) in self.members.iter_mut().zip(&self.logs) {
                if let Ok(Some(status)) = member.child.try_wait() {
                    let text = std::fs::read_to_string(log).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(20).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    panic!(
                        "{} member {} exited ({status}) before the cluster was ready; its log ends:\n{}",
                        self.label,
                        member.name,
                        tail.join("\n")
                    );
                }
            }
            if let Some(leader) = self.leader().await {
                return leader;
            }
            assert!(
                Instant::now() < deadline,
                "{} had no leader named by all members within {PATIENCE:?}",
                self.label
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The index of the member every member names as leader, if they agree.
    async fn leader(&self) -> Option<usize> {
        let mut answers = Vec::new();
        for endpoint in &self.endpoints {
            let channel = Endpoint::from_shared(format!("http://{endpoint}"))
                .ok()?
                .connect_timeout(Duration::from_secs(1))
                .timeout(Duration::from_secs(2))
                .connect()
                .await
                .ok()?;
            let status = MaintenanceClient::new(channel)
                .status(pb::StatusRequest {})
                .await
                .ok()?
                .into_inner();
            answers.push((status.header?.member_id, status.leader));
        }
        let leader = answers.first()?.1;
        if leader == 0 || answers.iter().any(|(_, l)| *l != leader) {
            return None;
        }
        answers.iter().position(|(id, _)| *id == leader)
    }

    /// `CHANNELS_COUNT` channels over the members round-robin, starting with a follower so that the 1-client steps
    /// of both clusters go through a follower (as two of three connections do).
    pub async fn channels(&self, leader: usize) -> Vec<Channel> {
        let n = self.endpoints.len();
        let mut channels = Vec::new();
        for i in 0..CHANNELS_COUNT {
            let endpoint = &self.endpoints[(leader + 1 + i) % n];
            let channel = Endpoint::from_shared(format!("http://{endpoint}"))
                .expect("endpoint URL")
                .connect_timeout(Duration::from_secs(5))
                .timeout(REQUEST_TIMEOUT)
                .connect()
                .await
                .unwrap_or_else(|e| panic!("connect to {} at {endpoint}: {e}", self.label));
            channels.push(channel);
        }
        channels
    }

    /// Stops the members, then reports what went wrong while they served: non-zero exits and the warnings and
    /// errors they logged before the stop (members complain about their stopping peers, which says nothing).
    pub fn stop(mut self) -> Vec<String> {
        let served: Vec<String> = self
            .logs
            .iter()
            .map(|log| std::fs::read_to_string(log).unwrap_or_default())
            .collect();
        let mut problems = Vec::new();
        for member in &mut self.members {
            let status = member.terminate();
            // etcd re-raises SIGTERM after its clean-up, so death by that signal is a clean stop too.
            if status.code().is_some_and(|c| c != 0) {
                problems.push(format!("{} exited with {status}", member.name));
            }
        }
        for (member, text) in self.members.iter().zip(&served) {
            problems.extend(summarize_warnings(&member.name, text));
        }
        problems
    }
}

/// Markers of a log line at warning level or worse: etcd 3.4's capnslog, zap JSON, tracing's format, a panic.
const WARNING_MARKS: [&str; 8] = [
    " W | ",
    " E | ",
    " C | ",
    " WARN ",
    " ERROR ",
    "\"level\":\"warn\"",
    "\"level\":\"error\"",
    "panicked at",
];

/// One line per kind of warning in `log`, most frequent first, each with a count and a full example.
fn summarize_warnings(member: &str, log: &str) -> Vec<String> {
    let mut kinds: Vec<(String, usize, &str)> = Vec::new();
    let mut total = 0;
    for line in log.lines() {
        let Some((at, mark)) = WARNING_MARKS
            .iter()
            .find_map(|m| line.find(m).map(|at| (at, m)))
        else {
            continue;
        };
        total += 1;
        // The words before the first figure, key or id name the kind; the rest varies from line to line.
        let kind: Vec<&str> = line[at + mark.len()..]
            .split_whitespace()
            .take_while(|w| !w.contains(|c: char| c.is_ascii_digit() || c == '"'))
            .take(5)
            .collect();
        let kind = kind.join(" ");
        match kinds.iter_mut().find(|(k, _, _)| *k == kind) {
            Some((_, count, _)) => *count += 1,
            None => kinds.push((kind, 1, line.trim())),
        }
    }
    if total == 0 {
        return Vec::new();
    }
    kinds.sort_by_key(|(_, count, _)| std::cmp::Reverse(*count));
    let mut lines = vec![format!(
        "{member}: {total} warning/error lines of {} kinds, e.g.:",
        kinds.len()
    )];
    lines.extend(
        kinds
            .iter()
            .take(4)
            .map(|(_, count, example)| format!("  {count} x {}", truncate(example, 220))),
    );
    lines
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}
