//! A pod's volumes on the node: each under `<pod dir>/volumes/<name>` (emptyDir: a directory; configMap and secret:
//! their files, swapped in atomically as the kubelet's AtomicWriter does, so a reader never sees half an update),
//! or the host's own path (hostPath); and where each container mounts them.
//!
//! A configMap or secret volume is a directory holding `..<timestamp>/` with the files, a `..data` symlink to it
//! and, per top-level name, a symlink `<name>` -> `..data/<name>`. An update writes a new `..<timestamp>/`, points
//! `..data_tmp` at it and renames that over `..data` (one atomic step), then fixes the top-level links and removes
//! the old directory. emptyDir with `medium: Memory` is a directory too (no tmpfs; its size is not limited), and
//! secret volumes are files on the agent's disk, not a tmpfs.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::{Container, Pod, Volume};

use super::config::{self, ConfigError, Sources, VolumeFile};
use crate::runtime::Mount;

/// The link to the current set of files.
const DATA_LINK: &str = "..data";
/// The link renamed over [`DATA_LINK`].
const DATA_TMP: &str = "..data_tmp";

/// Where volume `name` of the pod whose directory is `pod_dir` lives (emptyDir, configMap, secret).
pub fn volume_dir(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir.join("volumes").join(name)
}

/// Sets up every volume of `pod` (creating emptyDirs, checking or creating hostPaths per `type`, writing configMap
/// and secret files) and returns each volume's host path by name.
pub fn prepare(
    pod_dir: &Path,
    pod: &Pod,
    sources: &Sources,
) -> Result<HashMap<String, PathBuf>, ConfigError> {
    let mut paths = HashMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let path = prepare_one(pod_dir, pod, v, sources)?;
        paths.insert(v.name.clone(), path);
    }
    Ok(paths)
}

fn prepare_one(
    pod_dir: &Path,
    pod: &Pod,
    v: &Volume,
    sources: &Sources,
) -> Result<PathBuf, ConfigError> {
    let io_error = |what: &str, path: &Path, e: io::Error| {
        ConfigError(format!(
            "volume {}: cannot {what} {}: {e}",
            v.name,
            path.display()
        ))
    };
    if let Some(host) = &v.host_path {
        let path = PathBuf::from(&host.path);
        check_host_path(&path, host.type_.as_deref().unwrap_or_default())
            .map_err(|e| ConfigError(format!("volume {}: {e}", v.name)))?;
        return Ok(path);
    }
    let dir = volume_dir(pod_dir, &v.name);
    if v.empty_dir.is_some() {
        std::fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, e))?;
        return Ok(dir);
    }
    match config::volume_files(pod, v, sources) {
        Some(files) => {
            write_atomic(&dir, &files?).map_err(|e| io_error("write", &dir, e))?;
            Ok(dir)
        }
        None => Err(ConfigError(format!(
            "volume {}: only emptyDir, configMap, secret and hostPath volumes are supported",
            v.name
        ))),
    }
}

/// Checks `path` against a hostPath `type`, creating it for the `...OrCreate` types.
fn check_host_path(path: &Path, type_: &str) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(path);
    let is = |f: &dyn Fn(&std::fs::Metadata) -> bool| meta.as_ref().is_ok_and(f);
    let ok = match type_ {
        "" => true,
        "DirectoryOrCreate" => {
            if !is(&|m| m.is_dir()) {
                std::fs::create_dir_all(path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            }
            true
        }
        "FileOrCreate" => {
            if meta.is_err() {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            }
            std::fs::metadata(path).is_ok_and(|m| m.is_file())
        }
        "Directory" => is(&|m| m.is_dir()),
        "File" => is(&|m| m.is_file()),
        "Socket" => is(&|m| m.file_type().is_socket()),
        "CharDevice" => is(&|m| m.file_type().is_char_device()),
        "BlockDevice" => is(&|m| m.file_type().is_block_device()),
        other => return Err(format!("unknown hostPath type {other:?}")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "hostPath type check failed: {} is not a {}",
            path.display(),
            type_.trim_end_matches("OrCreate")
        ))
    }
}

