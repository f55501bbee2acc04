//! CPU and memory limits for the process runtime's containers: one cgroup per container (v2, or the v1 `memory`
//! and `cpu` hierarchies where the host has only those), and whether the kernel OOM-killed something in it.
//!
//! What to write where ([`Limits::files`]) and how to read the OOM counter ([`oom_kills`]) are pure; [`Cgroups`]
//! and [`ContainerCgroup`] do the file system work, which needs root.

use std::path::{Path, PathBuf};

/// The CFS period the CPU quota is a share of: 100 ms, the kernel's and the kubelet's default.
pub const CPU_PERIOD_US: u64 = 100_000;

/// The smallest CFS quota the kernel accepts (1 ms).
const CPU_MIN_QUOTA_US: u64 = 1_000;

/// Where cgroups are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The directory under each hierarchy holding Navarch's cgroups (`navarch/<pod uid>/<container>-<attempt>`).
pub const PARENT: &str = "navarch";

/// A container's resource limits (`resources.limits`); None: unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// `limits.memory`, in bytes.
    pub memory_bytes: Option<u64>,
    /// `limits.cpu`, in millicores.
    pub cpu_millis: Option<u64>,
}

/// Which cgroup version the host offers for memory and CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The unified hierarchy at the root (`cgroup.controllers` exists there).
    V2,
    /// One hierarchy per controller (`memory/`, `cpu/`).
    V1,
}

/// Which controller a file belongs to (on v2 they share one directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// Memory.
    Memory,
    /// CPU.
    Cpu,
}

impl Limits {
    /// The limits from the quantities of `resources.limits` (`memory`, `cpu`); a quantity that does not parse or
    /// is not positive sets no limit (the API validates them before they get here).
    pub fn from_quantities(memory: Option<&str>, cpu: Option<&str>) -> Self {
        let parse = |q: Option<&str>, f: fn(&navarch_bus::api::quantity::Quantity) -> i128| {
            q.and_then(|q| navarch_bus::api::quantity::Quantity::parse(q).ok())
                .map(|q| f(&q))
                .and_then(|v| u64::try_from(v).ok())
                .filter(|v| *v > 0)
        };
        Self {
            memory_bytes: parse(memory, |q| q.units()),
            cpu_millis: parse(cpu, |q| q.milli()),
        }
    }

    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.memory_bytes.is_some() || self.cpu_millis.is_some()
    }

    /// The files to write and their values, in order. Swap is off for a memory-limited container, so that going
    /// over the limit means an OOM kill rather than swapping (as the kubelet does).
    pub fn files(&self, version: Version) -> Vec<(Controller, &'static str, String)> {
        let mut files = Vec::new();
        if let Some(bytes) = self.memory_bytes {
            match version {
                Version::V1 => {
                    files.push((
                        Controller::Memory,
                        "memory.limit_in_bytes",
                        bytes.to_string(),
                    ));
                    files.push((Controller::Memory, "memory.swappiness", "0".into()));
                }
                Version::V2 => {
                    files.push((Controller::Memory, "memory.max", bytes.to_string()));
                    files.push((Controller::Memory, "memory.swap.max", "0".into()));
                }
            }
        }
        if let Some(millis) = self.cpu_millis {
            let quota = millis
                .saturating_mul(CPU_PERIOD_US)
                .div_ceil(1000)
                .max(CPU_MIN_QUOTA_US);
            match version {
                Version::V1 => {
                    files.push((
                        Controller::Cpu,
                        "cpu.cfs_period_us",
                        CPU_PERIOD_US.to_string(),
                    ));
                    files.push((Controller::Cpu, "cpu.cfs_quota_us", quota.to_string()));
                }
                Version::V2 => files.push((
                    Controller::Cpu,
                    "cpu.max",
                    format!("{quota} {CPU_PERIOD_US}"),
                )),
            }
        }
        files
    }
}

/// How many times the kernel OOM-killed a process of the cgroup: the `oom_kill` line of v1's `memory.oom_control`
/// or v2's `memory.events` (both are `key value` lines).
pub fn oom_kills(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == "oom_kill").then(|| value.trim().parse().ok())?
    })
}

