//! Writes the kubeconfig that points kubectl at a gateway, and reads back what a client needs from one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;

/// What a client needs besides the address: the CA that signed the API's serving certificate, and the bearer
/// token it sends, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The cluster CA, PEM (`certificate-authority-data`).
    pub ca_pem: Vec<u8>,
    /// A bearer token (`users[].user.token`), when the API wants one.
    pub token: Option<String>,
}

/// A kubeconfig for the API at `https://addr` of cluster `cluster`, trusting `credentials.ca_pem`.
pub fn render(cluster: &str, addr: SocketAddr, credentials: &Credentials) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(&credentials.ca_pem);
    // A JSON string is a YAML scalar too, so any token is quoted safely. Without a token, kubectl would prompt for
    // a user name on an https server when the user has no credentials at all (client-go's `canIdentifyUser`); a
    // user name stops that. It only adds a Basic header with an empty password, which the API ignores, as
    // kube-apiserver does since it dropped basic authentication.
    let user = match &credentials.token {
        Some(token) => format!("\n    token: {}", serde_json::Value::from(token.as_str())),
        None => "\n    username: navarch-admin".into(),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: navarch-{cluster}
  cluster:
    server: https://{addr}
    certificate-authority-data: {ca}
users:
- name: navarch-admin
  user:{user}
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

/// Writes the kubeconfig to `path`, creating its directory. The file is mode 0600: it may hold a token.
pub fn write(
    path: &Path,
    cluster: &str,
    addr: SocketAddr,
    credentials: &Credentials,
) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An older kubeconfig may have been readable by others; `mode` only applies to new files.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(render(cluster, addr, credentials).as_bytes())
}

/// What a client of the API takes from a kubeconfig's current context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The server URL, without a trailing slash.
    pub server: String,
    /// The CA to trust (from `certificate-authority-data` or the `certificate-authority` file); None: the
    /// kubeconfig names none.
    pub ca_pem: Option<Vec<u8>>,
    /// The bearer token, if the user has one.
    pub token: Option<String>,
}

/// The server, CA and token of the current context in the kubeconfig at `path` (the first of a `KUBECONFIG`-style
/// list).
pub fn read(path: &Path) -> anyhow::Result<Access> {
    let first = path
        .to_str()
        .and_then(|p| p.split(':').find(|p| !p.is_empty()))
        .map_or_else(|| path.to_path_buf(), PathBuf::from);
    let text = std::fs::read_to_string(&first)
        .with_context(|| format!("reading the kubeconfig {}", first.display()))?;
    let config: serde_json::Value = serde_norway::from_str(&text)
        .with_context(|| format!("the kubeconfig {} is not YAML", first.display()))?;
    let context = current(&config)
        .with_context(|| format!("the kubeconfig {} names no server", first.display()))?;
    let server = server_of(&config)
        .with_context(|| format!("the kubeconfig {} names no server", first.display()))?;
    let cluster = &context.cluster["cluster"];
    let ca_pem = if let Some(data) = cluster["certificate-authority-data"].as_str() {
        Some(
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .with_context(|| {
                    format!(
                        "certificate-authority-data in the kubeconfig {} is not base64",
                        first.display()
                    )
                })?,
        )
    } else if let Some(file) = cluster["certificate-authority"].as_str() {
        // kubectl reads a relative path from the kubeconfig's own directory.
        let file = first
            .parent()
            .map_or_else(|| PathBuf::from(file), |dir| dir.join(file));
        Some(
            std::fs::read(&file)
                .with_context(|| format!("reading the CA file {}", file.display()))?,
        )
    } else {
        None
    };
    let token = context
        .user
        .and_then(|user| user["user"]["token"].as_str())
        .map(str::to_string);
    Ok(Access {
        server,
        ca_pem,
        token,
    })
}

/// The current context's cluster and user entries.
struct Current<'a> {
    cluster: &'a serde_json::Value,
    user: Option<&'a serde_json::Value>,
}

/// The current context's entries, or the only cluster's when no context is current.
fn current(config: &serde_json::Value) -> Option<Current<'_>> {
    let clusters = config["clusters"].as_array()?;
    match config["current-context"].as_str().filter(|c| !c.is_empty()) {
        Some(current) => {
            let context = config["contexts"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == current)?;
            let name = context["context"]["cluster"].as_str()?;
            let user = context["context"]["user"].as_str().and_then(|user| {
                config["users"]
                    .as_array()?
                    .iter()
                    .find(|u| u["name"] == user)
            });
            Some(Current {
                cluster: clusters.iter().find(|c| c["name"] == name)?,
                user,
            })
        }
        None if clusters.len() == 1 => Some(Current {
            cluster: clusters.first()?,
            user: None,
        }),
        None => None,
    }
}

/// The current context's cluster's server, or the only cluster's when no context is current.
fn server_of(config: &serde_json::Value) -> Option<String> {
    Some(
        current(config)?.cluster["cluster"]["server"]
            .as_str()?
            .trim_end_matches('/')
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(token: Option<&str>) -> Credentials {
        Credentials {
            ca_pem: b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_vec(),
            token: token.map(str::to_string),
        }
    }

    #[test]
    fn the_server_of_a_written_kubeconfig_reads_back() {
        let addr: SocketAddr = "127.0.0.1:6443".parse().unwrap();
        let config: serde_json::Value =
            serde_norway::from_str(&render("default", addr, &credentials(None))).unwrap();
        assert_eq!(
            server_of(&config).as_deref(),
            Some("https://127.0.0.1:6443")
        );
        assert_eq!(server_of(&serde_json::json!({"clusters": []})), None);
        assert_eq!(server_of(&serde_json::json!("nonsense")), None);
    }

    #[test]
    fn the_ca_and_token_of_a_written_kubeconfig_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kube").join("config");
        let addr: SocketAddr = "[::1]:6443".parse().unwrap();
        let odd = "abc.def\"': #x";
        write(&path, "c1", addr, &credentials(Some(odd))).unwrap();
        let access = read(&path).unwrap();
        assert_eq!(
            access,
            Access {
                server: "https://[::1]:6443".into(),
                ca_pem: Some(credentials(None).ca_pem),
                token: Some(odd.into()),
            }
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        write(&path, "c1", addr, &credentials(None)).unwrap();
        assert_eq!(read(&path).unwrap().token, None);
    }

    #[test]
    fn a_ca_file_is_read_relative_to_the_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), b"PEM").unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "clusters:\n- name: a\n  cluster:\n    server: https://h:1/\n    certificate-authority: ca.crt\n\
             users:\n- name: u\n  user:\n    token: t0k\n\
             contexts:\n- name: x\n  context:\n    cluster: a\n    user: u\ncurrent-context: x\n",
        )
        .unwrap();
        let access = read(&path).unwrap();
        assert_eq!(access.server, "https://h:1");
        assert_eq!(access.ca_pem.as_deref(), Some(&b"PEM"[..]));
        assert_eq!(access.token.as_deref(), Some("t0k"));

        std::fs::write(
            &path,
            "clusters:\n- name: a\n  cluster:\n    server: https://h:1\n    certificate-authority-data: '%%%'\n",
        )
        .unwrap();
        assert!(read(&path).is_err(), "bad base64 is an error");
    }
}