/// Rewrites the configMap and secret volumes of `pod` that exist already, when their objects changed; returns the
/// names of the volumes updated. A volume whose object cannot be resolved now is left as it is.
pub fn refresh(pod_dir: &Path, pod: &Pod, sources: &Sources) -> Vec<String> {
    let mut updated = Vec::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let dir = volume_dir(pod_dir, &v.name);
        if !dir.join(DATA_LINK).exists() {
            continue;
        }
        if let Some(Ok(files)) = config::volume_files(pod, v, sources) {
            match write_atomic(&dir, &files) {
                Ok(true) => updated.push(v.name.clone()),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(volume = %v.name, dir = %dir.display(), error = %e, "cannot update volume")
                }
            }
        }
    }
    updated
}

/// Where container `c` sees the pod's volumes (`volumeMounts`, with `subPath` and `readOnly`), given each volume's
/// host path.
pub fn mounts_for(
    c: &Container,
    paths: &HashMap<String, PathBuf>,
) -> Result<Vec<Mount>, ConfigError> {
    let mut mounts = Vec::new();
    for vm in c.volume_mounts.iter().flatten() {
        let Some(path) = paths.get(&vm.name) else {
            return Err(ConfigError(format!(
                "cannot find volume {:?} to mount into container {:?}",
                vm.name, c.name
            )));
        };
        let source = match vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            None => path.clone(),
            Some(sub) if config::is_safe_relative(sub) => path.join(sub),
            Some(sub) => {
                return Err(ConfigError(format!(
                    "invalid subPath {sub:?} of volume {:?}: must be a relative path without '..'",
                    vm.name
                )))
            }
        };
        mounts.push(Mount {
            source,
            target: PathBuf::from(&vm.mount_path),
            read_only: vm.read_only == Some(true),
        });
    }
    Ok(mounts)
}

/// Creates the `subPath` directories container `c` mounts from the pod's emptyDir and hostPath volumes when they do
/// not exist yet, as the kubelet does (configMap and secret volumes hold only their files).
pub fn create_sub_paths(
    pod: &Pod,
    c: &Container,
    paths: &HashMap<String, PathBuf>,
) -> Result<(), ConfigError> {
    let volumes: Vec<&Volume> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .collect();
    for vm in c.volume_mounts.iter().flatten() {
        let Some(sub) = vm
            .sub_path
            .as_deref()
            .filter(|s| config::is_safe_relative(s))
        else {
            continue;
        };
        let plain = volumes
            .iter()
            .any(|v| v.name == vm.name && (v.empty_dir.is_some() || v.host_path.is_some()));
        let Some(path) = paths.get(&vm.name).filter(|_| plain).map(|p| p.join(sub)) else {
            continue;
        };
        if std::fs::symlink_metadata(&path).is_err() {
            std::fs::create_dir_all(&path).map_err(|e| {
                ConfigError(format!(
                    "volume {}: cannot create subPath {}: {e}",
                    vm.name,
                    path.display()
                ))
            })?;
        }
    }
    Ok(())
}

/// Makes `dir` hold exactly `files` (see the module docs); returns whether anything changed.
pub fn write_atomic(dir: &Path, files: &[VolumeFile]) -> io::Result<bool> {
    // A container start and the periodic resync may write the same volume at once; each would remove the other's
    // fresh directory. Writes are small and rare, so one at a time in the whole agent.
    static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::create_dir_all(dir)?;
    let mut wanted: Vec<VolumeFile> = files.to_vec();
    wanted.sort_by(|a, b| a.path.cmp(&b.path));
    let data = dir.join(DATA_LINK);
    if data.exists() && current_files(&data)? == wanted {
        return Ok(false);
    }
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "..{}_{}",
        crate::now().format("%Y_%m_%d_%H_%M_%S%.9f"),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    );
    let fresh = dir.join(&name);
    std::fs::create_dir(&fresh)?;
    for f in &wanted {
        let path = fresh.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &f.data)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode))?;
    }
    let tmp = dir.join(DATA_TMP);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::os::unix::fs::symlink(&name, &tmp)?;
    std::fs::rename(&tmp, &data)?;
    let tops: std::collections::BTreeSet<&str> = wanted
        .iter()
        .filter_map(|f| f.path.split('/').next())
        .collect();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_LINK).join(top), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if entry_name.starts_with("..") {
            if entry_name != DATA_LINK && entry_name != name {
                std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path))?;
            }
        } else if !tops.contains(entry_name.as_str()) {
            std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir_all(&path))?;
        }
    }
    Ok(true)
}

