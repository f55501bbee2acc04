//! placeholder
pub mod mvcc;
pub mod storage;
pub mod types;
