//! Navarch's gateway: the HTTP front door that speaks the Kubernetes REST dialect, so that `kubectl` works. Every
//! request becomes bus messages (store requests through [`navarch_bus::api::Objects`], which runs the one
//! admission path); the gateway keeps no state of its own.
//!
//! Start it with [`start`] and stop it with [`RunningGateway::shutdown`].
//!
//! # Layout
//! - [`config`]: [`GatewayConfig`], its defaults and validation.
//! - [`server`]: the router, the per-request tracing span, start and graceful shutdown.
//! - [`request`]: what a request names and carries: resource paths, query parameters, bodies (JSON, YAML,
//!   Kubernetes' protobuf), `Accept`.
//! - [`handlers`]: one module per verb (get, list, create, update, delete, patch, apply, scale) and the dispatcher.
//! - [`watch`]: streaming watches and the selector filter that turns leaving objects into DELETED.
//! - [`discovery`]: `/version`, `/api`, `/apis`, the resource lists, and OpenAPI (v3 with Kubernetes' schemas, a
//!   minimal v2).
//! - [`table`]: `kubectl get` Tables with Kubernetes' columns per kind.
//! - [`selector`]: label and field selectors.
//! - [`auth`]: who is asking (bearer tokens, service-account tokens) and may they (RBAC); the review APIs.
//! - [`apply`]: server-side apply's merge and field ownership (`metadata.managedFields`).
//! - [`patch`]: JSON merge patch, JSON patch and strategic merge patch.
//! - [`status`]: failures as Kubernetes `Status` objects, JSON answers, `Warning` headers.
//! - [`health`]: `/livez`, `/healthz`, `/readyz`.
//! - [`limit`]: per-client rate limiting (429 TooManyRequests).
//! - [`bootstrap`]: the built-in namespaces, default RBAC objects and the `kubernetes` Service.
//! - [`apiserver_service`]: the `kubernetes` Service and its Endpoints (this gateway's address).
//! - [`tls`]: the serving certificate, a generated cluster CA (`ensure_pki`), and the TLS listener.
//! - [`error`]: the gateway's own error type.
//! - `fuzzing`: one entry point feeding arbitrary bytes to every request decoder (cargo-fuzz and its corpus test).

// Request failures are the bus's `ApiError` (a whole Kubernetes Status, ~130 bytes) on cold paths; boxing it at
// every call would buy nothing measurable. The bus itself trips the same lint: shrinking `ApiError` there (boxing
// its details) would let this go.
#![allow(clippy::result_large_err)]

pub mod apiserver_service;
pub mod apply;
pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod discovery;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod handlers;
pub(crate) mod health;
pub mod limit;
pub mod patch;
pub mod request;
pub mod selector;
mod serve;
pub mod server;
pub mod status;
pub mod table;
pub mod tls;
mod tls_reload;
pub mod watch;

pub use config::{ConfigError, GatewayConfig};
pub use error::{Error, Result};
pub use limit::RateLimit;
pub use server::{start, RunningGateway};
pub use tls::{ensure_pki, Pki, TlsConfig};
