//! Linearizability checking of recorded key-value histories, for the store's fault tests: Wing & Gong's search with
//! Lowe's memoization (as Porcupine runs it), one key at a time, where a call that timed out may take effect at any
//! time after its invocation, or never.
//!
//! # Layout
//! - [`history`]: what a test records: [`Operation`]s with invocation and completion times and what came back.
//! - [`search`]: the search for one partition of a history against a sequential [`search::Model`].
//! - [`kv`]: the key-value model (put, get, compare-and-swap, delete), [`kv::check`] of a whole history key by key,
//!   and [`kv::check_revisions`] of the store's global revisions against real time.

pub mod history;
pub mod kv;
pub mod search;

pub use history::{Completion, Op, Operation, Outcome};
pub use kv::{check, check_revisions, Report, DEFAULT_BUDGET};
