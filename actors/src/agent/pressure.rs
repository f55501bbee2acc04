//! Whether the node is short of memory or disk, by the kubelet's default hard eviction thresholds
//! (`memory.available<100Mi`, `nodefs.available<10%`) over `/proc/meminfo` and the file system of the agent's data
//! directory. The parsers and the decision are pure; [`Pressure::read`] reads the host.

use std::path::Path;

use k8s_openapi::api::core::v1::Taint;

/// `memory.available` below this is memory pressure (the kubelet's default hard eviction threshold); it is also
/// kept out of allocatable, as the kubelet does.
pub const MEMORY_EVICTION_BYTES: u64 = 100 * 1024 * 1024;
/// `nodefs.available` below this percentage of the file system is disk pressure (the kubelet's default).
pub const NODEFS_EVICTION_PERCENT: u64 = 10;

/// The taint a node under memory pressure carries.
pub const MEMORY_PRESSURE_TAINT: &str = "node.kubernetes.io/memory-pressure";
/// The taint a node under disk pressure carries.
pub const DISK_PRESSURE_TAINT: &str = "node.kubernetes.io/disk-pressure";

/// Free and total space of a file system, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// What an unprivileged writer can still use (`f_bavail`).
    pub available: u64,
    /// The file system's size.
    pub total: u64,
}

/// Which pressures the node is under. A fact that cannot be read counts as no pressure.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pressure {
    /// `memory.available` is under [`MEMORY_EVICTION_BYTES`].
    pub memory: bool,
    /// `nodefs.available` is under [`NODEFS_EVICTION_PERCENT`].
    pub disk: bool,
}

impl Pressure {
    /// Decides from `MemAvailable` (bytes) and the data directory's file system.
    pub fn of(memory_available: Option<u64>, disk: Option<DiskSpace>) -> Self {
        Self {
            memory: memory_available.is_some_and(|m| m < MEMORY_EVICTION_BYTES),
            disk: disk.is_some_and(|d| {
                d.total > 0
                    && u128::from(d.available) * 100
                        < u128::from(d.total) * u128::from(NODEFS_EVICTION_PERCENT)
            }),
        }
    }

    /// Reads this host's memory and the file system holding `data_dir`.
    pub fn read(data_dir: &Path) -> Self {
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| meminfo_bytes(&t, "MemAvailable"));
        let disk = nix::sys::statvfs::statvfs(data_dir)
            .ok()
            .map(|s| disk_space(s.blocks_available(), s.blocks(), s.fragment_size()));
        Self::of(memory, disk)
    }

    /// The NoSchedule taints the node carries while under these pressures (what Kubernetes' node lifecycle
    /// controller adds by `TaintNodesByCondition`).
    pub fn taints(&self) -> Vec<Taint> {
        [
            (self.memory, MEMORY_PRESSURE_TAINT),
            (self.disk, DISK_PRESSURE_TAINT),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, key)| Taint {
            key: key.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        })
        .collect()
    }
}

/// The space statvfs reports in `fragment_size` blocks, in bytes.
pub fn disk_space(blocks_available: u64, blocks: u64, fragment_size: u64) -> DiskSpace {
    DiskSpace {
        available: blocks_available.saturating_mul(fragment_size),
        total: blocks.saturating_mul(fragment_size),
    }
}

/// The field `key` of `/proc/meminfo`, in bytes.
pub fn meminfo_bytes(text: &str, key: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.split_once(':').is_some_and(|(k, _)| k == key))?;
    let mut parts = line.split_whitespace().skip(1);
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str =
        "MemTotal:       4000000 kB\nMemFree:          50000 kB\nMemAvailable:     90000 kB\n";

    #[test]
    fn meminfo_fields_are_read_in_bytes() {
        assert_eq!(meminfo_bytes(MEMINFO, "MemAvailable"), Some(90_000 * 1024));
        assert_eq!(meminfo_bytes(MEMINFO, "MemTotal"), Some(4_000_000 * 1024));
        assert_eq!(meminfo_bytes(MEMINFO, "Mem"), None);
        assert_eq!(meminfo_bytes("MemAvailable: many kB", "MemAvailable"), None);
        assert_eq!(meminfo_bytes("MemAvailable: 5 MB", "MemAvailable"), None);
    }

    #[test]
    fn memory_pressure_is_under_100mi_available() {
        let low = meminfo_bytes(MEMINFO, "MemAvailable");
        assert!(Pressure::of(low, None).memory);
        assert!(!Pressure::of(Some(MEMORY_EVICTION_BYTES), None).memory);
        assert!(Pressure::of(Some(MEMORY_EVICTION_BYTES - 1), None).memory);
        assert!(!Pressure::of(None, None).memory);
    }

    #[test]
    fn disk_pressure_is_under_10_percent_available() {
        let fs = |available, total| Some(disk_space(available, total, 4096));
        assert!(Pressure::of(None, fs(9, 100)).disk);
        assert!(!Pressure::of(None, fs(10, 100)).disk);
        assert!(!Pressure::of(None, fs(90, 100)).disk);
        assert!(!Pressure::of(None, fs(0, 0)).disk);
        assert!(!Pressure::of(None, None).disk);
        assert_eq!(disk_space(u64::MAX, u64::MAX, 4096).total, u64::MAX);
    }

    #[test]
    fn pressures_taint_the_node() {
        assert!(Pressure::default().taints().is_empty());
        let both = Pressure {
            memory: true,
            disk: true,
        }
        .taints();
        assert_eq!(both.len(), 2);
        assert_eq!(both[0].key, MEMORY_PRESSURE_TAINT);
        assert_eq!(both[1].key, DISK_PRESSURE_TAINT);
        assert!(both.iter().all(|t| t.effect == "NoSchedule"));
    }
}
