//! What the process runtime keeps on disk about each running container, so that an agent restarted on the same node
//! finds its containers again: one JSON record per container under `<data_dir>/containers/`, written when the
//! container starts and removed once its exit was seen; and how a recorded process is recognized (its pid and its
//! start time, so that a pid reused by another process is not taken for the container).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ContainerId, ContainerSpec, Limits};

/// The directory under the data dir that holds the records.
pub const RECORDS_DIR: &str = "containers";

/// How often an adopted process (not our child: its exit cannot be waited for) is checked for being gone.
pub const ADOPTED_POLL: Duration = Duration::from_millis(200);

/// One running container, as kept on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The pod's uid.
    pub pod_uid: String,
    /// The container's name.
    pub container: String,
    /// Which run.
    pub attempt: u32,
    /// The main process (and its process group).
    pub pid: u32,
    /// The process's start time in clock ticks after boot (`/proc/<pid>/stat` field 22).
    pub start_time: u64,
    /// The pod's namespace.
    pub pod_namespace: String,
    /// The pod's name.
    pub pod_name: String,
    /// The image as the pod names it.
    pub image: String,
    /// `command`.
    pub command: Vec<String>,
    /// `args`.
    pub args: Vec<String>,
    /// The environment it was started with (`exec` runs commands in the same one).
    pub env: Vec<(String, String)>,
    /// Its working directory.
    pub working_dir: Option<PathBuf>,
    /// Its memory limit in bytes.
    pub memory_bytes: Option<u64>,
    /// Its CPU limit in millicores.
    pub cpu_millis: Option<u64>,
    /// Its volume mounts (`exec` sees the same ones).
    #[serde(default)]
    pub mounts: Vec<super::Mount>,
}

impl Record {
    /// The record of `spec` running as `pid`, which started at `start_time`.
    pub fn of(spec: &ContainerSpec, pid: u32, start_time: u64) -> Self {
        Self {
            pod_uid: spec.id.pod_uid.clone(),
            container: spec.id.container.clone(),
            attempt: spec.id.attempt,
            pid,
            start_time,
            pod_namespace: spec.pod_namespace.clone(),
            pod_name: spec.pod_name.clone(),
            image: spec.image.clone(),
            command: spec.command.clone(),
            args: spec.args.clone(),
            env: spec.env.clone(),
            working_dir: spec.working_dir.clone(),
            memory_bytes: spec.limits.memory_bytes,
            cpu_millis: spec.limits.cpu_millis,
            mounts: spec.mounts.clone(),
        }
    }

    /// The container's id.
    pub fn id(&self) -> ContainerId {
        ContainerId {
            pod_uid: self.pod_uid.clone(),
            container: self.container.clone(),
            attempt: self.attempt,
        }
    }

    /// The spec the container was started with.
    pub fn spec(&self) -> ContainerSpec {
        ContainerSpec {
            id: self.id(),
            pod_namespace: self.pod_namespace.clone(),
            pod_name: self.pod_name.clone(),
            image: self.image.clone(),
            command: self.command.clone(),
            args: self.args.clone(),
            env: self.env.clone(),
            working_dir: self.working_dir.clone(),
            limits: Limits {
                memory_bytes: self.memory_bytes,
                cpu_millis: self.cpu_millis,
            },
            mounts: self.mounts.clone(),
            // The process runtime reads no images.
            pull_policy: super::PullPolicy::default(),
        }
    }
}

/// Where the record of `id` lives; None for an id that cannot name a file (a `/` or a leading `.` in it).
pub fn record_path(data_dir: &Path, id: &ContainerId) -> Option<PathBuf> {
    let name = id.to_string();
    if name.contains('/') || name.starts_with('.') {
        return None;
    }
    Some(data_dir.join(RECORDS_DIR).join(format!("{name}.json")))
}

/// Writes `record` atomically (a temporary file renamed over the record): a crash leaves the old record or the new
/// one, never half of one.
pub fn save(data_dir: &Path, record: &Record) -> std::io::Result<()> {
    let Some(path) = record_path(data_dir, &record.id()) else {
        return Err(std::io::Error::other(format!(
            "container id {} cannot name a file",
            record.id()
        )));
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let body = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, &path)
}

