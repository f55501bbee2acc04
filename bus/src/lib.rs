//! Navarch's contract between roles: the bus they talk over, the subjects and codec, the API object model, and
//! the store's protocol and client. Every other crate depends on this one and on nothing of each other's.
//!
//! # Layout
//! - [`transport`]: the transport trait and its NATS and embedded implementations.
//! - [`client`]: [`Bus`], the handle roles hold: publish, subscribe, queue groups, request/reply.
//! - [`subject`]: subject syntax, wildcard matching, and the names of Navarch's subjects.
//! - [`codec`]: bincode 2, the one encoding of internal messages.
//! - [`trace`]: W3C trace context in message headers.
//! - [`headers`]: message headers.
//! - [`logs`]: `kubectl logs` between gateway and node agent: request, numbered chunks, acknowledged sending.
//! - [`metrics`]: container, pod and node usage a node agent reports on request (for `metrics.k8s.io` and the HPA).
//! - [`api`]: the API object model (k8s-openapi types), resource registry, admission, and [`api::Objects`].
//! - [`store`]: the store's request/response types, its client, and gap-free watches.
//! - [`error`]: the bus's error type.

pub mod api;
pub mod client;
pub mod codec;
pub mod error;
pub mod headers;
pub mod logs;
pub mod metrics;
pub mod store;
pub mod subject;
pub mod trace;
pub mod transport;

pub use bytes::Bytes;
pub use client::Bus;
pub use error::{Error, Result};
pub use headers::Headers;
pub use subject::Subjects;
pub use transport::{Message, Subscription, Transport};
