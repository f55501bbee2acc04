//! The envelope an encrypted value is stored in, and the named keys that seal and open it.
//!
//! A sealed value is `k8s:enc:xchacha20poly1305:v1:<key name>:` followed by a 24-byte random nonce and the
//! XChaCha20-Poly1305 ciphertext with its 16-byte tag. The prefix follows kube-apiserver's
//! (`k8s:enc:<provider>:v1:<key name>:`), so the key a value needs is readable without decrypting anything. The
//! storage key (`/registry/secrets/<ns>/<name>`) is the AEAD's associated data, as kube-apiserver's AES-GCM provider
//! binds values to their etcd keys: a sealed value copied under another key does not open.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::TryRngCore;

/// What every sealed value starts with; a value without it is plain (written before encryption was turned on).
pub const PREFIX: &[u8] = b"k8s:enc:";
/// The one provider Navarch writes.
pub const PROVIDER: &str = "xchacha20poly1305";
/// The envelope's version, as in kube-apiserver's prefixes.
const VERSION: &str = "v1";
/// Bytes of a key.
pub const KEY_BYTES: usize = 32;
/// Bytes of the random nonce: 192 bits, so random nonces never repeat in practice, however many writes one key seals.
const NONCE_BYTES: usize = 24;
/// Bytes of the Poly1305 tag after the ciphertext.
const TAG_BYTES: usize = 16;
/// Longest key name; also bounds how much of an unreadable value an error quotes.
pub const MAX_NAME_BYTES: usize = 64;

/// Why a value could not be sealed or opened. None is retryable: the value or the keys have to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptionError {
    /// The value names a key this process does not have: it was written with a key since removed from the key
    /// file, or by a process given another key file.
    #[error("the value at {key} is encrypted with key {name:?}, which is not among this process's encryption keys ({known})")]
    UnknownKey {
        /// The storage key of the value.
        key: String,
        /// The key name the value carries.
        name: String,
        /// The names this process has, comma-separated.
        known: String,
    },
    /// The value is sealed but this process was given no keys at all.
    #[error("the value at {key} is encrypted with key {name:?}, but this process was given no encryption keys (--encryption-key-file)")]
    NoKeys {
        /// The storage key of the value.
        key: String,
        /// The key name the value carries.
        name: String,
    },
    /// The value starts like an envelope but is not one Navarch can read (unknown provider or version, cut short).
    #[error("the value at {key} is not a valid encrypted value: {reason}")]
    Malformed {
        /// The storage key of the value.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The tag does not verify: the value was altered, moved to another storage key, or sealed by a different key
    /// under the same name.
    #[error("the value at {key} does not decrypt with key {name:?}: it was altered, or sealed by another key of that name")]
    Inauthentic {
        /// The storage key of the value.
        key: String,
        /// The key name the value carries.
        name: String,
    },
    /// Sealing failed (no randomness from the operating system).
    #[error("cannot encrypt the value at {key}: {reason}")]
    Seal {
        /// The storage key of the value.
        key: String,
        /// What failed.
        reason: String,
    },
}

/// A key list that is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    /// No key at all: nothing could be written.
    #[error("no encryption keys are listed")]
    Empty,
    /// A name that is empty, too long, or has characters other than `A-Z a-z 0-9 . _ -`.
    #[error("key name {0:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'")]
    BadName(String),
    /// Two keys share a name, so a value naming it would be ambiguous.
    #[error("key name {0:?} is listed twice")]
    Duplicate(String),
}

struct NamedKey {
    name: String,
    secret: [u8; KEY_BYTES],
    cipher: XChaCha20Poly1305,
}

/// Named keys: the first seals every write, every one opens. Cheap to clone; `Debug` shows names only.
#[derive(Clone)]
pub struct EncryptionKeys {
    keys: Arc<[NamedKey]>,
}

