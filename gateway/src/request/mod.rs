//! Reading requests: which resource a path names, the query parameters, the body (JSON, YAML or protobuf) and
//! what the client accepts.

mod body;
mod path;
pub mod protobuf;
mod query;

pub use body::{
    decode_object, is_apply, is_protobuf, read_body, wants_table, PatchKind, TableAccept,
};
pub use path::{parse_resource_path, ResourcePath};
pub use query::{IncludeObject, Query};