/// Removes the record of `id`; a missing one is fine.
pub fn forget(data_dir: &Path, id: &ContainerId) {
    let Some(path) = record_path(data_dir, id) else {
        return;
    };
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove container record")
        }
    }
}

/// Every readable record under `data_dir`, in id order; unreadable ones are logged and removed (they name nothing
/// that could be adopted).
pub fn load_all(data_dir: &Path) -> Vec<Record> {
    let dir = data_dir.join(RECORDS_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut records = Vec::new();
    for path in entries.flatten().map(|e| e.path()) {
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            let _ = std::fs::remove_file(&path); // a temporary file a crash left behind
            continue;
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()))
        {
            Ok(record) if record_path(data_dir, &record.id()).as_ref() == Some(&path) => {
                records.push(record)
            }
            Ok(_) => {
                tracing::warn!(path = %path.display(), "container record under another name; removing it");
                let _ = std::fs::remove_file(&path);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable container record; removing it");
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    records.sort_by_key(Record::id);
    records
}

/// The start time (`/proc/<pid>/stat` field 22) of a live process; None when it is gone or a zombie (a zombie has
/// exited: whoever reaps it, the container is over).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// Field 22 of a `/proc/<pid>/stat` line, unless the state (field 3) says zombie or dead.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces and parentheses: split after the last ')'.
    let (_, after) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    if matches!(fields.first(), Some(&("Z" | "X" | "x"))) {
        return None;
    }
    // `fields[0]` is field 3, so field 22 is `fields[19]`.
    fields.get(19)?.parse().ok()
}

/// Whether the recorded process still runs: same pid, same start time.
pub fn is_alive(record: &Record) -> bool {
    start_time(record.pid) == Some(record.start_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            id: ContainerId {
                pod_uid: "u-1".into(),
                container: "main".into(),
                attempt: 2,
            },
            pod_namespace: "demo".into(),
            pod_name: "web-1".into(),
            image: "busybox".into(),
            command: vec!["sleep".into()],
            args: vec!["60".into()],
            env: vec![("A".into(), "1".into())],
            working_dir: Some("/tmp".into()),
            limits: Limits {
                memory_bytes: Some(1 << 20),
                cpu_millis: None,
            },
            mounts: vec![super::super::Mount {
                source: "/var/lib/navarch/v".into(),
                target: "/etc/config".into(),
                read_only: true,
            }],
            pull_policy: Default::default(),
        }
    }

    #[test]
    fn start_time_is_field_22_and_zombies_have_none() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_start_time(line), Some(98765));
        let zombie = line.replace(") S ", ") Z ");
        assert_eq!(parse_start_time(&zombie), None);
        assert_eq!(parse_start_time("garbage"), None);
        assert_eq!(parse_start_time("1 (x) S 1 2"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let me = std::process::id();
        let Some(started) = start_time(me) else {
            panic!("no start time for this process");
        };
        let mut record = Record::of(&spec(), me, started);
        assert!(is_alive(&record));
        record.start_time += 1;
        assert!(!is_alive(&record), "a reused pid must not pass");
    }

    #[test]
    fn records_round_trip_and_are_forgotten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let record = Record::of(&spec(), 7, 11);
        save(dir.path(), &record).expect("save");
        assert_eq!(load_all(dir.path()), vec![record.clone()]);
        assert_eq!(record.spec(), spec());
        forget(dir.path(), &record.id());
        assert!(load_all(dir.path()).is_empty());
        forget(dir.path(), &record.id()); // twice is fine
    }

    #[test]
    fn broken_and_misnamed_records_are_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let records = dir.path().join(RECORDS_DIR);
        std::fs::create_dir_all(&records).expect("dir");
        std::fs::write(records.join("x.json"), b"{not json").expect("write");
        let body = serde_json::to_vec(&Record::of(&spec(), 7, 11)).expect("encode");
        std::fs::write(records.join("other.json"), body).expect("write");
        std::fs::write(records.join("a.json.tmp"), b"half").expect("write");
        assert!(load_all(dir.path()).is_empty());
        assert_eq!(std::fs::read_dir(&records).expect("dir").count(), 0);
    }

    #[test]
    fn ids_that_cannot_name_a_file_get_no_record() {
        let id = ContainerId {
            pod_uid: "../x".into(),
            container: "main".into(),
            attempt: 0,
        };
        assert_eq!(record_path(Path::new("/d"), &id), None);
    }
}
