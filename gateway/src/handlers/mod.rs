//! Resource requests: the dispatcher that maps method and path to a verb, and one module per verb.

mod apply;
mod create;
mod delete;
mod get;
pub(crate) mod hpa_v1;
mod list;
mod log;
pub(crate) mod metrics;
mod patch;
mod scale;
mod update;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use navarch_bus::api::{admission::Part, ApiError, Reason, ResourceInfo};
use serde_json::{json, Value};

use crate::auth::rbac::{escalation, UserInfo};
use crate::discovery;
use crate::request::{self, wants_table, Query, ResourcePath, TableAccept};
use crate::server::Gateway;
use crate::status::{
    self, json_as, json_with_warnings, method_not_allowed, path_not_found, Answer, Failure,
};
use crate::table::{self, TableOptions};
use crate::watch;
use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};

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
    /// Who is asking (the authentication middleware puts it in the request).
    pub user: Option<UserInfo>,
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
    let mut call = Call {
        user: parts.extensions.get::<UserInfo>().cloned(),
        gw,
        info,
        namespace,
        table: wants_table(&parts.headers),
        headers: parts.headers,
        query,
        body,
    };
    if call.query.dry_run {
        // Every write of this request is checked but not made (`Objects::dry_run`).
        call.gw.objects = call.gw.objects.clone().dry_run();
    }
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
        (Some(name), Some("log")) if method == Method::GET => {
            log::serve(call, &name, parts.uri.query()).await
        }
        _ => Err(not_allowed()),
    }
}

/// Refuses (403) a Role, ClusterRole or binding, as it is about to be stored, that would grant more than its
/// writer holds (`src/auth/rbac/escalation.rs`). Other kinds pass.
pub(crate) async fn confirm_no_escalation(call: &Call, object: &Value) -> Result<(), ApiError> {
    if call.info.group != "rbac.authorization.k8s.io" {
        return Ok(());
    }
    let user = call.user.as_ref().ok_or_else(|| {
        ApiError::internal("an RBAC write reached its handler without an authenticated user")
    })?;
    if user
        .groups
        .iter()
        .any(|g| g == crate::auth::rbac::PRIVILEGED_GROUP)
    {
        return Ok(());
    }
    let snapshot = call.gw.auth_cache.ready().await?;
    let namespace = call.ns().unwrap_or_default();
    let name = navarch_bus::api::meta::name(object).unwrap_or_default();
    fn parse<T: serde::de::DeserializeOwned>(object: &Value, field: &str) -> Result<T, ApiError> {
        serde_json::from_value(object[field].clone())
            .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
    }
    let result = match call.info.kind {
        "Role" | "ClusterRole" => {
            if call.info.kind == "ClusterRole" && !object["aggregationRule"].is_null() {
                // An aggregated role takes rules from roles yet to be written: only `escalate` may write one.
                escalation::check_role(
                    &snapshot.policy,
                    user,
                    namespace,
                    name,
                    &[PolicyRule {
                        verbs: vec!["*".into()],
                        api_groups: Some(vec!["*".into()]),
                        resources: Some(vec!["*".into()]),
                        ..PolicyRule::default()
                    }],
                )
            } else {
                let rules: Option<Vec<PolicyRule>> = parse(object, "rules")?;
                escalation::check_role(
                    &snapshot.policy,
                    user,
                    namespace,
                    name,
                    &rules.unwrap_or_default(),
                )
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let role_ref: RoleRef = parse(object, "roleRef")?;
            escalation::check_binding(&snapshot.policy, user, namespace, &role_ref)
        }
        _ => Ok(()),
    };
    result.map_err(|e| {
        ApiError::new(
            Reason::Forbidden,
            format!(
                "{}.{} {name:?} is forbidden: {e}",
                call.info.plural, call.info.group
            ),
        )
    })
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
