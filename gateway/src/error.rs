//! Why the gateway itself fails to start or run (request failures are Kubernetes `Status` objects, see
//! [`crate::status`]).

use crate::config::ConfigError;

/// A failure of the gateway as a whole.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work. Not retryable.
    #[error("invalid gateway configuration: {0}")]
    Config(#[from] ConfigError),
    /// The listen address cannot be bound (in use, no permission). Retryable once the address is free.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server stopped with an I/O error. Retryable by starting again.
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// The gateway's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
