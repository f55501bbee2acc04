//! Writes the kubeconfig that points kubectl at a gateway.

use std::net::SocketAddr;
use std::path::Path;

/// A kubeconfig for the API at `addr` of cluster `cluster`. The API is plain HTTP until TLS and authentication
/// land (a later issue); the kubeconfig says so by its `http://` server URL.
pub fn render(cluster: &str, addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: navarch-{cluster}
  cluster:
    server: http://{addr}
users:
- name: navarch-admin
  user: {{}}
contexts:
- name: navarch-{cluster}
  context:
    cluster: navarch-{cluster}
    user: navarch-admin
    namespace: default
current-context: navarch-{cluster}
"
    )
}

/// Writes the kubeconfig to `path`, creating its directory.
pub fn write(path: &Path, cluster: &str, addr: SocketAddr) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, render(cluster, addr))
}
