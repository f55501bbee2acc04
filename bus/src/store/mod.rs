//! The store's protocol on the bus and its client: etcd's key-value model (global revision, per-key create/mod
//! revision and version), compare-and-swap transactions, and gap-free watches built on per-stream change messages.
//!
//! Keys are bytes; Navarch's API objects live under `/registry/<resource>/[<namespace>/]<name>` as JSON.
//! Every committed revision is published once per *stream* (the `<resource>` segment of its keys) on
//! `store.events.<stream>` as a [`ChangeBatch`] whose `prev` names the stream's previous revision, so a watcher
//! notices a lost message and refetches the missing revisions with a [`HistoryRequest`].

mod client;
mod protocol;
mod watch;

pub use client::{Error, StoreClient};
pub use protocol::*;
pub use watch::{WatchEvent, WatchStream};