impl fmt::Debug for EncryptionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKeys")
            .field("names", &self.names().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl PartialEq for EncryptionKeys {
    fn eq(&self, other: &Self) -> bool {
        self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .zip(other.keys.iter())
                .all(|(a, b)| a.name == b.name && a.secret == b.secret)
    }
}

impl Eq for EncryptionKeys {}

/// Whether `name` may name a key: it must not hold the envelope's `:` separator, and stays short and printable.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl EncryptionKeys {
    /// Keys from `(name, secret)` pairs; the first is the write key.
    pub fn new(keys: Vec<(String, [u8; KEY_BYTES])>) -> Result<Self, KeysError> {
        if keys.is_empty() {
            return Err(KeysError::Empty);
        }
        let mut named: Vec<NamedKey> = Vec::with_capacity(keys.len());
        for (name, secret) in keys {
            if !valid_name(&name) {
                return Err(KeysError::BadName(name));
            }
            if named.iter().any(|k| k.name == name) {
                return Err(KeysError::Duplicate(name));
            }
            let cipher = XChaCha20Poly1305::new(&Key::from(secret));
            named.push(NamedKey {
                name,
                secret,
                cipher,
            });
        }
        Ok(Self { keys: named.into() })
    }

    /// The name of the key that seals writes.
    pub fn write_key(&self) -> &str {
        // `new` refuses an empty list.
        self.keys.first().map_or("", |k| k.name.as_str())
    }

    /// Every key's name, the write key first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.name.as_str())
    }

    /// Seals `plaintext`, stored at `storage_key`, with the write key.
    pub fn seal(&self, storage_key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, EncryptionError> {
        let seal_error = |reason: String| EncryptionError::Seal {
            key: String::from_utf8_lossy(storage_key).into_owned(),
            reason,
        };
        let key = self
            .keys
            .first()
            .ok_or_else(|| seal_error("no keys".into()))?;
        let mut nonce = [0u8; NONCE_BYTES];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| seal_error(format!("no randomness for the nonce: {e}")))?;
        let sealed = key
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: storage_key,
                },
            )
            .map_err(|_| seal_error("the value is too long".into()))?;
        let mut value = Vec::with_capacity(
            PREFIX.len()
                + PROVIDER.len()
                + VERSION.len()
                + key.name.len()
                + 3
                + NONCE_BYTES
                + sealed.len(),
        );
        value.extend_from_slice(PREFIX);
        for part in [PROVIDER, VERSION, key.name.as_str()] {
            value.extend_from_slice(part.as_bytes());
            value.push(b':');
        }
        value.extend_from_slice(&nonce);
        value.extend_from_slice(&sealed);
        Ok(value)
    }

    fn by_name(&self, name: &str) -> Option<&NamedKey> {
        self.keys.iter().find(|k| k.name == name)
    }
}

/// A parsed envelope.
struct Sealed<'a> {
    name: &'a str,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

/// The bytes of `rest` up to the next `:` (at most [`MAX_NAME_BYTES`] of them); `rest` moves past the `:`.
fn field<'a>(rest: &mut &'a [u8], what: &str) -> Result<&'a [u8], String> {
    let end = rest
        .iter()
        .take(MAX_NAME_BYTES + 1)
        .position(|&b| b == b':')
        .ok_or_else(|| format!("no {what} in its prefix"))?;
    let (part, after) = rest.split_at(end);
    *rest = after.get(1..).unwrap_or_default();
    Ok(part)
}

/// Splits an envelope; `Ok(None)` for a plain value.
fn parse(value: &[u8]) -> Result<Option<Sealed<'_>>, String> {
    let Some(rest) = value.strip_prefix(PREFIX) else {
        return Ok(None);
    };
    let mut rest = rest;
    let provider = field(&mut rest, "provider")?;
    if provider != PROVIDER.as_bytes() {
        return Err(format!(
            "provider {:?} is not {PROVIDER}",
            String::from_utf8_lossy(provider)
        ));
    }
    let version = field(&mut rest, "version")?;
    if version != VERSION.as_bytes() {
        return Err(format!(
            "version {:?} is not {VERSION}",
            String::from_utf8_lossy(version)
        ));
    }
    let name = field(&mut rest, "key name")?;
    let name = std::str::from_utf8(name)
        .ok()
        .filter(|n| valid_name(n))
        .ok_or_else(|| format!("key name {:?} is not valid", String::from_utf8_lossy(name)))?;
    if rest.len() < NONCE_BYTES + TAG_BYTES {
        return Err(format!(
            "{} bytes after the prefix, fewer than a nonce and a tag",
            rest.len()
        ));
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
    Ok(Some(Sealed {
        name,
        nonce,
        ciphertext,
    }))
}

/// The key name a stored value is sealed with, or None for a plain value (or one that is not a valid envelope).
pub fn sealed_with(value: &[u8]) -> Option<&str> {
    parse(value).ok().flatten().map(|s| s.name)
}

/// The plaintext of the value stored at `storage_key`: opened with the key it names, or the value itself when it
/// is plain (kube-apiserver's identity fallback, so values written before encryption was turned on still read).
pub fn open<'a>(
    keys: Option<&EncryptionKeys>,
    storage_key: &[u8],
    value: &'a [u8],
) -> Result<Cow<'a, [u8]>, EncryptionError> {
    let key_text = || String::from_utf8_lossy(storage_key).into_owned();
    let sealed = match parse(value) {
        Ok(None) => return Ok(Cow::Borrowed(value)),
        Ok(Some(sealed)) => sealed,
        Err(reason) => {
            return Err(EncryptionError::Malformed {
                key: key_text(),
                reason,
            })
        }
    };
    let Some(keys) = keys else {
        return Err(EncryptionError::NoKeys {
            key: key_text(),
            name: sealed.name.into(),
        });
    };
    let Some(key) = keys.by_name(sealed.name) else {
        return Err(EncryptionError::UnknownKey {
            key: key_text(),
            name: sealed.name.into(),
            known: keys.names().collect::<Vec<_>>().join(", "),
        });
    };
    let nonce = XNonce::try_from(sealed.nonce).map_err(|_| EncryptionError::Malformed {
        key: key_text(),
        reason: "the nonce is cut short".into(),
    })?;
    key.cipher
        .decrypt(
            &nonce,
            Payload {
                msg: sealed.ciphertext,
                aad: storage_key,
            },
        )
        .map(Cow::Owned)
        .map_err(|_| EncryptionError::Inauthentic {
            key: key_text(),
            name: sealed.name.into(),
        })
}
