//! TLS on the API port: the serving certificate, a generated cluster CA ([`ensure_pki`]) and the TLS listener.
//!
//! The generated files follow kube-apiserver's names (`ca.crt`, `apiserver.crt`, ...). Whether a serving certificate
//! on disk can be kept is decided by verifying it as a client would (rustls' WebPKI verifier, trusting only the CA,
//! for every name it must cover, at a time 30 days ahead): no X.509 parser is needed, and a certificate that the
//! current CA did not sign, that misses a name, or that expires soon is replaced.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// How long a client may take to finish the TLS handshake before its connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A serving certificate that expires sooner than this is replaced (kubeadm renews within 30 days too).
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Validity of a generated CA: 10 years, kubeadm's.
const CA_DAYS: i64 = 3650;
/// Validity of a generated serving certificate: 1 year, kubeadm's.
const SERVING_DAYS: i64 = 365;
/// Names every generated serving certificate covers besides the asked-for hosts: loopback, and the names in-cluster
/// clients use for the API (the `kubernetes` Service in `default`).
const ALWAYS_COVERED: [&str; 7] = [
    "localhost",
    "127.0.0.1",
    "::1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// Why TLS material cannot be read, generated or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file cannot be read. Retryable once the file is there and readable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A file or directory cannot be written. Retryable once the directory is writable.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// PEM text holds no certificate, or a malformed one. Not retryable: the file must be replaced.
    #[error("no valid certificate in the {what} PEM: {reason}")]
    Certificate {
        /// Which PEM ("serving certificate", "CA certificate").
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// PEM text holds no private key, or a malformed one. Not retryable: the file must be replaced.
    #[error("no valid private key in the {what} PEM: {reason}")]
    Key {
        /// Which PEM ("serving key", "CA key").
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the certificate and key together (e.g. the key is not the certificate's). Not retryable.
    #[error("the serving certificate and key cannot be used: {0}")]
    Rejected(#[source] rustls::Error),
    /// Only one of the CA's two files exists: generating a new CA would silently change what clients must
    /// trust. Not retryable: restore the missing file or remove both.
    #[error(
        "{present} exists but {missing} does not; restore it, or remove both to generate a new CA"
    )]
    HalfCa {
        /// The file found.
        present: PathBuf,
        /// The file missing.
        missing: PathBuf,
    },
    /// A host to cover is neither an IP address nor a valid DNS name. Not retryable.
    #[error("{0:?} is neither an IP address nor a DNS name a certificate can hold")]
    Host(String),
    /// Generating a key or certificate failed. Not retryable.
    #[error("generating TLS material failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A TLS result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The API's serving certificate: the chain (the serving certificate first) and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificate chain, PEM, serving certificate first (as kube-apiserver's `--tls-cert-file`).
    pub cert_chain_pem: Vec<u8>,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1), as kube-apiserver's `--tls-private-key-file`.
    pub key_pem: Vec<u8>,
    /// The files both came from (certificate, key): when set, the gateway reloads them when they change.
    pub files: Option<(PathBuf, PathBuf)>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field(
                "cert_chain_pem",
                &String::from_utf8_lossy(&self.cert_chain_pem),
            )
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl TlsConfig {
    /// Reads the certificate chain and key from PEM files and checks that they can serve.
    pub fn from_files(cert_file: &Path, key_file: &Path) -> Result<Self> {
        let config = Self {
            cert_chain_pem: read(cert_file)?,
            key_pem: read(key_file)?,
            files: Some((cert_file.to_path_buf(), key_file.to_path_buf())),
        };
        config.server_config()?;
        Ok(config)
    }

    /// The chain and key, parsed and checked to belong together.
    pub(crate) fn certified_key(
        &self,
        provider: &rustls::crypto::CryptoProvider,
    ) -> Result<rustls::sign::CertifiedKey> {
        let chain = certificates(&self.cert_chain_pem, "serving certificate")?;
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| Error::Key {
            what: "serving key",
            reason: e.to_string(),
        })?;
        rustls::sign::CertifiedKey::from_der(chain, key, provider).map_err(Error::Rejected)
    }

    /// The rustls server configuration: ring as the crypto provider (not the process default, so the gateway
    /// works whatever the binary installed), ALPN `h2` then `http/1.1` (client-go speaks HTTP/2 over TLS).
    pub fn server_config(&self) -> Result<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = self.certified_key(&provider)?;
        let resolver = crate::tls_reload::Reloading::new(key, self.files.clone(), provider.clone());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(Error::Rejected)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// What [`ensure_pki`] leaves in its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pki {
    /// The CA certificate, PEM: what clients trust (a kubeconfig's `certificate-authority-data`).
    pub ca_pem: Vec<u8>,
    /// The serving certificate (chain: itself) and key, signed by the CA.
    pub serving: TlsConfig,
    /// `ca.crt` in the directory.
    pub ca_file: PathBuf,
}

/// Makes sure `dir` holds a CA (`ca.crt`, `ca.key`) and a serving certificate it signed (`apiserver.crt`,
/// `apiserver.key`) valid for loopback, the in-cluster `kubernetes` names and `hosts` (IP addresses become IP
/// SANs, others DNS SANs). An existing CA is kept; the serving certificate is replaced when it does not cover a
/// name, was not signed by the CA, or expires within 30 days. Private keys are written mode 0600, `dir` 0700.
pub fn ensure_pki(dir: &Path, hosts: &[String]) -> Result<Pki> {
    let names = names_to_cover(hosts)?;
    create_private_dir(dir)?;
    let (ca_file, ca_key_file) = (dir.join("ca.crt"), dir.join("ca.key"));
    let (ca_pem, ca_key) = match (ca_file.exists(), ca_key_file.exists()) {
        (true, true) => {
            let ca_pem = read(&ca_file)?;
            certificates(&ca_pem, "CA certificate")?;
            let ca_key = key_pair(&read(&ca_key_file)?, "CA key")?;
            (ca_pem, ca_key)
        }
        (false, false) => {
            let key = KeyPair::generate()?;
            let mut params = ca_params();
            params.not_before = days_from_now(0) - time::Duration::hours(1);
            params.not_after = days_from_now(CA_DAYS);
            let pem = params.self_signed(&key)?.pem().into_bytes();
            write_private(&ca_key_file, key.serialize_pem().as_bytes())?;
            write_public(&ca_file, &pem)?;
            tracing::info!(path = %ca_file.display(), "generated the cluster CA");
            (pem, key)
        }
        (present, _) => {
            let (present, missing) = if present {
                (ca_file.clone(), ca_key_file.clone())
            } else {
                (ca_key_file.clone(), ca_file.clone())
            };
            return Err(Error::HalfCa { present, missing });
        }
    };

    let (cert_file, key_file) = (dir.join("apiserver.crt"), dir.join("apiserver.key"));
    if cert_file.exists() && key_file.exists() {
        if let Ok(serving) = TlsConfig::from_files(&cert_file, &key_file) {
            if covers(&ca_pem, &serving.cert_chain_pem, &names) {
                return Ok(Pki {
                    ca_pem,
                    serving,
                    ca_file,
                });
            }
        }
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "navarch-apiserver");
    params.subject_alt_names = names
        .iter()
        .map(|name| match name {
            ServerName::IpAddress(ip) => Ok(SanType::IpAddress(std::net::IpAddr::from(*ip))),
            other => Ok(SanType::DnsName(other.to_str().into_owned().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = days_from_now(0) - time::Duration::hours(1);
    params.not_after = days_from_now(SERVING_DAYS);
    // The CA's name and key identifier are what the serving certificate refers to; both follow from the CA's
    // parameters and key, so the CA certificate need not be parsed back.
    let issuer = Issuer::new(ca_params(), ca_key);
    let cert_pem = params.signed_by(&key, &issuer)?.pem().into_bytes();
    write_private(&key_file, key.serialize_pem().as_bytes())?;
    write_public(&cert_file, &cert_pem)?;
    tracing::info!(path = %cert_file.display(), "generated the API serving certificate");
    Ok(Pki {
        ca_pem,
        serving: TlsConfig {
            cert_chain_pem: cert_pem,
            key_pem: key.serialize_pem().into_bytes(),
            files: Some((cert_file.clone(), key_file.clone())),
        },
        ca_file,
    })
}

/// The generated CA's parameters, dates aside.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "navarch-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn days_from_now(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

/// The fixed names plus `hosts`, without repeats, each checked to be something a certificate can name.
fn names_to_cover(hosts: &[String]) -> Result<Vec<ServerName<'static>>> {
    let mut names: Vec<ServerName<'static>> = Vec::new();
    for host in ALWAYS_COVERED
        .iter()
        .copied()
        .chain(hosts.iter().map(String::as_str))
    {
        let name = ServerName::try_from(host.to_string()).map_err(|_| Error::Host(host.into()))?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// Whether a client trusting only `ca_pem` would accept `cert_pem` for every name, 30 days from now.
fn covers(ca_pem: &[u8], cert_pem: &[u8], names: &[ServerName<'static>]) -> bool {
    use rustls::client::danger::ServerCertVerifier as _;
    let (Ok(cas), Ok(chain)) = (
        certificates(ca_pem, "CA certificate"),
        certificates(cert_pem, "serving certificate"),
    ) else {
        return false;
    };
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(cas);
    let Ok(verifier) = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build() else {
        return false;
    };
    let Some((leaf, intermediates)) = chain.split_first() else {
        return false;
    };
    let then = SystemTime::now() + RENEW_BEFORE;
    let Ok(since_epoch) = then.duration_since(SystemTime::UNIX_EPOCH) else {
        return false;
    };
    added > 0
        && names.iter().all(|name| {
            verifier
                .verify_server_cert(
                    leaf,
                    intermediates,
                    name,
                    &[],
                    UnixTime::since_unix_epoch(since_epoch),
                )
                .is_ok()
        })
}

/// Every certificate in `pem`; an error when there is none or one is malformed.
fn certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Certificate {
            what,
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(Error::Certificate {
            what,
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(chain)
}

fn key_pair(pem: &[u8], what: &'static str) -> Result<KeyPair> {
    let text = std::str::from_utf8(pem).map_err(|e| Error::Key {
        what,
        reason: e.to_string(),
    })?;
    KeyPair::from_pem(text).map_err(|e| Error::Key {
        what,
        reason: e.to_string(),
    })
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let failed = |source| Error::Write {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(failed)
}

fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    write_file(path, contents, 0o600)
}

fn write_public(path: &Path, contents: &[u8]) -> Result<()> {
    write_file(path, contents, 0o644)
}

/// Writes through a temporary file and a rename, so a crash never leaves a truncated key or certificate; the
/// temporary file has its final mode from the start, so a key is never readable by others even briefly.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let failed = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .map_err(failed)?;
    file.write_all(contents).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    std::fs::rename(&temp, path).map_err(failed)
}

/// A listener handing axum only connections that finished the TLS handshake. Handshakes run in their own tasks
/// under a timeout, so a slow or broken client never holds up accepting others.
pub(crate) struct TlsListener {
    addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener` with `config`.
    pub(crate) fn new(
        listener: TcpListener,
        config: rustls::ServerConfig,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        // Handshaken connections wait here while axum is busy; a small buffer is enough, since axum takes each
        // at once and spawns its task.
        let (tx, ready) = mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let accepting = tokio::spawn(accept_loop(listener, acceptor, tx));
        Ok(Self {
            addr,
            ready,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    /// Stops accepting: the port closes when the server stops, not when the runtime does.
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop only ends when this listener is dropped; never answer rather than invent one.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = ready.closed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off rather than spin (axum's listener does the same).
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