/// The cgroup file that counts OOM kills.
fn oom_file(version: Version) -> &'static str {
    match version {
        Version::V1 => "memory.oom_control",
        Version::V2 => "memory.events",
    }
}

/// The host's cgroup hierarchies for memory and CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroups {
    version: Version,
    root: PathBuf,
}

impl Cgroups {
    /// What the host offers under [`CGROUP_ROOT`]: v2 if the root is the unified hierarchy, else v1 if the memory
    /// hierarchy is mounted; None without either.
    pub fn detect() -> Option<Self> {
        Self::detect_at(Path::new(CGROUP_ROOT))
    }

    fn detect_at(root: &Path) -> Option<Self> {
        let version = if root.join("cgroup.controllers").is_file() {
            Version::V2
        } else if root.join("memory").join("memory.limit_in_bytes").is_file() {
            Version::V1
        } else {
            return None;
        };
        Some(Self {
            version,
            root: root.to_path_buf(),
        })
    }

    /// The version in use.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The directory of `controller` for the container `name` of pod `pod_uid`.
    fn dir(&self, controller: Controller, pod_uid: &str, name: &str) -> PathBuf {
        let base = match (self.version, controller) {
            (Version::V2, _) => self.root.clone(),
            (Version::V1, Controller::Memory) => self.root.join("memory"),
            (Version::V1, Controller::Cpu) => self.root.join("cpu"),
        };
        base.join(PARENT).join(pod_uid).join(name)
    }

    /// Creates the container's cgroup(s) and writes its limits. `name` is unique per run of a container.
    pub fn create(
        &self,
        pod_uid: &str,
        name: &str,
        limits: &Limits,
    ) -> std::io::Result<ContainerCgroup> {
        let files = limits.files(self.version);
        let mut controllers: Vec<Controller> = Vec::new();
        for (c, _, _) in &files {
            if !controllers.contains(c) {
                controllers.push(*c);
            }
        }
        if self.version == Version::V2 {
            self.enable_v2_controllers(pod_uid)?;
        }
        let mut dirs: Vec<PathBuf> = Vec::new();
        for c in &controllers {
            let dir = self.dir(*c, pod_uid, name);
            if !dirs.contains(&dir) {
                std::fs::create_dir_all(&dir)?;
                dirs.push(dir);
            }
        }
        let cgroup = ContainerCgroup {
            version: self.version,
            dirs,
            memory: limits
                .memory_bytes
                .map(|_| self.dir(Controller::Memory, pod_uid, name)),
        };
        for (c, file, value) in &files {
            let path = self.dir(*c, pod_uid, name).join(file);
            match std::fs::write(&path, value) {
                Ok(()) => {}
                // Swap settings are missing where the kernel has no swap accounting; the limit still holds.
                Err(_) if file.contains("swap") => {}
                Err(e) => {
                    cgroup.remove();
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("{}: {e}", path.display()),
                    ));
                }
            }
        }
        Ok(cgroup)
    }

    /// On v2, a child gets memory and cpu files only if every ancestor delegates them (`cgroup.subtree_control`).
    fn enable_v2_controllers(&self, pod_uid: &str) -> std::io::Result<()> {
        let pod_dir = self.root.join(PARENT).join(pod_uid);
        std::fs::create_dir_all(&pod_dir)?;
        for dir in [self.root.clone(), self.root.join(PARENT), pod_dir] {
            std::fs::write(dir.join("cgroup.subtree_control"), "+memory +cpu")?;
        }
        Ok(())
    }

    /// Removes the pod's directories once its containers' are gone (best effort: a busy one stays).
    pub fn remove_pod(&self, pod_uid: &str) {
        let bases = match self.version {
            Version::V2 => vec![self.root.clone()],
            Version::V1 => vec![self.root.join("memory"), self.root.join("cpu")],
        };
        for base in bases {
            let _ = std::fs::remove_dir(base.join(PARENT).join(pod_uid));
        }
    }
}

