//! The API object model: the kinds Navarch serves, their storage keys, and the one admission path (defaulting and
//! validation) that every writer goes through, plus [`Objects`], the object-level client of the store, which
//! encrypts Secrets at rest ([`encryption`]) and gives Services their cluster IPs and node ports ([`allocation`]).
//!
//! Objects are Kubernetes' own types (k8s-openapi, API 1.32) and travel as JSON: in the store's values, in watch
//! events and on the HTTP API. `metadata.resourceVersion` is never stored; it is the key's mod revision, set on read.

pub mod admission;
pub mod allocation;
pub mod deletion;
pub mod encryption;
pub mod error;
pub mod fence;
mod kinds;
pub mod list;
pub mod meta;
pub mod objects;
mod probes;
pub mod quantity;
pub mod resource;
mod validate;

pub use validate::matches as selector_matches;
pub use validate::{is_label_value, is_qualified_name};

pub use allocation::ServiceCidr;
pub use deletion::Propagation;
pub use encryption::EncryptionKeys;
pub use error::{ApiError, Cause, Details, Reason};
pub use fence::Fence;
pub use list::{Page, PageRequest};
pub use objects::{DeleteOptions, ObjectEvent, ObjectWatch, Objects, WatchType};
pub use resource::{ResourceInfo, RESOURCES};

pub use k8s_openapi;
