//! The key file: a small YAML list of named keys, the first one writing, read at start and generated when missing.
//!
//! ```text
//! keys:
//! - name: key-2           # writes, and reads what it wrote
//!   secret: <base64>      # 32 random bytes: `head -c 32 /dev/urandom | base64`
//! - name: key-1           # only reads: values written before the rotation
//!   secret: <base64>
//! ```
//!
//! The fields are named as in kube-apiserver's `EncryptionConfiguration` provider keys (`name`, `secret`).

use std::path::Path;

use base64::Engine;
use rand::rngs::OsRng;
use rand::TryRngCore;
use serde::Deserialize;

use super::envelope::{EncryptionKeys, KeysError, KEY_BYTES};

/// Why a key file is not usable. None is retryable: the file has to be fixed.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file cannot be read (missing, not allowed).
    #[error("cannot read the encryption key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not the YAML described in this module.
    #[error("the encryption key file {path} is not valid: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, on one line.
        reason: String,
    },
    /// The OS gave no randomness for a new key.
    #[error("cannot generate an encryption key: {0}")]
    Random(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    keys: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    secret: String,
}

/// The keys in a key file's text; `origin` names the file in errors.
pub fn parse(text: &str, origin: &str) -> Result<EncryptionKeys, KeyFileError> {
    let invalid = |reason: String| KeyFileError::Invalid {
        path: origin.to_string(),
        reason: reason.replace('\n', " "),
    };
    let file: File = serde_norway::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let mut keys = Vec::with_capacity(file.keys.len());
    for entry in file.keys {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(entry.secret.trim())
            .map_err(|e| {
                invalid(format!(
                    "the secret of key {:?} is not base64: {e}",
                    entry.name
                ))
            })?;
        let secret: [u8; KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| {
            invalid(format!(
                "the secret of key {:?} is {} bytes; it must be {KEY_BYTES} (e.g. `head -c 32 /dev/urandom | base64`)",
                entry.name,
                bytes.len()
            ))
        })?;
        keys.push((entry.name, secret));
    }
    EncryptionKeys::new(keys).map_err(|e: KeysError| invalid(e.to_string()))
}

/// The keys in the key file at `path`.
pub fn read(path: &Path) -> Result<EncryptionKeys, KeyFileError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: origin.clone(),
        source,
    })?;
    parse(&text, &origin)
}

/// A name for a generated key, `key-` and 8 random hex digits, so keys generated for different clusters differ by
/// name and an error naming one tells which file it came from.
pub fn random_name() -> Result<String, KeyFileError> {
    let mut bytes = [0u8; 4];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| KeyFileError::Random(e.to_string()))?;
    Ok(format!("key-{:08x}", u32::from_be_bytes(bytes)))
}

/// The text of a new key file holding one fresh random key named `name`.
pub fn generate(name: &str) -> Result<String, KeyFileError> {
    let mut secret = [0u8; KEY_BYTES];
    OsRng
        .try_fill_bytes(&mut secret)
        .map_err(|e| KeyFileError::Random(e.to_string()))?;
    let secret = base64::engine::general_purpose::STANDARD.encode(secret);
    Ok(format!(
        "# Keys that encrypt Secrets at rest in Navarch's store (XChaCha20-Poly1305, 32 bytes each, base64).
# The first key encrypts every write; every key listed decrypts. To rotate: put a new key first and keep this one
# after it, restart, run `navarch secrets reencrypt`, then remove this one. Losing this file loses the Secrets.
keys:
- name: {name}
  secret: {secret}
"
    ))
}
