//! Reads cumulative CPU time and memory of containers and of the node, from cgroups where a container has one and
//! from `/proc` otherwise: the raw counters the agent's sampler turns into rates (`agent/metrics.rs`).
//!
//! The parsers are pure; [`read_processes`], [`read_node`] and [`CgroupUsage::read`] touch the file system.
//! A process-runtime container is a process group (its main pid leads it), so without a cgroup its usage is the
//! sum over the group's processes: user + system time, including that of children they already reaped (so a
//! short-lived child's time is not lost when it exits), and resident memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::cgroup::{Version, CGROUP_ROOT, PARENT};

/// Clock ticks per second in `/proc` (`USER_HZ`): fixed at 100 by the kernel's ABI on every architecture Navarch
/// builds for, whatever `CONFIG_HZ` is.
pub const USER_HZ: u64 = 100;

/// The page size `/proc/<pid>/stat` counts resident memory in (4 KiB on x86-64 and most arm64 kernels).
pub const PAGE_BYTES: u64 = 4096;

/// Cumulative counters of a set of processes (or a cgroup) at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// CPU time used so far, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory working set now, in bytes.
    pub memory_bytes: u64,
}

/// What one line of `/proc/<pid>/stat` says about usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// The process's group.
    pub pgid: u32,
    /// utime + stime + cutime + cstime, in ticks.
    pub ticks: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may hold spaces and parentheses, so fields are counted
/// from its last `)`.
pub fn parse_proc_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) pgrp(5) ... utime(14) stime(15) cutime(16) cstime(17) ... rss(24).
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<i64>().ok());
    let ticks = [14, 15, 16, 17]
        .iter()
        .map(|n| field(*n).map(|v| u64::try_from(v).unwrap_or(0)))
        .sum::<Option<u64>>()?;
    Some(ProcStat {
        pgid: u32::try_from(field(5)?).ok()?,
        ticks,
        rss_pages: u64::try_from(field(24)?).unwrap_or(0),
    })
}

/// Busy CPU time of the whole machine from the first line of `/proc/stat`, in nanoseconds: every column but idle
/// and iowait (and guest time, already counted in user).
pub fn parse_node_cpu(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|i| v.get(*i).copied().unwrap_or(0))
        .sum();
    Some(ticks_to_ns(busy))
}

/// Memory in use from `/proc/meminfo`: MemTotal less MemAvailable, in bytes.
pub fn parse_node_memory(text: &str) -> Option<u64> {
    let kib = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    Some(
        kib("MemTotal:")?
            .saturating_sub(kib("MemAvailable:")?)
            .saturating_mul(1024),
    )
}

/// The value of `key` in a cgroup's `key value` file (`memory.stat`, `cpu.stat`).
pub fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// The working set as the kubelet computes it: usage less inactive file pages (which the kernel reclaims first).
pub fn working_set(usage: u64, memory_stat: &str, version: Version) -> u64 {
    let inactive = match version {
        Version::V1 => stat_value(memory_stat, "total_inactive_file"),
        Version::V2 => stat_value(memory_stat, "inactive_file"),
    };
    usage.saturating_sub(inactive.unwrap_or(0))
}

fn ticks_to_ns(ticks: u64) -> u64 {
    ticks.saturating_mul(1_000_000_000 / USER_HZ)
}

/// Sums `/proc/<pid>/stat` of every process per process group.
pub fn read_processes() -> HashMap<u32, Counters> {
    let mut groups: HashMap<u32, Counters> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return groups;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // A process may be gone between the listing and the read: it simply is not counted.
        let Some(stat) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|t| parse_proc_stat(&t))
        else {
            continue;
        };
        let group = groups.entry(stat.pgid).or_default();
        group.cpu_ns = group.cpu_ns.saturating_add(ticks_to_ns(stat.ticks));
        group.memory_bytes = group
            .memory_bytes
            .saturating_add(stat.rss_pages.saturating_mul(PAGE_BYTES));
    }
    groups
}

/// The node's busy CPU time and memory in use.
pub fn read_node() -> Option<Counters> {
    let cpu = parse_node_cpu(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let memory = parse_node_memory(&std::fs::read_to_string("/proc/meminfo").ok()?)?;
    Some(Counters {
        cpu_ns: cpu,
        memory_bytes: memory,
    })
}

/// Where a process-runtime container's cgroup counters are, when it has a cgroup (containers with limits, as
/// root): its memory cgroup on v1, its one directory on v2 (whose `cpu.stat` also counts CPU time; v1's `cpu`
/// hierarchy counts none, that is `cpuacct`'s, which the runtime does not use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupUsage {
    version: Version,
    memory_dir: PathBuf,
}

