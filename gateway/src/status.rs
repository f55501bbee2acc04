//! Answers on the wire: Kubernetes `Status` objects for every failure, JSON bodies, and `Warning` headers.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use navarch_bus::api::{ApiError, Reason};
use serde_json::Value;

/// Content type of every JSON answer.
pub const JSON: &str = "application/json";

/// A failed request; answers with the error's `Status` and code.
#[derive(Debug)]
pub struct Failure(pub ApiError);

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.0.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if code.is_server_error() {
            tracing::warn!(reason = self.0.reason.as_str(), message = %self.0.message, "request failed");
        }
        json(code, &self.0.to_status())
    }
}

/// What handlers return.
pub type Answer = Result<Response, Failure>;

/// A JSON body with `code`.
pub fn json(code: StatusCode, body: &Value) -> Response {
    json_as(code, body, JSON)
}

/// A JSON body with `code` and the content type `content_type` (e.g. a Table's).
pub fn json_as(code: StatusCode, body: &Value, content_type: &'static str) -> Response {
    // Serializing a Value cannot fail (its map keys are strings).
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (
        code,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        bytes,
    )
        .into_response()
}

/// 404 for a path the gateway does not serve, worded as kube-apiserver does.
pub fn path_not_found() -> ApiError {
    ApiError::new(
        Reason::NotFound,
        "the server could not find the requested resource",
    )
}

/// 405 for a verb the resource does not serve.
pub fn method_not_allowed(method: &str, what: &str) -> ApiError {
    ApiError::new(
        Reason::MethodNotAllowed,
        format!(
            "the server does not allow this method on the requested resource ({method} {what})"
        ),
    )
}

/// Adds `Warning: 299 - "<text>"` headers (RFC 7234), as kube-apiserver reports unknown fields.
pub fn add_warnings(headers: &mut HeaderMap, warnings: &[String]) {
    for warning in warnings {
        // Header values must be visible ASCII: escape quotes and backslashes, drop the rest.
        let text: String = warning
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .flat_map(|c| match c {
                '"' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        if let Ok(value) = HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            headers.append(header::WARNING, value);
        }
    }
}

/// A JSON body with warnings attached.
pub fn json_with_warnings(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut response = json(code, body);
    add_warnings(response.headers_mut(), warnings);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_quoted_like_kube_apiserver() {
        let mut headers = HeaderMap::new();
        add_warnings(
            &mut headers,
            &["unknown field \"spec.x\"".to_string(), "é\u{7}".to_string()],
        );
        let values: Vec<_> = headers.get_all(header::WARNING).iter().collect();
        assert_eq!(values[0], "299 - \"unknown field \\\"spec.x\\\"\"");
        assert_eq!(values[1], "299 - \"\"");
    }

    #[test]
    fn failures_carry_the_status_code() {
        let r = Failure(path_not_found()).into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = Failure(method_not_allowed("POST", "/version")).into_response();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
