//! `etcdctl check perf --load=s` (60 s of puts from 50 clients, etcdctl's fixed duration) against one member: the
//! API holds up under etcd's own load check. Its verdict and figures are printed; the test fails on errors, not on
//! speed (speed is for the benchmarks).

#[path = "util/etcdctl.rs"]
mod etcdctl;
mod util;

use std::time::Duration;

use etcdctl::Etcdctl;
use navarch_bus::Bus;
use navarch_store::Shutdown;

#[test]
fn etcdctl_check_perf_small_load() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("etcd-perf").await?;
        let (member, address) = etcdctl::start_member(&bus, dir.path(), 1, &[1]).await?;
        let etcdctl = Etcdctl::new(&[address]);

        let run = etcdctl
            .run_with(
                &["check", "perf", "--load=s"],
                b"",
                Duration::from_secs(100),
            )
            .await?;
        // Its progress bar goes to the same output: keep the verdicts.
        let verdicts: Vec<&str> = run
            .stdout
            .lines()
            .filter(|l| l.contains("PASS") || l.contains("FAIL"))
            .collect();
        println!(
            "etcdctl check perf --load=s:\n{}\n{}",
            verdicts.join("\n"),
            run.stderr
        );
        // It reports each criterion as PASS or FAIL; errors from the API would show as "Error".
        for criterion in ["Throughput", "Slowest request", "Stddev"] {
            assert!(
                run.stdout.contains(criterion),
                "no {criterion} verdict: {run:?}"
            );
        }
        assert!(!run.stderr.contains("Error"), "{run:?}");
        // It cleans up after itself: its prefix is empty again.
        assert_eq!(
            etcdctl
                .ok(&["get", "/etcdctl-check-perf/", "--prefix", "--keys-only"])
                .await?,
            ""
        );

        member.send(Shutdown).await??;
        Ok(())
    })
}