/// The files under `root` (following the `..data` link), sorted by path.
fn current_files(root: &Path) -> io::Result<Vec<VolumeFile>> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let rel = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push((entry.path(), format!("{rel}/")));
            } else {
                out.push(VolumeFile {
                    path: rel,
                    data: std::fs::read(entry.path())?,
                    mode: meta.permissions().mode() & 0o777,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &str) -> VolumeFile {
        VolumeFile {
            path: path.into(),
            data: data.as_bytes().to_vec(),
            mode: 0o644,
        }
    }

    #[test]
    fn updates_swap_the_whole_set_and_drop_stale_names() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("v");
        assert!(write_atomic(&dir, &[file("a", "1"), file("sub/b", "2")]).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        assert!(!write_atomic(&dir, &[file("sub/b", "2"), file("a", "1")]).unwrap());
        assert!(write_atomic(&dir, &[file("a", "3")]).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "3");
        assert!(std::fs::symlink_metadata(dir.join("sub")).is_err());
        let hidden: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".."))
            .collect();
        assert_eq!(hidden.len(), 2, "{hidden:?}"); // ..data and one timestamped directory
        let mode = std::fs::metadata(dir.join("a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn mounts_resolve_sub_paths_and_refuse_escapes() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "volumeMounts": [
                {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true},
                {"name": "cfg", "mountPath": "/etc/one", "subPath": "one.txt"}
            ]
        }))
        .unwrap();
        let paths = HashMap::from([("cfg".to_string(), PathBuf::from("/v/cfg"))]);
        let mounts = mounts_for(&c, &paths).unwrap();
        assert_eq!(
            mounts,
            vec![
                Mount {
                    source: "/v/cfg".into(),
                    target: "/etc/cfg".into(),
                    read_only: true
                },
                Mount {
                    source: "/v/cfg/one.txt".into(),
                    target: "/etc/one".into(),
                    read_only: false
                },
            ]
        );
        let mut bad = c.clone();
        bad.volume_mounts.as_mut().unwrap()[1].sub_path = Some("../x".into());
        assert!(mounts_for(&bad, &paths).is_err());
        assert!(mounts_for(&c, &HashMap::new()).is_err());
    }

    #[test]
    fn sub_paths_of_empty_dirs_are_created_but_not_of_config_maps() {
        let tmp = tempfile::tempdir().unwrap();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "volumeMounts": [
                {"name": "scratch", "mountPath": "/a", "subPath": "x/y"},
                {"name": "cfg", "mountPath": "/b", "subPath": "missing-key"}
            ]}], "volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "m"}}]}
        }))
        .unwrap();
        let paths = HashMap::from([
            ("scratch".to_string(), tmp.path().join("scratch")),
            ("cfg".to_string(), tmp.path().join("cfg")),
        ]);
        let c = &pod.spec.as_ref().unwrap().containers[0];
        create_sub_paths(&pod, c, &paths).unwrap();
        assert!(tmp.path().join("scratch/x/y").is_dir());
        assert!(!tmp.path().join("cfg").exists());
    }

    #[test]
    fn host_path_types_are_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("made");
        assert!(check_host_path(&d, "Directory").is_err());
        assert!(check_host_path(&d, "DirectoryOrCreate").is_ok());
        assert!(d.is_dir());
        assert!(check_host_path(&d, "File").is_err());
        let f = tmp.path().join("f");
        assert!(check_host_path(&f, "FileOrCreate").is_ok());
        assert!(check_host_path(&f, "File").is_ok());
        assert!(check_host_path(&f, "Weird").is_err());
    }
}
