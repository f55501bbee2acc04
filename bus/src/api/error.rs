//! API errors as Kubernetes reports them: a `Status` with a reason, an HTTP code and, for invalid objects, causes.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::resource::ResourceInfo;
use crate::store::{self, StoreError};

/// Kubernetes' `StatusReason` values Navarch uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    /// 400: the request cannot be understood (undecodable body, bad parameter).
    BadRequest,
    /// 401: no or bad credentials.
    Unauthorized,
    /// 403: not allowed.
    Forbidden,
    /// 404: the object (or namespace) does not exist.
    NotFound,
    /// 405: the verb is not served for this resource.
    MethodNotAllowed,
    /// 406: no acceptable representation.
    NotAcceptable,
    /// 409: the object already exists.
    AlreadyExists,
    /// 409: the object changed since it was read (stale resourceVersion).
    Conflict,
    /// 410: the resourceVersion asked for is too old.
    Expired,
    /// 413: the body is too large.
    RequestEntityTooLarge,
    /// 415: the body's content type is not understood.
    UnsupportedMediaType,
    /// 422: the object fails validation.
    Invalid,
    /// 429: too many requests.
    TooManyRequests,
    /// 500: a bug or failure inside Navarch.
    InternalError,
    /// 503: a role Navarch needs is unreachable.
    ServiceUnavailable,
    /// 504: the request took too long.
    Timeout,
}

impl Reason {
    /// The HTTP status code Kubernetes pairs with the reason.
    pub fn code(self) -> u16 {
        match self {
            Reason::BadRequest => 400,
            Reason::Unauthorized => 401,
            Reason::Forbidden => 403,
            Reason::NotFound => 404,
            Reason::MethodNotAllowed => 405,
            Reason::NotAcceptable => 406,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::Expired => 410,
            Reason::RequestEntityTooLarge => 413,
            Reason::UnsupportedMediaType => 415,
            Reason::Invalid => 422,
            Reason::TooManyRequests => 429,
            Reason::InternalError => 500,
            Reason::ServiceUnavailable => 503,
            Reason::Timeout => 504,
        }
    }

    /// The reason as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Expired => "Expired",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::Invalid => "Invalid",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::InternalError => "InternalError",
            Reason::ServiceUnavailable => "ServiceUnavailable",
            Reason::Timeout => "Timeout",
        }
    }
}

/// One field-level problem of an invalid object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    /// Kubernetes' cause type: `FieldValueInvalid`, `FieldValueRequired`, `FieldValueDuplicate`, `FieldValueNotSupported`.
    pub reason: String,
    /// The field's path, e.g. `spec.replicas`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// What a `Status` says about the object concerned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Details {
    /// Name of the object.
    pub name: Option<String>,
    /// Its group.
    pub group: Option<String>,
    /// Its resource (plural) or kind.
    pub kind: Option<String>,
    /// Field problems (for `Invalid`), or why a request failed (e.g. `ResourceVersionTooLarge`).
    pub causes: Vec<Cause>,
    /// Seconds a client should wait before retrying (`retryAfterSeconds`), when the failure is temporary.
    pub retry_after_seconds: Option<i32>,
}

/// A failed API call, as a Kubernetes `Status`. Small (details are boxed) so `Result<_, ApiError>` stays cheap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Why.
    pub reason: Reason,
    /// The whole message, as kubectl prints it after `Error from server (<reason>): `.
    pub message: String,
    details: Option<Box<Details>>,
}

impl ApiError {
    /// An error with no details.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// An error with details (the object it is about, causes).
    pub fn with_details(reason: Reason, message: impl Into<String>, details: Details) -> Self {
        Self {
            reason,
            message: message.into(),
            details: Some(Box::new(details)),
        }
    }

    fn about(mut self, info: &ResourceInfo, name: &str) -> Self {
        let details = self.details.get_or_insert_with(Default::default);
        details.name = Some(name.to_string());
        details.group = (!info.group.is_empty()).then(|| info.group.to_string());
        details.kind = Some(info.plural.to_string());
        self
    }

    /// The details (object and field causes), if any.
    pub fn details(&self) -> Option<&Details> {
        self.details.as_deref()
    }

