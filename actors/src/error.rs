//! The crate's error type: what can fail when a role starts, stops or carries out a decision.

use std::path::PathBuf;

use navarch_bus::api::{ApiError, Reason};

use crate::runtime::RuntimeError;

/// Result of an operation of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a role could not start or an action failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration field is out of range. Not retryable: fix the configuration.
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// The field, as named in the config struct.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A file or directory the role needs could not be used. Retryable once the cause is fixed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("create", "read").
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The API refused or failed a call. Retryable when [`Error::is_retryable`] says so (conflicts, an unreachable
    /// or slow store).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The container runtime failed. Not retryable as such; the pod lifecycle decides what happens next.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The bus refused a subscription (e.g. the agent's log subject). Retryable once the bus is back.
    #[error(transparent)]
    Bus(#[from] navarch_bus::Error),
    /// The actor is gone (stopped, or its System ended). Not retryable.
    #[error("the {0} is not running")]
    Stopped(&'static str),
}

impl Error {
    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api(e) => matches!(
                e.reason,
                Reason::Conflict
                    | Reason::ServiceUnavailable
                    | Reason::Timeout
                    | Reason::TooManyRequests
                    | Reason::InternalError
                    | Reason::Expired
            ),
            Error::Io { .. } | Error::Bus(_) => true,
            Error::InvalidConfig { .. } | Error::Runtime(_) | Error::Stopped(_) => false,
        }
    }
}
