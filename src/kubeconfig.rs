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

/// The server URL of the current context in the kubeconfig at `path` (the first of a `KUBECONFIG`-style list).
pub fn server(path: &Path) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let first = path
        .to_str()
        .and_then(|p| p.split(':').find(|p| !p.is_empty()))
        .map_or_else(|| path.to_path_buf(), std::path::PathBuf::from);
    let text = std::fs::read_to_string(&first)
        .with_context(|| format!("reading the kubeconfig {}", first.display()))?;
    let config: serde_json::Value = serde_norway::from_str(&text)
        .with_context(|| format!("the kubeconfig {} is not YAML", first.display()))?;
    server_of(&config)
        .with_context(|| format!("the kubeconfig {} names no server", first.display()))
}

/// The current context's cluster's server, or the only cluster's when no context is current.
fn server_of(config: &serde_json::Value) -> Option<String> {
    let clusters = config["clusters"].as_array()?;
    let cluster = match config["current-context"].as_str().filter(|c| !c.is_empty()) {
        Some(current) => {
            let context = config["contexts"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == current)?;
            let name = context["context"]["cluster"].as_str()?;
            clusters.iter().find(|c| c["name"] == name)?
        }
        None if clusters.len() == 1 => clusters.first()?,
        None => return None,
    };
    Some(
        cluster["cluster"]["server"]
            .as_str()?
            .trim_end_matches('/')
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_of_a_written_kubeconfig_reads_back() {
        let addr: SocketAddr = "127.0.0.1:6443".parse().unwrap();
        let config: serde_json::Value = serde_norway::from_str(&render("default", addr)).unwrap();
        assert_eq!(server_of(&config).as_deref(), Some("http://127.0.0.1:6443"));
        assert_eq!(server_of(&serde_json::json!({"clusters": []})), None);
        assert_eq!(server_of(&serde_json::json!("nonsense")), None);
    }
}