impl CgroupUsage {
    /// The cgroup of run `name` (`<container>-<attempt>`) of pod `pod_uid`, if the host has cgroups and it exists.
    pub fn find(pod_uid: &str, name: &str) -> Option<Self> {
        Self::find_at(Path::new(CGROUP_ROOT), pod_uid, name)
    }

    fn find_at(root: &Path, pod_uid: &str, name: &str) -> Option<Self> {
        let (version, base) = if root.join("cgroup.controllers").is_file() {
            (Version::V2, root.to_path_buf())
        } else {
            (Version::V1, root.join("memory"))
        };
        let memory_dir = base.join(PARENT).join(pod_uid).join(name);
        memory_dir.is_dir().then_some(Self {
            version,
            memory_dir,
        })
    }

    /// The working set, and on v2 the CPU time (None on v1: take it from the processes).
    pub fn read(&self) -> Option<(u64, Option<u64>)> {
        let read = |f: &str| std::fs::read_to_string(self.memory_dir.join(f)).ok();
        let usage_file = match self.version {
            Version::V1 => "memory.usage_in_bytes",
            Version::V2 => "memory.current",
        };
        let usage: u64 = read(usage_file)?.trim().parse().ok()?;
        let memory = working_set(
            usage,
            &read("memory.stat").unwrap_or_default(),
            self.version,
        );
        let cpu = match self.version {
            Version::V1 => None,
            Version::V2 => read("cpu.stat")
                .and_then(|t| stat_value(&t, "usage_usec"))
                .map(|us| us.saturating_mul(1000)),
        };
        Some((memory, cpu))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_fields_are_counted_after_the_name() {
        let line = "4242 (my (odd) cmd) R 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 10 5 20 0 1 0 \
                    12345 10000000 300 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = parse_proc_stat(line).unwrap();
        assert_eq!(
            stat,
            ProcStat {
                pgid: 4242,
                ticks: 315,
                rss_pages: 300
            }
        );
        assert_eq!(parse_proc_stat("garbage"), None);
        assert_eq!(parse_proc_stat("1 (x) R 1"), None);
    }

    #[test]
    fn node_cpu_counts_busy_columns_and_memory_is_total_less_available() {
        let stat = "cpu  100 20 30 5000 40 1 2 3 0 0\ncpu0 50 10 15 2500 20 0 1 1 0 0\n";
        assert_eq!(parse_node_cpu(stat), Some(156 * 10_000_000));
        let meminfo =
            "MemTotal:       16000000 kB\nMemFree:         1000 kB\nMemAvailable:   12000000 kB\n";
        assert_eq!(parse_node_memory(meminfo), Some(4_000_000 * 1024));
        assert_eq!(parse_node_memory("MemTotal: 5 kB\n"), None);
    }

    #[test]
    fn working_set_leaves_out_inactive_file_pages() {
        let v1 = "cache 100\nrss 50\ntotal_inactive_file 4096\ninactive_file 1\n";
        assert_eq!(working_set(10_000, v1, Version::V1), 5904);
        let v2 = "anon 10\nfile 20\ninactive_file 3000\n";
        assert_eq!(working_set(10_000, v2, Version::V2), 7000);
        assert_eq!(working_set(100, v2, Version::V2), 0);
        assert_eq!(
            stat_value("usage_usec 1234\nuser_usec 1\n", "usage_usec"),
            Some(1234)
        );
    }

    #[test]
    fn cgroups_are_found_and_read_on_v1_and_v2() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(CgroupUsage::find_at(dir.path(), "u1", "c-0"), None);
        let v1 = dir.path().join("memory/navarch/u1/c-0");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::write(v1.join("memory.usage_in_bytes"), "8192\n").unwrap();
        std::fs::write(v1.join("memory.stat"), "total_inactive_file 4096\n").unwrap();
        let found = CgroupUsage::find_at(dir.path(), "u1", "c-0").unwrap();
        assert_eq!(found.read(), Some((4096, None)));

        let v2root = tempfile::tempdir().unwrap();
        std::fs::write(v2root.path().join("cgroup.controllers"), "cpu memory").unwrap();
        let v2 = v2root.path().join("navarch/u1/c-0");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("memory.current"), "10000\n").unwrap();
        std::fs::write(v2.join("memory.stat"), "inactive_file 1000\n").unwrap();
        std::fs::write(v2.join("cpu.stat"), "usage_usec 5\nuser_usec 3\n").unwrap();
        let found = CgroupUsage::find_at(v2root.path(), "u1", "c-0").unwrap();
        assert_eq!(found.read(), Some((9000, Some(5000))));
    }

    #[test]
    fn this_process_is_measured() {
        let groups = read_processes();
        let me = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|t| parse_proc_stat(&t))
            .unwrap();
        assert!(groups.get(&me.pgid).is_some_and(|c| c.memory_bytes > 0));
        assert!(read_node().is_some_and(|n| n.cpu_ns > 0 && n.memory_bytes > 0));
    }
}