    /// The field causes (empty unless `Invalid`).
    pub fn causes(&self) -> &[Cause] {
        self.details.as_ref().map_or(&[], |d| d.causes.as_slice())
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Reason::BadRequest, message)
    }

    /// 500 InternalError.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            Reason::InternalError,
            format!("Internal error occurred: {message}"),
        )
    }

    /// 404: `pods "web" not found`.
    pub fn not_found(info: &ResourceInfo, name: &str) -> Self {
        Self::new(
            Reason::NotFound,
            format!("{} \"{name}\" not found", info.qualified()),
        )
        .about(info, name)
    }

    /// 409: `pods "web" already exists`.
    pub fn already_exists(info: &ResourceInfo, name: &str) -> Self {
        Self::new(
            Reason::AlreadyExists,
            format!("{} \"{name}\" already exists", info.qualified()),
        )
        .about(info, name)
    }

    /// 409 Conflict on a stale resourceVersion, worded as kube-apiserver does.
    pub fn conflict(info: &ResourceInfo, name: &str) -> Self {
        Self::new(
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your \
                 changes to the latest version and try again",
                info.qualified()
            ),
        )
        .about(info, name)
    }

    /// 422 with field causes: `Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: ...`.
    pub fn invalid(info: &ResourceInfo, name: &str, causes: Vec<Cause>) -> Self {
        Self::invalid_kind(info.group, info.kind, name, causes)
    }

    /// 422 with field causes about something of kind `kind` in `group` that is not a stored resource, such as the
    /// `ListOptions.meta.k8s.io` of a request (kube-apiserver's `NewInvalid` with any group and kind).
    pub fn invalid_kind(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let dotted_group = if group.is_empty() {
            String::new()
        } else {
            format!(".{group}")
        };
        let list: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let message = format!(
            "{kind}{dotted_group} \"{name}\" is invalid: {}",
            if list.len() == 1 {
                list[0].clone()
            } else {
                format!("[{}]", list.join(", "))
            }
        );
        Self {
            reason: Reason::Invalid,
            message,
            details: Some(Box::new(Details {
                name: (!name.is_empty()).then(|| name.to_string()),
                group: (!group.is_empty()).then(|| group.to_string()),
                kind: Some(kind.to_string()),
                causes,
                retry_after_seconds: None,
            })),
        }
    }

    /// 429 TooManyRequests: the client's budget is spent; retry after `seconds`.
    pub fn too_many_requests(seconds: u64) -> Self {
        let mut e = Self::new(
            Reason::TooManyRequests,
            "Too many requests, please try again later.",
        );
        e.details = Some(Box::new(Details {
            retry_after_seconds: Some(i32::try_from(seconds).unwrap_or(i32::MAX)),
            ..Default::default()
        }));
        e
    }

    /// 410 Expired: the resourceVersion is compacted.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(Reason::Expired, message)
    }

    /// 504 Timeout for a read at a resourceVersion the store has not reached, worded as kube-apiserver's
    /// `NewTooLargeResourceVersionError`, with its cause and `retryAfterSeconds: 1` (its watch cache's advice).
    pub fn too_large_resource_version(requested: i64, current: i64) -> Self {
        Self {
            reason: Reason::Timeout,
            message: format!(
                "Timeout: Too large resource version: {requested}, current: {current}"
            ),
            details: Some(Box::new(Details {
                causes: vec![Cause {
                    reason: "ResourceVersionTooLarge".into(),
                    field: String::new(),
                    message: "Too large resource version".into(),
                }],
                retry_after_seconds: Some(1),
                ..Default::default()
            })),
        }
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        self.reason.code()
    }

    /// The error as a Kubernetes `Status` object.
    pub fn to_status(&self) -> Value {
        let mut details = serde_json::Map::new();
        let d = self.details.as_deref().cloned().unwrap_or_default();
        if let Some(name) = &d.name {
            details.insert("name".into(), json!(name));
        }
        if let Some(group) = &d.group {
            details.insert("group".into(), json!(group));
        }
        if let Some(kind) = &d.kind {
            details.insert("kind".into(), json!(kind));
        }
        if !d.causes.is_empty() {
            details.insert(
                "causes".into(),
                Value::Array(
                    d.causes
                        .iter()
                        .map(|c| {
                            let mut cause = json!({"reason": c.reason, "message": c.message});
                            // Kubernetes omits an empty field, as in a cause about the whole request.
                            if !c.field.is_empty() {
                                cause["field"] = json!(c.field);
                            }
                            cause
                        })
                        .collect(),
                ),
            );
        }
        if let Some(seconds) = d.retry_after_seconds {
            details.insert("retryAfterSeconds".into(), json!(seconds));
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.code(),
        });
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::Store(StoreError::Compacted { requested, .. }) => ApiError::expired(format!(
                "The resourceVersion for the provided watch is too old (revision {requested} is compacted)."
            )),
            store::Error::Store(StoreError::FutureRevision { requested, current }) => {
                ApiError::too_large_resource_version(requested, current)
            }
            store::Error::Store(StoreError::RequestTooLarge { .. }) => {
                ApiError::new(Reason::RequestEntityTooLarge, e.to_string())
            }
            store::Error::Store(StoreError::InvalidArgument(m)) => ApiError::bad_request(m),
            store::Error::Store(StoreError::NoSpace) => ApiError::internal("etcdserver: mvcc: database space exceeded"),
            store::Error::Store(StoreError::NotLeader { .. } | StoreError::Unavailable(_)) => {
                ApiError::new(Reason::ServiceUnavailable, format!("the store is unavailable: {e}"))
            }
            store::Error::Bus(crate::Error::Timeout { .. }) => {
                ApiError::new(Reason::Timeout, format!("the store did not answer in time: {e}"))
            }
            store::Error::Bus(ref b) if b.is_retryable() => {
                ApiError::new(Reason::ServiceUnavailable, format!("the store is unreachable: {e}"))
            }
            other => ApiError::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resource::by_kind;

    #[test]
    fn statuses_read_like_kube_apiserver() {
        let pods = by_kind("v1", "Pod").unwrap();
        let s = ApiError::not_found(pods, "nope").to_status();
        assert_eq!(s["message"], "pods \"nope\" not found");
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["kind"], "pods");

        let deploy = by_kind("apps/v1", "Deployment").unwrap();
        let e = ApiError::invalid(
            deploy,
            "web",
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                field: "spec.replicas".into(),
                message: "Invalid value: -1: must be greater than or equal to 0".into(),
            }],
        );
        assert_eq!(
            e.message,
            "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            e.to_status()["details"]["causes"][0]["field"],
            "spec.replicas"
        );
        assert_eq!(e.code(), 422);
        assert_eq!(ApiError::conflict(deploy, "web").code(), 409);
    }

    #[test]
    fn store_errors_map_to_statuses() {
        let gone: ApiError = store::Error::Store(StoreError::Compacted {
            requested: 3,
            compact_revision: 10,
        })
        .into();
        assert_eq!(gone.code(), 410);
        assert_eq!(gone.reason, Reason::Expired);
        let down: ApiError = store::Error::Bus(crate::Error::NoResponders {
            subject: "x".into(),
        })
        .into();
        assert_eq!(down.code(), 503);
        let ahead: ApiError = store::Error::Store(StoreError::FutureRevision {
            requested: 90,
            current: 40,
        })
        .into();
        assert_eq!(ahead.code(), 504);
    }

    #[test]
    fn too_large_resource_versions_read_like_kube_apiserver() {
        let s = ApiError::too_large_resource_version(90, 40).to_status();
        assert_eq!(s["code"], 504);
        assert_eq!(s["reason"], "Timeout");
        assert_eq!(
            s["message"],
            "Timeout: Too large resource version: 90, current: 40"
        );
        assert_eq!(s["details"]["retryAfterSeconds"], 1);
        assert_eq!(
            s["details"]["causes"],
            json!([{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}])
        );
    }

    #[test]
    fn invalid_options_name_their_kind_and_group() {
        let e = ApiError::invalid_kind(
            "meta.k8s.io",
            "ListOptions",
            "",
            vec![Cause {
                reason: "FieldValueForbidden".into(),
                field: "resourceVersionMatch".into(),
                message: "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
                    .into(),
            }],
        );
        assert_eq!(
            e.message,
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is \
             forbidden unless resourceVersion is provided"
        );
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(
            s["details"],
            json!({"group": "meta.k8s.io", "kind": "ListOptions", "causes": [{"reason": "FieldValueForbidden",
                   "message": "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
                   "field": "resourceVersionMatch"}]})
        );
    }
}
