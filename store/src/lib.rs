//! placeholder
pub mod mvcc;
