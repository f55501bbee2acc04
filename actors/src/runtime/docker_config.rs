//! What the Docker runtime creates, decided without the engine: container names and labels, the container and
//! sandbox configurations, and whether to pull an image.

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{ContainerCreateBody, HostConfig};

use crate::runtime::{ContainerId, ContainerSpec, PullPolicy};

/// The image the pod sandboxes run (`sleep` from busybox; `deploy/build-busybox-image.sh` builds it).
pub const DEFAULT_SANDBOX_IMAGE: &str = "navarch/busybox:latest";

/// Set on every container this runtime creates.
pub const MANAGED_LABEL: &str = "io.navarch.managed";
/// The data directory of the agent that created the container.
pub const DATA_DIR_LABEL: &str = "io.navarch.data-dir";
/// The pod's uid.
pub const POD_UID_LABEL: &str = "io.navarch.pod.uid";
/// The pod's namespace.
pub const POD_NAMESPACE_LABEL: &str = "io.navarch.pod.namespace";
/// The pod's name.
pub const POD_NAME_LABEL: &str = "io.navarch.pod.name";
/// The container's name in the pod (absent on sandboxes).
pub const CONTAINER_LABEL: &str = "io.navarch.container.name";
/// The container's attempt.
pub const ATTEMPT_LABEL: &str = "io.navarch.container.attempt";

/// What the sandbox runs: as long as a 32-bit `sleep` goes (about 68 years).
pub const SANDBOX_COMMAND: [&str; 2] = ["sleep", "2147483647"];

/// What to do about a container's image before creating it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageAction {
    /// Use the image on the node.
    UseLocal,
    /// Pull it; `fall_back` says whether the node's copy may be used if the pull fails.
    Pull {
        /// A copy is on the node.
        fall_back: bool,
    },
    /// Fail with `ErrImageNeverPull`.
    NeverPull,
}

/// Whether to pull, given the policy and whether the image is on the node. With `Always` and a copy on the node a
/// failed pull falls back to that copy: nodes without a registry still run their loaded images.
pub fn image_action(policy: PullPolicy, present: bool) -> ImageAction {
    match (policy, present) {
        (PullPolicy::Always, present) => ImageAction::Pull { fall_back: present },
        (_, true) => ImageAction::UseLocal,
        (PullPolicy::IfNotPresent, false) => ImageAction::Pull { fall_back: false },
        (PullPolicy::Never, false) => ImageAction::NeverPull,
    }
}

/// The Docker container name of a run: `navarch_<pod uid>_<container>_<attempt>`.
pub fn container_name(id: &ContainerId) -> String {
    format!("navarch_{}_{}_{}", id.pod_uid, id.container, id.attempt)
}

/// The Docker container name of a pod's sandbox: `navarch-<pod uid>-sandbox`.
pub fn sandbox_name(pod_uid: &str) -> String {
    format!("navarch-{pod_uid}-sandbox")
}

/// What to create for `spec`, joined to the sandbox container `sandbox`. As in Kubernetes, `command` replaces
/// the image's ENTRYPOINT and `args` its CMD (and a `command` alone drops the CMD: the engine does that when the
/// entrypoint is set).
pub fn container_config(
    spec: &ContainerSpec,
    sandbox: &str,
    data_dir: &Path,
) -> ContainerCreateBody {
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let mut labels = pod_labels(data_dir, &spec.id.pod_uid);
    labels.insert(POD_NAMESPACE_LABEL.into(), spec.pod_namespace.clone());
    labels.insert(POD_NAME_LABEL.into(), spec.pod_name.clone());
    labels.insert(CONTAINER_LABEL.into(), spec.id.container.clone());
    labels.insert(ATTEMPT_LABEL.into(), spec.id.attempt.to_string());
    let memory = spec.limits.memory_bytes.and_then(|b| i64::try_from(b).ok());
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: non_empty(&spec.command),
        cmd: non_empty(&spec.args),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: spec
            .working_dir
            .as_ref()
            .map(|d| d.to_string_lossy().into_owned()),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some(format!("container:{sandbox}")),
            ipc_mode: Some(format!("container:{sandbox}")),
            memory,
            // No swap: over the limit means an OOM kill, as the kubelet sets it.
            memory_swap: memory,
            nano_cpus: spec
                .limits
                .cpu_millis
                .and_then(|m| i64::try_from(m.saturating_mul(1_000_000)).ok()),
            // Volumes (directories the agent keeps for the pod) bind-mounted at their mountPaths.
            binds: (!spec.mounts.is_empty()).then(|| spec.mounts.iter().map(bind).collect()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The labels every container of a pod carries.
pub(super) fn pod_labels(data_dir: &Path, pod_uid: &str) -> HashMap<String, String> {
    HashMap::from([
        (MANAGED_LABEL.to_string(), "true".to_string()),
        (
            DATA_DIR_LABEL.to_string(),
            data_dir.to_string_lossy().into_owned(),
        ),
        (POD_UID_LABEL.to_string(), pod_uid.to_string()),
    ])
}

/// The pod's sandbox: `image` running [`SANDBOX_COMMAND`], its IPC namespace shareable with the pod's containers.
pub fn sandbox_config(image: &str, data_dir: &Path, pod_uid: &str) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(SANDBOX_COMMAND.iter().map(|s| s.to_string()).collect()),
        labels: Some(pod_labels(data_dir, pod_uid)),
        host_config: Some(HostConfig {
            ipc_mode: Some("shareable".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Docker's `source:target[:ro]` for a volume mount.
fn bind(mount: &crate::runtime::Mount) -> String {
    let ro = if mount.read_only { ":ro" } else { "" };
    format!("{}:{}{ro}", mount.source.display(), mount.target.display())
}
