//! Query parameters of resource requests, parsed once and checked (bad values are 400, never ignored silently).

use navarch_bus::api::admission::FieldValidation;
use navarch_bus::api::ApiError;

/// What a Table row's `object` holds (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// Nothing.
    None,
    /// A `PartialObjectMetadata` (the default, what kubectl needs for `-A` and `--show-labels`).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

/// The query parameters the gateway understands. Unknown ones are ignored, as kube-apiserver does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// `watch=true|1`: stream changes instead of answering once.
    pub watch: bool,
    /// `resourceVersion`, raw (empty: none).
    pub resource_version: String,
    /// `resourceVersionMatch` of a list, raw (empty: none); checked with the list's other options.
    pub resource_version_match: String,
    /// `limit` of a list: at most this many items per page (0 or less: everything in one page).
    pub limit: i64,
    /// `continue`: the token of the page to read next (empty: the first page).
    pub continue_token: String,
    /// `timeoutSeconds` of a watch.
    pub timeout_seconds: Option<u64>,
    /// `allowWatchBookmarks`.
    pub allow_watch_bookmarks: bool,
    /// `sendInitialEvents` of a watch (a streaming list): None when not given.
    pub send_initial_events: Option<bool>,
    /// `labelSelector`.
    pub label_selector: String,
    /// `fieldSelector`.
    pub field_selector: String,
    /// `fieldValidation` (default Warn, as kube-apiserver).
    pub field_validation: FieldValidation,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `includeObject` for Table answers.
    pub include_object: IncludeObject,
    /// `gracePeriodSeconds` of a delete given in the query.
    pub grace_period_seconds: Option<i64>,
    /// `propagationPolicy` of a delete given in the query.
    pub propagation_policy: Option<String>,
    /// `fieldManager`: who `managedFields` record as making the write.
    pub field_manager: Option<String>,
    /// `force` of a server-side apply: take the fields of conflicting managers.
    pub force: Option<bool>,
}

impl Query {
    /// Parses a raw query string (`a=b&c=d`, percent-encoded).
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut q = Query::default();
        let Some(raw) = raw else { return Ok(q) };
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            let value = value.as_ref();
            match key.as_ref() {
                "watch" => q.watch = parse_bool("watch", value)?,
                "resourceVersion" => q.resource_version = value.to_string(),
                "resourceVersionMatch" => q.resource_version_match = value.to_string(),
                "limit" => {
                    q.limit = value.parse().map_err(|_| {
                        ApiError::bad_request(format!("limit must be an integer, not {value:?}"))
                    })?
                }
                "continue" => q.continue_token = value.to_string(),
                "timeoutSeconds" => {
                    q.timeout_seconds = Some(value.parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "timeoutSeconds must be a non-negative integer, not {value:?}"
                        ))
                    })?)
                }
                "allowWatchBookmarks" => {
                    q.allow_watch_bookmarks = parse_bool("allowWatchBookmarks", value)?
                }
                "sendInitialEvents" => {
                    q.send_initial_events = Some(parse_bool("sendInitialEvents", value)?)
                }
                "labelSelector" => q.label_selector = value.to_string(),
                "fieldSelector" => q.field_selector = value.to_string(),
                "fieldValidation" => q.field_validation = FieldValidation::parse(value)?,
                "dryRun" => match value {
                    "" => {}
                    "All" => q.dry_run = true,
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "dryRun must be \"All\", not {other:?}"
                        )))
                    }
                },
                "includeObject" => {
                    q.include_object = match value {
                        "None" => IncludeObject::None,
                        "" | "Metadata" => IncludeObject::Metadata,
                        "Object" => IncludeObject::Object,
                        other => {
                            return Err(ApiError::bad_request(format!(
                            "includeObject must be one of None, Metadata or Object, not {other:?}"
                        )))
                        }
                    }
                }
                "gracePeriodSeconds" => {
                    q.grace_period_seconds = Some(value.parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "gracePeriodSeconds must be an integer, not {value:?}"
                        ))
                    })?)
                }
                "propagationPolicy" => q.propagation_policy = Some(value.to_string()),
                "fieldManager" => q.field_manager = Some(value.to_string()),
                "force" => q.force = Some(parse_bool("force", value)?),
                _ => {}
            }
        }
        Ok(q)
    }
}

/// Kubernetes' query booleans: `true`/`1` and `false`/`0`; a bare `watch` means true.
fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "True" | "1" | "" => Ok(true),
        "false" | "False" | "0" => Ok(false),
        other => Err(ApiError::bad_request(format!(
            "{name} must be true or false, not {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::Reason;

    #[test]
    fn kubectl_queries_parse() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29&fieldSelector=metadata.name%3Dweb&limit=500\
             &resourceVersion=42&watch=1&timeoutSeconds=519&allowWatchBookmarks=true",
        ))
        .unwrap();
        assert!(q.watch && q.allow_watch_bookmarks);
        assert_eq!(q.label_selector, "app=web,tier in (a,b)");
        assert_eq!(q.field_selector, "metadata.name=web");
        assert_eq!(q.resource_version, "42");
        assert_eq!(q.limit, 500);
        assert_eq!(q.timeout_seconds, Some(519));
        assert_eq!(q.field_validation, FieldValidation::Warn);

        let q = Query::parse(Some(
            "fieldManager=kubectl-client-side-apply&fieldValidation=Strict",
        ))
        .unwrap();
        assert_eq!(q.field_validation, FieldValidation::Strict);
        assert_eq!(
            q.field_manager.as_deref(),
            Some("kubectl-client-side-apply")
        );
        assert_eq!(Query::parse(None).unwrap(), Query::default());
        assert!(!Query::parse(Some("watch=false")).unwrap().watch);

        let q = Query::parse(Some(
            "limit=4&continue=eyJ2Ijo&resourceVersion=7&resourceVersionMatch=Exact",
        ))
        .unwrap();
        assert_eq!(
            (
                q.limit,
                q.continue_token.as_str(),
                q.resource_version_match.as_str()
            ),
            (4, "eyJ2Ijo", "Exact")
        );
    }

    #[test]
    fn bad_values_are_bad_requests() {
        for raw in [
            "watch=maybe",
            "timeoutSeconds=-1",
            "fieldValidation=Loud",
            "dryRun=Some",
            "includeObject=All",
            "gracePeriodSeconds=soon",
            "limit=ten",
            "limit=1.5",
        ] {
            let e = Query::parse(Some(raw)).unwrap_err();
            assert_eq!(e.reason, Reason::BadRequest, "{raw}");
        }
    }
}
