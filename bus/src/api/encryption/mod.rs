//! Encryption at rest: which stored values are sealed, the envelope they are sealed in, and the key file.
//!
//! Like kube-apiserver's `EncryptionConfiguration`, only Secrets are encrypted: [`super::Objects`] seals the
//! whole serialized object of every Secret it writes with the write key, and opens every sealed value it reads with
//! the key the value names. A plain value still reads, so turning encryption on needs no migration; `navarch secrets
//! reencrypt` rewrites every Secret with the current write key after a rotation.
//!
//! # Layout
//! - `envelope`: the stored form `k8s:enc:xchacha20poly1305:v1:<key name>:<nonce><ciphertext+tag>`, and
//!   [`EncryptionKeys`], which seal and open it.
//! - `key_file`: the YAML key file (named 32-byte keys, the first one writing), read at start or generated.

mod envelope;
pub mod key_file;

pub use envelope::{
    open, sealed_with, valid_name, EncryptionError, EncryptionKeys, KeysError, KEY_BYTES, PREFIX,
    PROVIDER,
};
pub use key_file::KeyFileError;

/// Storage-key prefixes of the resources whose values are encrypted (kube-apiserver's usual configuration: Secrets).
const ENCRYPTED: &[&[u8]] = &[b"/registry/secrets/"];

/// Whether the value stored at `storage_key` is encrypted when keys are given.
pub fn applies_to(storage_key: &[u8]) -> bool {
    ENCRYPTED
        .iter()
        .any(|prefix| storage_key.starts_with(prefix))
}

#[cfg(test)]
mod tests;
