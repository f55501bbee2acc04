//! `etcdctl check perf`: run against a cluster, its verdict lines picked out of the progress bar.

use std::process::Command;
use std::time::{Duration, Instant};

/// What `etcdctl check perf` said.
pub struct CheckPerf {
    /// Its verdict lines (PASS/FAIL/Error), in order.
    pub lines: Vec<String>,
    pub throughput: Option<u64>,
    pub slowest: Option<String>,
    pub stddev: Option<String>,
    pub verdict: String,
    pub took: Duration,
}

/// Runs `etcdctl check perf --load=l` against `endpoints` (about a minute) and reads its verdict.
pub fn check_perf(endpoints: &[String]) -> CheckPerf {
    let started = Instant::now();
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .args(["check", "perf", "--load=l"])
        .output()
        .expect("etcdctl (apt-get install -y etcd-client) must be installed");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The progress bar redraws with carriage returns; the verdicts are whole lines.
    let lines: Vec<String> = text
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| {
            ["PASS", "FAIL", "Slowest", "Stddev", "Error"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(String::from)
        .collect();
    let last_word = |what: &str| {
        lines
            .iter()
            .find(|l| l.contains(what))
            .and_then(|l| l.split_whitespace().last())
            .map(String::from)
    };
    let throughput = lines
        .iter()
        .find(|l| l.contains("Throughput"))
        .and_then(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "writes/s")?;
            words.get(at.checked_sub(1)?)?.parse().ok()
        });
    let verdict = lines
        .iter()
        .rev()
        .find(|l| *l == "PASS" || *l == "FAIL")
        .cloned()
        .unwrap_or_else(|| format!("no verdict ({})", out.status));
    CheckPerf {
        throughput,
        slowest: last_word("Slowest request"),
        stddev: last_word("Stddev"),
        verdict,
        lines,
        took: started.elapsed(),
    }
}
