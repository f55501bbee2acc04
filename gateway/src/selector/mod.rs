//! Label and field selectors of lists and watches, parsed from the query and matched against objects in the
//! gateway.

mod field;
mod label;

pub use field::FieldSelector;
pub use label::LabelSelector;

use navarch_bus::api::{ApiError, ResourceInfo};
use serde_json::Value;

/// Both selectors of a request; an empty one matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selectors {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
}

impl Selectors {
    /// Parses both selectors for objects of kind `info`; malformed ones and unsupported fields are 400.
    pub fn parse(info: &ResourceInfo, labels: &str, fields: &str) -> Result<Self, ApiError> {
        Ok(Self {
            labels: LabelSelector::parse(labels)?,
            fields: FieldSelector::parse(info, fields)?,
        })
    }

    /// Whether `object` is selected.
    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// Whether both selectors select everything.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}
