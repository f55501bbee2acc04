//! What a request asks to do, read from its method, path and query alone, as kube-apiserver's
//! `RequestInfoFactory.NewRequestInfo` reads it, and the Forbidden message that names it.

use super::UserInfo;

/// What a request asks to do, in the terms RBAC rules speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    /// A request on an API resource: `/api/v1/...` or `/apis/GROUP/VERSION/...`.
    Resource(ResourceRequest),
    /// Any other path: `/version`, `/healthz`, discovery roots, OpenAPI.
    NonResource {
        /// The lowercase HTTP method (`get`, `post`...).
        verb: String,
        /// The percent-decoded request path.
        path: String,
    },
}

/// A resource request's attributes; an empty string means "none", as in Kubernetes' `RequestInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceRequest {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, `proxy`, or empty for an
    /// HTTP method with no verb.
    pub verb: String,
    /// The API group; empty for the core group.
    pub api_group: String,
    /// The version (`v1`).
    pub api_version: String,
    /// The plural resource (`pods`).
    pub resource: String,
    /// The subresource (`log`, `status`, `scale`).
    pub subresource: String,
    /// The namespace; empty for cluster-scoped requests and for requests across all namespaces.
    pub namespace: String,
    /// The object's name; empty for collections.
    pub name: String,
}

// Path segments after `namespaces/NAME` that are the namespace's own subresources rather than a resource inside it
// (requestinfo.go `namespaceSubresources`).
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Derives a request's attributes. Only the shape of the path counts, never the registry: a request for a resource
/// that does not exist is still authorized (and refused with 403, as in Kubernetes) before anyone looks it up.
///
/// Segments are percent-decoded one by one, as the gateway's router decodes them, so both read the same namespace
/// and name (Kubernetes splits the already decoded path, where `%2F` would become a separator). A malformed escape
/// is kept as written: the router answers such a path with 400 anyway.
pub fn attributes(method: &str, path: &str, query: Option<&str>) -> Attributes {
    let parts: Vec<String> = split_path(path).map(decode).collect();
    let (api_group, rest) = match parts.first().map(String::as_str) {
        Some("api") if parts.len() >= 3 => (String::new(), &parts[1..]),
        Some("apis") if parts.len() >= 4 => (parts[1].clone(), &parts[2..]),
        _ => {
            return Attributes::NonResource {
                verb: non_resource_verb(method),
                path: decode(path),
            }
        }
    };
    let mut request = ResourceRequest {
        api_group,
        api_version: rest[0].clone(),
        ..ResourceRequest::default()
    };
    let mut rest = &rest[1..];
    // `/api/v1/watch/...` and `/api/v1/proxy/...`: the verb is in the path. Kubernetes fails a bare
    // `/api/v1/watch`; here it is a watch of no resource, which only a `*` resource rule allows.
    if let Some(special @ ("watch" | "proxy")) = rest.first().map(String::as_str) {
        request.verb = special.to_string();
        rest = &rest[1..];
    } else {
        request.verb = match method {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_string();
    }
    if rest.first().map(String::as_str) == Some("namespaces") && rest.len() > 1 {
        request.namespace = rest[1].clone();
        // `/namespaces/NS/status` is the namespace object's subresource, so the parts still start at `namespaces`.
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2].as_str()) {
            rest = &rest[2..];
        }
    }
    // The proxy verb takes everything after the name as the proxied path, never as a subresource.
    if rest.len() >= 3 && request.verb != "proxy" {
        request.subresource = rest[2].clone();
    }
    if rest.len() >= 2 {
        request.name = rest[1].clone();
    }
    if let Some(resource) = rest.first() {
        request.resource = resource.clone();
    }
    if request.name.is_empty() && request.verb == "get" {
        let list = ListQuery::parse(query.unwrap_or(""));
        request.verb = if list.watch { "watch" } else { "list" }.to_string();
        // A list or watch narrowed to one name by `fieldSelector=metadata.name=X` is checked against that name, so
        // a rule with resourceNames can allow watching a single object (requestinfo.go).
        if let Some(name) = list.single_name {
            request.name = name;
        }
    }
    if request.name.is_empty() && request.verb == "delete" {
        request.verb = "deletecollection".to_string();
    }
    Attributes::Resource(request)
}