/// One container's cgroup directories (one per controller on v1, one on v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerCgroup {
    version: Version,
    dirs: Vec<PathBuf>,
    memory: Option<PathBuf>,
}

impl ContainerCgroup {
    /// The `cgroup.procs` files the container's first process writes its pid to.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// How many processes of the container the kernel OOM-killed (0 without a memory limit).
    pub fn oom_kills(&self) -> u64 {
        self.memory
            .as_ref()
            .and_then(|dir| std::fs::read_to_string(dir.join(oom_file(self.version))).ok())
            .and_then(|text| oom_kills(&text))
            .unwrap_or(0)
    }

    /// The pids still in the container's cgroups (e.g. ones that left its process group).
    pub fn pids(&self) -> Vec<i32> {
        self.procs_files()
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect()
    }

    /// Removes the directories (they must hold no process any more); best effort.
    pub fn remove(&self) {
        for dir in &self.dirs {
            if let Err(e) = std::fs::remove_dir(dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(cgroup = %dir.display(), error = %e, "cannot remove container cgroup");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_come_from_kubernetes_quantities() {
        let l = Limits::from_quantities(Some("32Mi"), Some("500m"));
        assert_eq!(l.memory_bytes, Some(32 * 1024 * 1024));
        assert_eq!(l.cpu_millis, Some(500));
        let l = Limits::from_quantities(Some("1G"), Some("2"));
        assert_eq!(l.memory_bytes, Some(1_000_000_000));
        assert_eq!(l.cpu_millis, Some(2000));
        assert_eq!(Limits::from_quantities(None, None), Limits::default());
        assert!(!Limits::from_quantities(Some("lots"), Some("-1")).any());
        assert!(!Limits::from_quantities(Some("0"), None).any());
    }

    #[test]
    fn v1_files_set_the_memory_limit_and_the_cfs_quota() {
        let l = Limits {
            memory_bytes: Some(33_554_432),
            cpu_millis: Some(250),
        };
        assert_eq!(
            l.files(Version::V1),
            vec![
                (
                    Controller::Memory,
                    "memory.limit_in_bytes",
                    "33554432".to_string()
                ),
                (Controller::Memory, "memory.swappiness", "0".to_string()),
                (Controller::Cpu, "cpu.cfs_period_us", "100000".to_string()),
                (Controller::Cpu, "cpu.cfs_quota_us", "25000".to_string()),
            ]
        );
    }

    #[test]
    fn v2_files_and_the_smallest_quota() {
        let l = Limits {
            memory_bytes: None,
            cpu_millis: Some(1),
        };
        assert_eq!(
            l.files(Version::V2),
            vec![(Controller::Cpu, "cpu.max", "1000 100000".to_string())]
        );
        assert!(Limits::default().files(Version::V2).is_empty());
        let l = Limits {
            memory_bytes: Some(1 << 20),
            cpu_millis: None,
        };
        assert_eq!(
            l.files(Version::V2)[0],
            (Controller::Memory, "memory.max", "1048576".to_string())
        );
    }

    #[test]
    fn oom_kills_are_read_from_v1_and_v2_files() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(oom_kills(v1), Some(2));
        let v2 = "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(oom_kills(v2), Some(1));
        assert_eq!(oom_kills("oom_kill_disable 0\nunder_oom 0\n"), None);
        assert_eq!(oom_kills("oom_kill x\n"), None);
    }

    #[test]
    fn detection_reads_the_mounts() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Cgroups::detect_at(dir.path()), None);
        std::fs::create_dir(dir.path().join("memory")).unwrap();
        std::fs::write(dir.path().join("memory/memory.limit_in_bytes"), "").unwrap();
        assert_eq!(
            Cgroups::detect_at(dir.path()).map(|c| c.version()),
            Some(Version::V1)
        );
        std::fs::write(dir.path().join("cgroup.controllers"), "cpu memory").unwrap();
        assert_eq!(
            Cgroups::detect_at(dir.path()).map(|c| c.version()),
            Some(Version::V2)
        );
    }
}
