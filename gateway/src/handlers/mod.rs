//! Resource requests: the dispatcher that maps method and path to a verb, and one module per verb.

mod apply;
mod create;
mod delete;
mod get;
mod list;
mod patch;
mod scale;
mod update;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use navarch_bus::api::{admission::Part, ApiError, Reason, ResourceInfo};
use serde_json::{json, Value};

use crate::discovery;
use crate::request::{self, wants_table, Query, ResourcePath, TableAccept};
use crate::server::Gateway;
use crate::status::{
    self, json_as, json_with_warnings, method_not_allowed, path_not_found, Answer, Failure,
};
use crate::table::{self, TableOptions};
use crate::watch;

/// One resource request, parsed.
pub(crate) struct Call {
    /// The gateway's shared state.
    pub gw: Gateway,
    /// The kind addressed.
    pub info: &'static ResourceInfo,
    /// The namespace of the path.
    pub namespace: Option<String>,
    /// Query parameters.
    pub query: Query,
    /// Request headers.
    pub headers: axum::http::HeaderMap,
    /// The Table the client asked for, if any.
    pub table: Option<TableAccept>,
    /// The body (empty for GET).
    pub body: bytes::Bytes,
}

impl Call {
    /// The namespace as `Objects` wants it.
    pub fn ns(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// Table rows' options for this request.
    pub fn table_options(&self, accept: TableAccept) -> TableOptions {
        TableOptions {
            accept,
            include: self.query.include_object,
            now: navarch_bus::api::meta::now(),
        }
    }

    /// Answers with one object: a one-row Table when the client asked for one, else the object.
    pub fn object(&self, code: StatusCode, object: Value, warnings: &[String]) -> Response {
        let object = with_type(self.info, object);
        match self.table {
            Some(accept) => {
                let rv = navarch_bus::api::meta::resource_version(&object).map(str::to_string);
                let t = table::table(
                    self.info,
                    &[object],
                    rv.as_deref(),
                    &self.table_options(accept),
                );
                let mut response = json_as(code, &t, accept.content_type());
                status::add_warnings(response.headers_mut(), warnings);
                response
            }
            None => json_with_warnings(code, &object, warnings),
        }
    }
}

/// Sets `apiVersion` and `kind` of an object of kind `info` (stored objects have them; this makes sure).
pub(crate) fn with_type(info: &ResourceInfo, mut object: Value) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!(info.api_version()));
        map.insert("kind".into(), json!(info.kind));
    }
    object
}

/// Every request no fixed route took: resource paths and the per-group discovery documents.
pub(crate) async fn dispatch(State(gw): State<Gateway>, request: Request) -> Response {
    match route(gw, request).await {
        Ok(response) => response,
        Err(failure) => failure.into_response(),
    }
}

async fn route(gw: Gateway, request: Request) -> Answer {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let Some(target) = request::parse_resource_path(&path) else {
        return discovery_document(&parts.method, &path);
    };
    let ResourcePath {
        info,
        namespace,
        name,
        subresource,
    } = target?;
    let query = Query::parse(parts.uri.query())?;
    let body = if parts.method == Method::GET {
        bytes::Bytes::new()
    } else {
        request::read_body(body, gw.config.max_body_bytes).await?
    };
    let call = Call {
        gw,
        info,
        namespace,
        table: wants_table(&parts.headers),
        headers: parts.headers,
        query,
        body,
    };
    let method = parts.method;
    let not_allowed = || Failure(method_not_allowed(method.as_str(), &path));
    match (name, subresource.as_deref()) {
        (None, None) => match method {
            Method::GET if call.query.watch => watch::serve(call, None).await,
            Method::GET => list::list(call).await,
            Method::POST if call.info.namespaced && call.namespace.is_none() => Err(not_allowed()),
            Method::POST => create::create(call).await,
            _ => Err(not_allowed()),
        },
        (Some(name), None) => match method {
            Method::GET if call.query.watch => watch::serve(call, Some(name)).await,
            Method::GET => get::get(call, &name).await,
            Method::PUT => update::update(call, &name, Part::Main).await,
            Method::PATCH if request::is_apply(&call.headers) => {
                apply::apply(call, &name, Part::Main).await
            }
            Method::PATCH => patch::patch(call, &name, Part::Main).await,
            Method::DELETE => delete::delete(call, &name).await,
            _ => Err(not_allowed()),
        },
        (Some(name), Some("status")) => match method {
            Method::GET => get::get(call, &name).await,
            Method::PUT => update::update(call, &name, Part::Status).await,
            Method::PATCH if request::is_apply(&call.headers) => {
                apply::apply(call, &name, Part::Status).await
            }
            Method::PATCH => patch::patch(call, &name, Part::Status).await,
            _ => Err(not_allowed()),
        },
        (Some(name), Some("scale")) => match method {
            Method::GET => scale::get(call, &name).await,
            Method::PUT => scale::update(call, &name).await,
            Method::PATCH => scale::patch(call, &name).await,
            _ => Err(not_allowed()),
        },
        (Some(name), Some("token")) if method == Method::POST => {
            let namespace = call.namespace.clone().unwrap_or_default();
            crate::auth::reviews::token_request(
                &call.gw,
                &namespace,
                &name,
                &call.headers,
                &call.body,
            )
            .await
        }
        (Some(_), Some("log")) if method == Method::GET => Err(Failure(ApiError::new(
            Reason::BadRequest,
            "pod logs are not served by the Navarch gateway yet",
        ))),
        _ => Err(not_allowed()),
    }
}

/// `/api/<v>`, `/apis/<g>/<v>` and `/apis/<g>`.
fn discovery_document(method: &Method, path: &str) -> Answer {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let document = match segments.as_slice() {
        ["api", version] => discovery::resource_list("", version),
        ["apis", group, version] => discovery::resource_list(group, version),
        ["apis", group] => discovery::group(group),
        _ => None,
    };
    let document = document.ok_or_else(path_not_found)?;
    if method != Method::GET {
        return Err(Failure(method_not_allowed(method.as_str(), path)));
    }
    Ok(status::json(StatusCode::OK, &document))
}
