//! Helpers for the etcd API tests: members serving the etcd API on free ports, and the real `etcdctl` (v3 API) as a
//! child process against them.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use actix::Addr;
use anyhow::Context;
use navarch_bus::Bus;
use navarch_store::{EtcdAddress, StoreMember};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Starts member `id` of `members` in `dir`, serving the etcd API on a free loopback port.
pub async fn start_member(
    bus: &Bus,
    dir: &Path,
    id: u64,
    members: &[u64],
) -> anyhow::Result<(Addr<StoreMember>, SocketAddr)> {
    let mut config = crate::util::config(dir, id, members);
    config.etcd.listen = Some(([127, 0, 0, 1], 0).into());
    config.etcd.progress_notify_interval = Duration::from_millis(500);
    let member = StoreMember::start(bus.clone(), config).await?;
    let address = member
        .send(EtcdAddress)
        .await?
        .context("the member serves no etcd API")?;
    Ok((member, address))
}

/// What one `etcdctl` run left.
#[derive(Debug)]
pub struct Run {
    /// Whether it exited 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// `etcdctl` against one or more endpoints.
#[derive(Debug, Clone)]
pub struct Etcdctl {
    endpoints: String,
}

impl Etcdctl {
    /// `etcdctl --endpoints=<addresses>`.
    pub fn new(addresses: &[SocketAddr]) -> Self {
        let endpoints = addresses
            .iter()
            .map(|a| format!("http://{a}"))
            .collect::<Vec<_>>()
            .join(",");
        Self { endpoints }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("etcdctl");
        command
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints))
            .arg("--dial-timeout=5s")
            .arg("--command-timeout=20s")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs `etcdctl args...` with `input` on its standard input; gives up after `limit`.
    pub async fn run_with(
        &self,
        args: &[&str],
        input: &[u8],
        limit: Duration,
    ) -> anyhow::Result<Run> {
        let mut child = self.command(args).spawn().context("starting etcdctl")?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input).await?;
        }
        let output = tokio::time::timeout(limit, child.wait_with_output())
            .await
            .with_context(|| format!("etcdctl {args:?} did not finish within {limit:?}"))??;
        Ok(Run {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs `etcdctl args...` with no input, for at most 30 s.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<Run> {
        self.run_with(args, b"", Duration::from_secs(30)).await
    }

    /// Runs `etcdctl args...`, which must succeed; its standard output.
    pub async fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let run = self.run(args).await?;
        anyhow::ensure!(
            run.success,
            "etcdctl {args:?} failed: {}{}",
            run.stdout,
            run.stderr
        );
        Ok(run.stdout)
    }

    /// Runs `etcdctl args...`, which must fail; its standard error.
    pub async fn fails(&self, args: &[&str]) -> anyhow::Result<String> {
        let run = self.run(args).await?;
        anyhow::ensure!(!run.success, "etcdctl {args:?} succeeded: {}", run.stdout);
        Ok(run.stderr)
    }

    /// Starts `etcdctl args...` (a watch) and reads its output line by line.
    pub fn spawn(&self, args: &[&str]) -> anyhow::Result<Streaming> {
        let mut child = self.command(args).spawn().context("starting etcdctl")?;
        let stdout = child.stdout.take().context("etcdctl stdout")?;
        Ok(Streaming {
            lines: BufReader::new(stdout).lines(),
            child,
        })
    }
}

/// A running `etcdctl` whose output is read as it comes; killed when dropped.
pub struct Streaming {
    lines: Lines<BufReader<ChildStdout>>,
    child: Child,
}

impl Streaming {
    /// The next `n` lines, waiting up to 10 s for them.
    pub async fn lines(&mut self, n: usize) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let line = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
                .await
                .with_context(|| format!("waiting for etcdctl output; got {out:?}"))??;
            match line {
                Some(line) => out.push(line),
                None => anyhow::bail!("etcdctl ended after {out:?}"),
            }
        }
        Ok(out)
    }

    /// Waits up to 10 s for the process to end; its exit success and its standard error.
    pub async fn finish(mut self) -> anyhow::Result<(bool, String)> {
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = tokio::time::timeout(Duration::from_secs(10), pipe.read_to_string(&mut stderr))
                .await;
        }
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .context("etcdctl did not end")??;
        Ok((status.success(), stderr))
    }
}

/// A nats-server on a free loopback port, stopped when dropped.
pub struct NatsServer {
    child: Child,
    /// Its URL.
    pub url: String,
}

impl NatsServer {
    /// Starts one and waits until it accepts connections.
    pub async fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("nats-server must be installed (.ci/run installs it)")?;
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(Self {
                    child,
                    url: format!("nats://127.0.0.1:{port}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::bail!("nats-server did not listen on port {port}")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
