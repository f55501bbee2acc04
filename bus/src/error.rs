//! The bus's error type: what can go wrong when publishing, subscribing or asking another role.

use std::time::Duration;

/// Result of a bus operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nobody answered within the deadline. Retryable: the responder may be busy or restarting.
    #[error("request on {subject} timed out after {timeout:?}")]
    Timeout {
        /// The subject the request went to.
        subject: String,
        /// The deadline that passed.
        timeout: Duration,
    },
    /// No subscriber was listening on the subject when the request was sent. Retryable: the role
    /// that serves it may not have started yet.
    #[error("no responders on {subject}")]
    NoResponders {
        /// The subject the request went to.
        subject: String,
    },
    /// The payload is larger than the transport accepts in one message. Not retryable.
    #[error("payload of {size} bytes exceeds the bus limit of {max} bytes")]
    PayloadTooLarge {
        /// Size of the refused payload.
        size: usize,
        /// The transport's limit.
        max: usize,
    },
    /// The subject is empty or malformed (empty tokens, whitespace, wildcards where not allowed). Not retryable.
    #[error("invalid subject {0:?}")]
    InvalidSubject(String),
    /// A message could not be encoded or decoded. Not retryable: the peer speaks another version.
    #[error("codec: {0}")]
    Codec(String),
    /// The connection to the bus failed or is closed. Retryable once the connection is back.
    #[error("bus connection: {0}")]
    Connection(String),
}

impl Error {
    /// Whether trying the same operation again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Timeout { .. } | Error::NoResponders { .. } | Error::Connection(_)
        )
    }
}
