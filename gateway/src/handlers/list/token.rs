//! Continue tokens: where the next page of a list starts and the revision every page is read at, encoded as
//! kube-apiserver encodes them (base64url without padding of `{"v":"meta.k8s.io/v1","rv":N,"start":"<key>"}`, the
//! key relative to the list's prefix), so a token is opaque to clients and safe to hand back.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The only token version there is.
const VERSION: &str = "meta.k8s.io/v1";

/// The revision of a token that continues at the latest revision instead (kube-apiserver hands one out when the
/// list's revision has been compacted; 0 would not tell it from a token with no revision).
pub const LATEST: i64 = -1;

/// A decoded continue token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinueToken {
    /// Where the next page starts, relative to the list's prefix (empty: at the beginning).
    pub start: String,
    /// The list's revision, or [`LATEST`].
    pub revision: i64,
}

/// The token as it travels (inside the base64). Missing fields read as zero values, as Go's JSON decoding does.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Wire {
    #[serde(rename = "v")]
    version: String,
    #[serde(rename = "rv")]
    revision: i64,
    start: String,
}

/// Why a token was refused; the messages are kube-apiserver's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not base64url, or not the JSON of a token.
    #[error("continue key is not valid: {0}")]
    Malformed(String),
    /// A version other than `meta.k8s.io/v1`.
    #[error("continue key is not valid: server does not recognize this encoded version {0}")]
    UnknownVersion(String),
    /// The revision is 0.
    #[error("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")]
    NoRevision,
    /// The start key is empty.
    #[error("continue key is not valid: encoded start key empty (version meta.k8s.io/v1)")]
    NoStart,
    /// The start key is not a clean path (`..`, `.`, `//` or a trailing `/`): it could reach outside the list.
    #[error("continue key is not valid: {0}")]
    UncleanStart(String),
}

impl ContinueToken {
    /// The token's text.
    pub fn encode(&self) -> String {
        let wire = Wire {
            version: VERSION.into(),
            revision: self.revision,
            start: self.start.clone(),
        };
        // A struct of strings and an integer always serializes.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap_or_default())
    }

    /// Reads a token a client sent back.
    pub fn decode(text: &str) -> Result<Self, TokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|e| TokenError::Malformed(e.to_string()))?;
        let wire: Wire =
            serde_json::from_slice(&bytes).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if wire.version != VERSION {
            return Err(TokenError::UnknownVersion(wire.version));
        }
        if wire.revision == 0 {
            return Err(TokenError::NoRevision);
        }
        if wire.start.is_empty() {
            return Err(TokenError::NoStart);
        }
        let rooted = if wire.start.starts_with('/') {
            wire.start.clone()
        } else {
            format!("/{}", wire.start)
        };
        if !is_clean(&rooted) {
            return Err(TokenError::UncleanStart(wire.start));
        }
        Ok(Self {
            start: rooted[1..].to_string(),
            revision: wire.revision,
        })
    }
}

/// Whether a rooted path is what Go's `path.Clean` would leave unchanged: no empty, `.` or `..` segment and no
/// trailing slash (except the root itself).
fn is_clean(rooted: &str) -> bool {
    if rooted == "/" {
        return true;
    }
    rooted
        .split('/')
        .skip(1)
        .all(|segment| !matches!(segment, "" | "." | ".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn tokens_round_trip_in_kube_apiservers_format() {
        let token = ContinueToken {
            start: "default/cm-10\0".into(),
            revision: 42,
        };
        let text = token.encode();
        assert!(!text.contains('=') && !text.contains('+') && !text.contains('/'));
        let json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&text).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"v": "meta.k8s.io/v1", "rv": 42, "start": "default/cm-10\u{0}"})
        );
        assert_eq!(ContinueToken::decode(&text), Ok(token));
        let latest = ContinueToken {
            start: "a\0".into(),
            revision: LATEST,
        };
        assert_eq!(ContinueToken::decode(&latest.encode()), Ok(latest));
    }

    #[test]
    fn a_token_written_by_kube_apiserver_reads() {
        // kube-apiserver's own encoding of {"v":"meta.k8s.io/v1","rv":7,"start":"web\u0000"}.
        let token = ContinueToken::decode(
            "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6Nywic3RhcnQiOiJ3ZWJcdTAwMDAifQ",
        )
        .unwrap();
        assert_eq!(token.start, "web\0");
        assert_eq!(token.revision, 7);
        let rooted = ContinueToken::decode(&raw(r#"{"v":"meta.k8s.io/v1","rv":3,"start":"/"}"#));
        assert_eq!(
            rooted,
            Ok(ContinueToken {
                start: String::new(),
                revision: 3
            })
        );
    }

    #[test]
    fn bad_tokens_are_refused_with_kube_apiservers_messages() {
        let cases = [
            ("not base64!", "continue key is not valid: "),
            (&raw("not json") as &str, "continue key is not valid: "),
            (
                &raw(r#"{"v":"v1","rv":1,"start":"a"}"#),
                "continue key is not valid: server does not recognize this encoded version v1",
            ),
            (
                &raw(r#"{"v":"meta.k8s.io/v1","start":"a"}"#),
                "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
            ),
            (
                &raw(r#"{"v":"meta.k8s.io/v1","rv":1}"#),
                "continue key is not valid: encoded start key empty (version meta.k8s.io/v1)",
            ),
            (
                &raw(r#"{"v":"meta.k8s.io/v1","rv":1,"start":"../secrets/x"}"#),
                "continue key is not valid: ../secrets/x",
            ),
            (
                &raw(r#"{"v":"meta.k8s.io/v1","rv":1,"start":"a/./b"}"#),
                "continue key is not valid: a/./b",
            ),
            (
                &raw(r#"{"v":"meta.k8s.io/v1","rv":1,"start":"a//b"}"#),
                "continue key is not valid: a//b",
            ),
            (
                &raw(r#"{"v":"meta.k8s.io/v1","rv":1,"start":"a/"}"#),
                "continue key is not valid: a/",
            ),
            (
                &raw(r#"{"v":"meta.k8s.io/v1","rv":"x","start":"a"}"#),
                "continue key is not valid: ",
            ),
            (
                &format!("{}==", raw(r#"{"v":"meta.k8s.io/v1","rv":1,"start":"a"}"#)),
                "continue key is not valid: ",
            ),
        ];
        for (text, message) in cases {
            let e = ContinueToken::decode(text).unwrap_err();
            assert!(
                e.to_string().starts_with(message),
                "{text}: {e} (wanted {message})"
            );
        }
        assert!(is_clean("/a/b\0") && is_clean("/ns/...") && !is_clean("/a/.."));
    }
}
