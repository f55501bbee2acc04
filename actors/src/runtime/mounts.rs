//! Volumes at their `mountPath`s for the process runtime: each container starts in its own private mount namespace
//! (`unshare --mount --propagation private`) where a small shell bind-mounts every volume at its path, so nothing
//! ever changes the host's mount table or tree.
//!
//! A `mountPath` that does not exist on the host cannot be created there. Its nearest existing ancestor `A` is
//! shadowed instead, inside the container's namespace only: `A` is first bind-mounted (recursively) onto a staging
//! directory under the pod's directory, a tmpfs is mounted over `A`, and every entry of `A` is put back on the tmpfs
//! (directories and files as bind mounts of the originals, so they stay the host's own and writable as before,
//! symlinks as copies); the missing directories are then made on the tmpfs. The container sees `A` as on the host
//! plus the new path. Refused, with a message in the container's log and exit code 125: an ancestor `/` (a tmpfs
//! over the root would not be seen without `chroot`), and an ancestor holding the staging directory itself.

use std::path::{Component, Path, PathBuf};

/// A directory or file made visible inside a container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    /// What is mounted: a directory (or file) on the host.
    pub source: PathBuf,
    /// Where the container sees it (absolute).
    pub target: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
}

/// The shell that mounts the volumes inside the new mount namespace, then `exec`s the rest of its arguments.
/// Arguments: the staging directory, then `source target ro|rw` per mount, then `--` and the command.
const MOUNT_SCRIPT: &str = r#"stage=$1; shift; n=0
fail() { echo "navarch: $*" >&2; exit 125; }
shadow() {
  a=$1; s=$stage/$n; n=$((n+1))
  case "$stage/" in "$a"/*) fail "cannot create a mount point under $a: it holds the agent's data directory";; esac
  mkdir -p "$s" && mount --rbind "$a" "$s" && mount -t tmpfs -o mode=0755 navarch-shadow "$a" || fail "cannot shadow $a"
  for e in "$s"/* "$s"/.[!.]* "$s"/..?*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    t=$a/${e##*/}
    if [ -L "$e" ]; then ln -s "$(readlink "$e")" "$t"
    elif [ -d "$e" ]; then mkdir "$t" && mount --rbind "$e" "$t"
    else : > "$t" && mount --bind "$e" "$t"; fi || fail "cannot keep $t"
  done
}
while [ "$1" != -- ]; do
  [ $# -ge 4 ] || fail "bad mount arguments"
  src=$1 dst=$2 ro=$3; shift 3
  if [ ! -e "$dst" ] && [ ! -L "$dst" ]; then
    a=$(dirname "$dst"); while [ ! -e "$a" ]; do a=$(dirname "$a"); done
    [ "$a" = / ] && fail "cannot create $dst: the process runtime does not add top-level directories (use a path under an existing directory)"
    shadow "$a"
    if [ -d "$src" ]; then mkdir -p "$dst"; else mkdir -p "$(dirname "$dst")" && : > "$dst"; fi || fail "cannot create $dst"
  fi
  mount --bind "$src" "$dst" || fail "cannot mount $src at $dst"
  if [ "$ro" = ro ]; then mount -o remount,bind,ro "$dst" || fail "cannot make $dst read-only"; fi
done
shift
exec "$@""#;

/// Where `unshare` is looked for.
const UNSHARE: &str = "unshare";

/// The arguments that run what follows them in a private mount namespace holding `mounts` (staging shadowed
/// ancestors under `stage`): `unshare ... sh -c <script> ... --`. Empty when there is nothing to mount.
pub fn wrapper(mounts: &[Mount], stage: &Path, shell: &str) -> Vec<String> {
    if mounts.is_empty() {
        return Vec::new();
    }
    let mut args: Vec<String> = vec![
        UNSHARE.into(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        shell.into(),
        "-c".into(),
        MOUNT_SCRIPT.into(),
        "navarch-mount".into(),
        stage.display().to_string(),
    ];
    for m in mounts {
        args.push(m.source.display().to_string());
        args.push(normalize(&m.target).display().to_string());
        args.push(if m.read_only { "ro" } else { "rw" }.into());
    }
    args.push("--".into());
    args
}

/// `path` made absolute (relative to `/`) without `.` or `..` parts (a `..` at the root stays at the root), so the
/// shell's ancestor walk ends at `/`.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_made_absolute_and_plain() {
        assert_eq!(normalize(Path::new("etc/x/")), PathBuf::from("/etc/x"));
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../..")), PathBuf::from("/"));
    }

    #[test]
    fn the_wrapper_lists_each_mount_then_ends_with_a_separator() {
        assert!(wrapper(&[], Path::new("/s"), "/bin/sh").is_empty());
        let mounts = [
            Mount {
                source: "/v/a".into(),
                target: "/etc/a".into(),
                read_only: true,
            },
            Mount {
                source: "/v/b".into(),
                target: "data/../b".into(),
                read_only: false,
            },
        ];
        let args = wrapper(&mounts, Path::new("/s"), "/bin/sh");
        assert_eq!(
            args[..4],
            ["unshare", "--mount", "--propagation", "private"]
        );
        assert_eq!(
            args[7..],
            [
                "navarch-mount",
                "/s",
                "/v/a",
                "/etc/a",
                "ro",
                "/v/b",
                "/b",
                "rw",
                "--"
            ]
        );
    }
}

#[cfg(test)]
#[path = "mounts_tests.rs"]
mod runtime_tests;