/// The verb of a non-resource request. Kubernetes lowercases the method, so a HEAD is `head`; Navarch says `get`,
/// as for resources, so that the `get` rules of `system:discovery` cover the HEAD probes clients send to `/healthz`.
fn non_resource_verb(method: &str) -> String {
    if method == "HEAD" {
        "get".to_string()
    } else {
        method.to_ascii_lowercase()
    }
}

/// Splits like requestinfo.go's `splitPath`: outer slashes trimmed, inner empty segments kept.
fn split_path(path: &str) -> impl Iterator<Item = &str> {
    let trimmed = path.trim_matches('/');
    trimmed.split('/').filter(move |_| !trimmed.is_empty())
}

/// Decodes `%XX` escapes; malformed ones stay literal and invalid UTF-8 becomes U+FFFD.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The two list options that change a collection GET's attributes.
#[derive(Default)]
struct ListQuery {
    watch: bool,
    single_name: Option<String>,
}

impl ListQuery {
    fn parse(query: &str) -> Self {
        let mut watch = None;
        let mut field_selector = None;
        // The last value wins, as in the gateway's own query parser, so that what is authorized is what is served
        // (Kubernetes' parameter codec takes the first).
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "watch" => watch = Some(value.into_owned()),
                "fieldSelector" => field_selector = Some(value.into_owned()),
                _ => {}
            }
        }
        // Kubernetes converts a query boolean to false only for `0` and `false` (any case); a bare `watch` is true.
        let watch = watch.is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"));
        let single_name = field_selector
            .as_deref()
            .and_then(exact_name)
            .filter(|name| valid_path_segment_name(name));
        ListQuery { watch, single_name }
    }
}

/// The value of a `metadata.name=X` (or `==`) term of a field selector, as `RequiresExactMatch("metadata.name")`.
fn exact_name(selector: &str) -> Option<String> {
    split_unescaped(selector, ',').into_iter().find_map(|term| {
        let value = term
            .strip_prefix("metadata.name==")
            .or_else(|| term.strip_prefix("metadata.name="))?;
        // `metadata.name=!x` is not an exact match; `!=` never reaches here since the prefix needs `=` right after.
        Some(unescape(value))
    })
}

/// Splits on `sep` except where a backslash escapes it (field selector values escape `\`, `,` and `=`).
fn split_unescaped(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == sep => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

/// apimachinery's `IsValidPathSegmentName`: a name that can stand as one path segment.
fn valid_path_segment_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%'])
}

/// The message of the 403 `Status` kube-apiserver answers when authorization denies `attrs`, e.g.
/// `pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "b"`
/// (responsewriters `Forbidden` and `forbiddenMessage`, apierrors `NewForbidden`). Kubernetes appends `: REASON`
/// when the authorizer gave a reason; [`forbidden_message_with_reason`] does.
pub fn forbidden_message(user: &UserInfo, attrs: &Attributes) -> String {
    let user_name = quote(&user.name);
    let (qualified, name, denial) = match attrs {
        Attributes::NonResource { verb, path } => (
            String::new(),
            "",
            format!("User {user_name} cannot {verb} path {}", quote(path)),
        ),
        Attributes::Resource(r) => {
            let what = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace {}", quote(&r.namespace))
            };
            // The Status names the group-qualified resource (`deployments.apps`), without the subresource.
            let qualified = if r.api_group.is_empty() {
                r.resource.clone()
            } else {
                format!("{}.{}", r.resource, r.api_group)
            };
            let denial = format!(
                "User {user_name} cannot {} resource {} in API group {} {scope}",
                r.verb,
                quote(&what),
                quote(&r.api_group)
            );
            (qualified, r.name.as_str(), denial)
        }
    };
    // Only the denial is escaped, so that no part of the path reads as HTML in a browser (responsewriters'
    // `sanitizer`); quotes stay.
    let denial = denial
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    match (qualified.is_empty(), name.is_empty()) {
        (true, _) => format!("forbidden: {denial}"),
        (false, true) => format!("{qualified} is forbidden: {denial}"),
        (false, false) => format!("{qualified} {} is forbidden: {denial}", quote(name)),
    }
}

/// [`forbidden_message`] with the authorizer's reason appended as kube-apiserver appends it (nothing when empty).
pub fn forbidden_message_with_reason(user: &UserInfo, attrs: &Attributes, reason: &str) -> String {
    let message = forbidden_message(user, attrs);
    if reason.is_empty() {
        message
    } else {
        format!("{message}: {reason}")
    }
}

/// Go's `%q`: the messages quote names the way kube-apiserver prints them, byte for byte in the usual cases.
pub(super) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
