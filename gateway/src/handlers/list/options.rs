//! A list's options (`limit`, `continue`, `resourceVersion`, `resourceVersionMatch`) checked and turned into the read
//! to make, with kube-apiserver's rules and messages: apimachinery's `ValidateListOptions` (422) first, then the
//! etcd3 store's checks of the token and the resourceVersion (400).

use navarch_bus::api::{ApiError, Cause};

use super::token::ContinueToken;
use crate::request::Query;

/// Which revision a list reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// The latest revision, by a linearizable read. Serves `resourceVersion` unset ("most recent") and "0"
    /// ("any": the latest is one).
    Latest,
    /// The latest revision, once the store has reached this one (`NotOlderThan`).
    NotOlderThan(i64),
    /// Exactly this revision (`Exact`, a continue token, or a paged list at a resourceVersion).
    Exact(i64),
}

/// What a list request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    /// The revision to read.
    pub read: Read,
    /// For a continued list: where the page starts, relative to the kind's prefix.
    pub start: Option<String>,
    /// At most this many items (0: all).
    pub limit: usize,
}

const EXACT: &str = "Exact";
const NOT_OLDER_THAN: &str = "NotOlderThan";

impl ListOptions {
    /// Checks the list options of `query`.
    pub fn from_query(query: &Query) -> Result<Self, ApiError> {
        validate(query)?;
        let limit = usize::try_from(query.limit).unwrap_or(0);
        let rv = query.resource_version.as_str();
        if !query.continue_token.is_empty() {
            let token = ContinueToken::decode(&query.continue_token)
                .map_err(|e| ApiError::bad_request(format!("invalid continue token: {e}")))?;
            if !rv.is_empty() && rv != "0" {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            // Negative: kube-apiserver's token for the rest of a list whose revision was compacted.
            let read = if token.revision < 0 {
                Read::Latest
            } else {
                Read::Exact(token.revision)
            };
            return Ok(Self {
                read,
                start: Some(token.start),
                limit,
            });
        }
        if rv.is_empty() {
            return Ok(Self {
                read: Read::Latest,
                start: None,
                limit,
            });
        }
        let revision = parse_resource_version(rv)?;
        let read = match (query.resource_version_match.as_str(), revision) {
            (EXACT, n) => Read::Exact(n),
            (_, 0) => Read::Latest,
            // Kubernetes' legacy rule: a paged list at a resourceVersion without a match reads exactly there.
            ("", n) if limit > 0 => Read::Exact(n),
            (_, n) => Read::NotOlderThan(n),
        };
        Ok(Self {
            read,
            start: None,
            limit,
        })
    }
}

/// apimachinery's `ValidateListOptions` for a list (not a watch): 422 on `ListOptions.meta.k8s.io`.
fn validate(query: &Query) -> Result<(), ApiError> {
    if query.send_initial_events.is_some() {
        return Err(ApiError::invalid_kind(
            "meta.k8s.io",
            "ListOptions",
            "",
            vec![Cause {
                reason: "FieldValueForbidden".into(),
                field: "sendInitialEvents".into(),
                message: "Forbidden: sendInitialEvents is forbidden for list".into(),
            }],
        ));
    }
    let matching = query.resource_version_match.as_str();
    if matching.is_empty() {
        return Ok(());
    }
    let forbidden = |message: &str| Cause {
        reason: "FieldValueForbidden".into(),
        field: "resourceVersionMatch".into(),
        message: format!("Forbidden: {message}"),
    };
    let mut causes = Vec::new();
    if query.resource_version.is_empty() {
        causes.push(forbidden(
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        ));
    }
    if !query.continue_token.is_empty() {
        causes.push(forbidden(
            "resourceVersionMatch is forbidden when continue is provided",
        ));
    }
    if matching != EXACT && matching != NOT_OLDER_THAN {
        causes.push(Cause {
            reason: "FieldValueNotSupported".into(),
            field: "resourceVersionMatch".into(),
            message: format!(
                "Unsupported value: {matching:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""
            ),
        });
    }
    if matching == EXACT && query.resource_version == "0" {
        causes.push(forbidden(
            "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ));
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid_kind(
        "meta.k8s.io",
        "ListOptions",
        "",
        causes,
    ))
}

/// A resourceVersion as kube-apiserver's storage parses one (an unsigned integer), with its message.
fn parse_resource_version(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
        let why = if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
            "value out of range"
        } else {
            "invalid syntax"
        };
        ApiError::bad_request(format!(
            "invalid resource version: resourceVersion: Invalid value: {raw:?}: strconv.ParseUint: parsing \
             {raw:?}: {why}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use navarch_bus::api::Reason;

    use super::super::token::LATEST;
    use super::*;

    fn options(raw: &str) -> Result<ListOptions, ApiError> {
        ListOptions::from_query(&Query::parse(Some(raw))?)
    }

    fn read(raw: &str) -> Read {
        options(raw).unwrap().read
    }

    fn token(start: &str, revision: i64) -> String {
        ContinueToken {
            start: start.into(),
            revision,
        }
        .encode()
    }

    #[test]
    fn resource_versions_read_as_kubernetes_documents() {
        // https://kubernetes.io/docs/reference/using-api/api-concepts/#semantics-for-get-and-list
        assert_eq!(read(""), Read::Latest);
        assert_eq!(read("limit=500"), Read::Latest);
        assert_eq!(read("resourceVersion=0"), Read::Latest);
        assert_eq!(read("resourceVersion=0&limit=5"), Read::Latest);
        assert_eq!(read("resourceVersion=9"), Read::NotOlderThan(9));
        assert_eq!(read("resourceVersion=9&limit=5"), Read::Exact(9));
        assert_eq!(
            read("resourceVersion=9&resourceVersionMatch=NotOlderThan&limit=5"),
            Read::NotOlderThan(9)
        );
        assert_eq!(
            read("resourceVersion=0&resourceVersionMatch=NotOlderThan"),
            Read::Latest
        );
        assert_eq!(
            read("resourceVersion=9&resourceVersionMatch=Exact"),
            Read::Exact(9)
        );
        assert_eq!(options("limit=-3").unwrap().limit, 0);
        assert_eq!(options("limit=3").unwrap().limit, 3);
    }

    #[test]
    fn continue_tokens_read_at_their_revision_from_their_key() {
        let o = options(&format!("limit=2&continue={}", token("default/b\0", 17))).unwrap();
        assert_eq!(o.read, Read::Exact(17));
        assert_eq!(o.start.as_deref(), Some("default/b\0"));
        assert_eq!(o.limit, 2);
        // A resourceVersion of "0" is tolerated with a token (client-go's pager keeps it), any other is not.
        let o = options(&format!("resourceVersion=0&continue={}", token("b\0", 17))).unwrap();
        assert_eq!(o.read, Read::Exact(17));
        let latest = options(&format!("continue={}", token("b\0", LATEST))).unwrap();
        assert_eq!(latest.read, Read::Latest);

        let e = options(&format!("resourceVersion=17&continue={}", token("b\0", 17))).unwrap_err();
        assert_eq!(e.reason, Reason::BadRequest);
        assert_eq!(
            e.message,
            "specifying resource version is not allowed when using continue"
        );
        let e = options("continue=garbage").unwrap_err();
        assert_eq!(e.reason, Reason::BadRequest);
        assert!(
            e.message
                .starts_with("invalid continue token: continue key is not valid: "),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_combinations_are_refused_with_kubernetes_messages() {
        let e = options("resourceVersionMatch=Exact").unwrap_err();
        assert_eq!(e.reason, Reason::Invalid);
        assert_eq!(
            e.message,
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is \
             forbidden unless resourceVersion is provided"
        );
        let e = options("resourceVersion=5&resourceVersionMatch=Newest").unwrap_err();
        assert_eq!(
            e.message,
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Unsupported value: \"Newest\": \
             supported values: \"Exact\", \"NotOlderThan\", \"\""
        );
        let e = options("resourceVersion=0&resourceVersionMatch=Exact").unwrap_err();
        assert!(e
            .message
            .ends_with("resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""));
        let e = options(&format!(
            "resourceVersionMatch=NotOlderThan&continue={}",
            token("a\0", 3)
        ))
        .unwrap_err();
        assert_eq!(e.causes().len(), 2, "{}", e.message);
        assert!(e
            .message
            .starts_with("ListOptions.meta.k8s.io \"\" is invalid: ["));

        for rv in ["abc", "-1", "1.5"] {
            let e = options(&format!("resourceVersion={rv}")).unwrap_err();
            assert_eq!(e.reason, Reason::BadRequest);
            assert_eq!(
                e.message,
                format!(
                    "invalid resource version: resourceVersion: Invalid value: \"{rv}\": strconv.ParseUint: \
                     parsing \"{rv}\": invalid syntax"
                )
            );
        }
        let e = options("resourceVersion=99999999999999999999").unwrap_err();
        assert!(e.message.ends_with("value out of range"), "{}", e.message);
    }
}
