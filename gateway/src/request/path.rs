//! Resource paths: `/api/v1/[namespaces/{ns}/]{plural}[/{name}[/{subresource}]]` and the same under
//! `/apis/{group}/{version}`, resolved against the bus's resource registry.

use navarch_bus::api::{resource, ApiError, ResourceInfo};

use crate::discovery;
use crate::status::path_not_found;

/// What a resource path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// The kind.
    pub info: &'static ResourceInfo,
    /// The namespace of the path (None: cluster-scoped kind, or every namespace).
    pub namespace: Option<String>,
    /// The object, when the path names one.
    pub name: Option<String>,
    /// The subresource (`status`, `scale`, `log`), when the path names one.
    pub subresource: Option<String>,
}

/// Resolves a request path; None when it is no resource path at all (`/version`, `/openapi/v3`...), a 404
/// `Status` when it looks like one but names nothing the gateway serves.
pub fn parse_resource_path(path: &str) -> Option<Result<ResourcePath, ApiError>> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return None,
    };
    Some(resolve(group, version, rest))
}

fn resolve(group: &str, version: &str, rest: &[&str]) -> Result<ResourcePath, ApiError> {
    let rest: Vec<String> = rest
        .iter()
        .map(|s| percent_decode(s))
        .collect::<Result<_, _>>()?;
    if rest.iter().any(|s| s.is_empty()) {
        return Err(path_not_found());
    }
    // `/api/v1/namespaces/{name}/status` is the namespace's own subresource; any other third segment after
    // `namespaces/{ns}/` names a resource in that namespace.
    let namespace_sub = |s: &str| {
        resource::by_plural(group, version, "namespaces")
            .is_some_and(|ns| discovery::subresources(ns).contains(&s))
    };
    let (namespace, rest) = match rest.as_slice() {
        [ns_word, ns, plural, tail @ ..]
            if ns_word == "namespaces" && !(tail.is_empty() && namespace_sub(plural)) =>
        {
            (Some(ns.clone()), {
                let mut v = vec![plural.clone()];
                v.extend(tail.iter().cloned());
                v
            })
        }
        _ => (None, rest),
    };
    let (plural, name, subresource) = match rest.as_slice() {
        [plural] => (plural, None, None),
        [plural, name] => (plural, Some(name.clone()), None),
        [plural, name, sub] => (plural, Some(name.clone()), Some(sub.clone())),
        _ => return Err(path_not_found()),
    };
    let info = resource::by_plural(group, version, plural).ok_or_else(path_not_found)?;
    if namespace.is_some() && !info.namespaced {
        return Err(path_not_found());
    }
    // A namespaced object is only ever addressed inside its namespace.
    if info.namespaced && namespace.is_none() && name.is_some() {
        return Err(path_not_found());
    }
    if let Some(sub) = &subresource {
        if !discovery::subresources(info).contains(&sub.as_str()) {
            return Err(path_not_found());
        }
    }
    Ok(ResourcePath {
        info,
        namespace,
        name,
        subresource,
    })
}

/// Decodes `%XX` escapes of one path segment.
fn percent_decode(segment: &str) -> Result<String, ApiError> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(format!("malformed path segment {segment:?}"))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::bad_request(format!("path segment {segment:?} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::Reason;

    fn parse(path: &str) -> ResourcePath {
        parse_resource_path(path).unwrap().unwrap()
    }

    fn fails(path: &str) -> Reason {
        parse_resource_path(path).unwrap().unwrap_err().reason
    }

    #[test]
    fn collections_objects_and_subresources() {
        let p = parse("/api/v1/namespaces/demo/pods");
        assert_eq!(p.info.kind, "Pod");
        assert_eq!(p.namespace.as_deref(), Some("demo"));
        assert_eq!(p.name, None);

        let p = parse("/api/v1/pods");
        assert_eq!((p.info.kind, p.namespace), ("Pod", None));

        let p = parse("/apis/apps/v1/namespaces/demo/deployments/web/scale");
        assert_eq!(p.info.kind, "Deployment");
        assert_eq!(p.name.as_deref(), Some("web"));
        assert_eq!(p.subresource.as_deref(), Some("scale"));

        let p = parse("/api/v1/namespaces/demo");
        assert_eq!(
            (p.info.kind, p.name.as_deref()),
            ("Namespace", Some("demo"))
        );

        let p = parse("/api/v1/namespaces/demo/status");
        assert_eq!(p.info.kind, "Namespace");
        assert_eq!(p.subresource.as_deref(), Some("status"));

        let p = parse("/api/v1/nodes/n%2D1");
        assert_eq!(p.name.as_deref(), Some("n-1"));

        let p = parse("/api/v1/namespaces/demo/pods/p1/log");
        assert_eq!(p.subresource.as_deref(), Some("log"));
    }

    #[test]
    fn what_is_not_served_is_not_found() {
        assert_eq!(fails("/api/v1/widgets"), Reason::NotFound);
        assert_eq!(
            fails("/apis/apps/v1/namespaces/demo/pods"),
            Reason::NotFound
        );
        assert_eq!(fails("/api/v1/namespaces/demo/nodes"), Reason::NotFound);
        assert_eq!(fails("/api/v1/pods/p1"), Reason::NotFound);
        assert_eq!(
            fails("/api/v1/namespaces/demo/pods/p1/scale"),
            Reason::NotFound
        );
        assert_eq!(
            fails("/api/v1/namespaces/demo/pods/p1/status/x"),
            Reason::NotFound
        );
        assert_eq!(fails("/api/v1/namespaces//pods"), Reason::NotFound);
        assert_eq!(fails("/api/v1/nodes/%zz"), Reason::BadRequest);
        assert!(parse_resource_path("/version").is_none());
        assert!(parse_resource_path("/api/v1").is_none());
        assert!(parse_resource_path("/apis/apps/v1").is_none());
    }
}
