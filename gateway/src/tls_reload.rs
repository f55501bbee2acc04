//! The serving certificate, reloaded when its files change (as kube-apiserver's dynamic serving certificates):
//! an operator rotates `--tls-cert-file`/`--tls-private-key-file` without restarting the gateway. The files are
//! looked at, at most once per [`CHECK_EVERY`], during a handshake; a pair that does not load (half-written, or a
//! key that does not match) keeps the previous certificate in service and is logged once.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio_rustls::rustls;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often a handshake may look at the files.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Serves the certificate loaded last, reloading it from its files when they changed.
#[derive(Debug)]
pub(crate) struct Reloading {
    files: Option<(PathBuf, PathBuf)>,
    provider: Arc<CryptoProvider>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    current: Arc<CertifiedKey>,
    /// The files' modification times when last looked at.
    seen: Option<(SystemTime, SystemTime)>,
    checked: tokio::time::Instant,
}

impl Reloading {
    /// Serves `current`; with `files` (certificate chain, key), reloads from them when their modification times
    /// change.
    pub(crate) fn new(
        current: CertifiedKey,
        files: Option<(PathBuf, PathBuf)>,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        let seen = files.as_ref().and_then(|(c, k)| modified(c, k));
        Self {
            files,
            provider,
            state: Mutex::new(State {
                current: Arc::new(current),
                seen,
                checked: tokio::time::Instant::now(),
            }),
        }
    }

    fn refresh(&self, state: &mut State) {
        let Some((cert_file, key_file)) = &self.files else {
            return;
        };
        let now = tokio::time::Instant::now();
        if now.duration_since(state.checked) < CHECK_EVERY {
            return;
        }
        state.checked = now;
        let times = modified(cert_file, key_file);
        if times.is_none() || times == state.seen {
            return;
        }
        state.seen = times;
        match load(cert_file, key_file, &self.provider) {
            Ok(key) => {
                state.current = Arc::new(key);
                tracing::info!(cert = %cert_file.display(), "reloaded the API serving certificate");
            }
            Err(e) => tracing::warn!(
                cert = %cert_file.display(),
                error = %e,
                "the changed serving certificate does not load; still serving the previous one"
            ),
        }
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh(&mut state);
        Some(state.current.clone())
    }
}

fn modified(cert: &std::path::Path, key: &std::path::Path) -> Option<(SystemTime, SystemTime)> {
    let time = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((time(cert)?, time(key)?))
}

fn load(
    cert_file: &std::path::Path,
    key_file: &std::path::Path,
    provider: &CryptoProvider,
) -> crate::tls::Result<CertifiedKey> {
    // Parsed and checked once, here: `TlsConfig::from_files` would also build a whole server configuration.
    let config = crate::tls::TlsConfig {
        cert_chain_pem: crate::tls::read(cert_file)?,
        key_pem: crate::tls::read(key_file)?,
        files: None,
    };
    config.certified_key(provider)
}
