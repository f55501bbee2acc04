//! Runs `nft`: loads a ruleset from text (`nft -f -`, one atomic transaction), and removes proxy tables that agents
//! killed without a clean stop left behind.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::rules::{self, TABLE_PREFIX};

/// Feeds `text` to `nft -f -`; the error is what nft said.
pub async fn load(nft: &Path, text: &str) -> Result<(), String> {
    let mut child = tokio::process::Command::new(nft)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", nft.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|e| format!("cannot write to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

async fn output(nft: &Path, args: &[&str]) -> Option<String> {
    let out = tokio::process::Command::new(nft)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Removes every proxy table (other than `own`) whose owning agent process is gone: an agent killed by SIGKILL
/// cannot remove its table, and its DNATs would otherwise keep catching the host's traffic to cluster IPs. A table
/// of a live agent, or one whose owner cannot be read, is left alone.
pub async fn remove_orphaned_tables(nft: &Path, own: &str) {
    let Some(tables) = output(nft, &["list", "tables", "ip"]).await else {
        return;
    };
    for line in tables.lines() {
        let Some(name) = line.trim().strip_prefix("table ip ") else {
            continue;
        };
        if !name.starts_with(TABLE_PREFIX) || name == own {
            continue;
        }
        let Some(listing) = output(nft, &["list", "table", "ip", name]).await else {
            continue;
        };
        let Some(pid) = rules::owner_pid(&listing) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        match load(nft, &rules::removal(name)).await {
            Ok(()) => tracing::info!(
                table = name,
                pid,
                "removed the proxy table of an agent that is gone"
            ),
            Err(e) => tracing::warn!(table = name, error = %e, "cannot remove a stale proxy table"),
        }
    }
}
