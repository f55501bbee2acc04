//! Request attributes and Forbidden messages.

use super::super::{
    attributes, forbidden_message, forbidden_message_with_reason, Attributes, Policy,
    ResourceRequest,
};
use super::user;

/// `verb group version resource subresource namespace name`, each `-` for empty, `~` for a space.
fn res(spec: &str) -> Attributes {
    let f: Vec<String> = spec
        .split(' ')
        .map(|s| {
            if s == "-" {
                String::new()
            } else {
                s.replace('~', " ")
            }
        })
        .collect();
    assert_eq!(f.len(), 7, "bad spec {spec}");
    Attributes::Resource(ResourceRequest {
        verb: f[0].clone(),
        api_group: f[1].clone(),
        api_version: f[2].clone(),
        resource: f[3].clone(),
        subresource: f[4].clone(),
        namespace: f[5].clone(),
        name: f[6].clone(),
    })
}

fn non(verb: &str, path: &str) -> Attributes {
    Attributes::NonResource {
        verb: verb.to_string(),
        path: path.to_string(),
    }
}

#[test]
fn attributes_as_kube_apiserver_derives_them() {
    let cases: Vec<(&str, &str, Option<&str>, Attributes)> = vec![
        (
            "GET",
            "/api/v1/namespaces/a/pods",
            None,
            res("list - v1 pods - a -"),
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods",
            Some("watch=true"),
            res("watch - v1 pods - a -"),
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods",
            Some("watch=1&resourceVersion=5"),
            res("watch - v1 pods - a -"),
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods",
            Some("watch"),
            res("watch - v1 pods - a -"),
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods",
            Some("watch=false"),
            res("list - v1 pods - a -"),
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods",
            Some("watch=0"),
            res("list - v1 pods - a -"),
        ),
        // The gateway's query parser keeps the last value; what is authorized must be what is served.
        (
            "GET",
            "/api/v1/namespaces/a/pods",
            Some("watch=false&watch=true"),
            res("watch - v1 pods - a -"),
        ),
        (
            "GET",
            "/api/v1/watch/namespaces/a/pods",
            None,
            res("watch - v1 pods - a -"),
        ),
        (
            "GET",
            "/api/v1/watch/namespaces/a/pods/p",
            None,
            res("watch - v1 pods - a p"),
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods/p",
            None,
            res("get - v1 pods - a p"),
        ),
        (
            "HEAD",
            "/api/v1/namespaces/a/pods/p",
            None,
            res("get - v1 pods - a p"),
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods/p/log",
            Some("follow=true"),
            res("get - v1 pods log a p"),
        ),
        // Parts past the subresource are not interpreted.
        (
            "GET",
            "/api/v1/namespaces/a/pods/p/log/more",
            None,
            res("get - v1 pods log a p"),
        ),
        (
            "POST",
            "/api/v1/namespaces/a/pods",
            None,
            res("create - v1 pods - a -"),
        ),
        (
            "PUT",
            "/api/v1/namespaces/a/pods/p/status",
            None,
            res("update - v1 pods status a p"),
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/a/deployments/d",
            None,
            res("patch apps v1 deployments - a d"),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/a/pods/p",
            None,
            res("delete - v1 pods - a p"),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/a/pods",
            None,
            res("deletecollection - v1 pods - a -"),
        ),
        ("GET", "/api/v1/pods", None, res("list - v1 pods - - -")),
        ("GET", "/api/v1/nodes/n", None, res("get - v1 nodes - - n")),
        (
            "GET",
            "/api/v1/namespaces",
            None,
            res("list - v1 namespaces - - -"),
        ),
        (
            "GET",
            "/api/v1/namespaces/",
            None,
            res("list - v1 namespaces - - -"),
        ),
        // The namespace object itself is in its own namespace.
        (
            "GET",
            "/api/v1/namespaces/a",
            None,
            res("get - v1 namespaces - a a"),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/a/",
            None,
            res("delete - v1 namespaces - a a"),
        ),
        (
            "PUT",
            "/api/v1/namespaces/a/status",
            None,
            res("update - v1 namespaces status a a"),
        ),
        (
            "PUT",
            "/api/v1/namespaces/a/finalize",
            None,
            res("update - v1 namespaces finalize a a"),
        ),
        (
            "GET",
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            None,
            res("get apps v1 deployments scale a d"),
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/a/replicasets/r/scale",
            None,
            res("patch apps v1 replicasets scale a r"),
        ),
        (
            "POST",
            "/api/v1/namespaces/a/serviceaccounts/sa/token",
            None,
            res("create - v1 serviceaccounts token a sa"),
        ),
        (
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            None,
            res("create authorization.k8s.io v1 selfsubjectaccessreviews - - -"),
        ),
        // A resource nobody serves is still a resource request (403 before 404, as in Kubernetes).
        (
            "GET",
            "/apis/example.com/v1/namespaces/a/widgets",
            None,
            res("list example.com v1 widgets - a -"),
        ),
        // Any method has a verb; an unknown one has the empty verb, which only `*` matches.
        (
            "OPTIONS",
            "/api/v1/namespaces/a/pods",
            None,
            res("- - v1 pods - a -"),
        ),
        // proxy takes the rest as the proxied path, never as a subresource.
        (
            "GET",
            "/api/v1/proxy/namespaces/a/pods/p/x/y",
            None,
            res("proxy - v1 pods - a p"),
        ),
        // A list narrowed to one name is checked against that name.
        (
            "GET",
            "/api/v1/namespaces/a/pods",
            Some("fieldSelector=metadata.name%3Dp"),
            res("list - v1 pods - a p"),
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods",
            Some("watch=1&fieldSelector=metadata.name==p,status.phase=Running"),
            res("watch - v1 pods - a p"),
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods",
            Some("fieldSelector=metadata.name!=p"),
            res("list - v1 pods - a -"),
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods",
            Some("fieldSelector=metadata.name=.."),
            res("list - v1 pods - a -"),
        ),
        // Percent-encoded segments are decoded one by one; a malformed escape stays as written.
        (
            "GET",
            "/api/v1/namespaces/a%2Fb/pods/p%20q",
            None,
            res("get - v1 pods - a/b p~q"),
        ),
        (
            "GET",
            "/apis/%61pps/v1/namespaces/a/deployments",
            None,
            res("list apps v1 deployments - a -"),
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods/%zz%",
            None,
            res("get - v1 pods - a %zz%"),
        ),
        // Garbage that still has the shape of a resource path: read as Kubernetes reads it.
        ("GET", "/api//v1/pods", None, res("get - - v1 - - pods")),
        ("GET", "/api/v1/watch", None, res("watch - v1 - - - -")),
        ("GET", "/api", None, non("get", "/api")),
        ("GET", "/api/v1", None, non("get", "/api/v1")),
        ("GET", "/apis", None, non("get", "/apis")),
        ("GET", "/apis/apps", None, non("get", "/apis/apps")),
        ("GET", "/apis/apps/v1", None, non("get", "/apis/apps/v1")),
        ("GET", "/version", None, non("get", "/version")),
        ("HEAD", "/healthz", None, non("get", "/healthz")),
        ("POST", "/version", None, non("post", "/version")),
        (
            "DELETE",
            "/openapi/v3/apis/apps/v1",
            None,
            non("delete", "/openapi/v3/apis/apps/v1"),
        ),
        (
            "GET",
            "/openapi/v3/api/v1",
            Some("hash=abc"),
            non("get", "/openapi/v3/api/v1"),
        ),
        ("GET", "/", None, non("get", "/")),
        ("GET", "", None, non("get", "")),
        ("GET", "/version%2F", None, non("get", "/version/")),
        (
            "GET",
            "/nonsense/a/b/c/d",
            None,
            non("get", "/nonsense/a/b/c/d"),
        ),
    ];
    for (method, path, query, expected) in cases {
        assert_eq!(
            attributes(method, path, query),
            expected,
            "{method} {path} {query:?}"
        );
    }
}

#[test]
fn forbidden_messages_in_kube_apiserver_format() {
    let alice = user("alice", &[]);
    let message = |method, path, query| forbidden_message(&alice, &attributes(method, path, query));
    assert_eq!(
        message("GET", "/api/v1/namespaces/b/pods", None),
        r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "b""#
    );
    assert_eq!(
        message("GET", "/api/v1/namespaces/b/pods/p/log", None),
        r#"pods "p" is forbidden: User "alice" cannot get resource "pods/log" in API group "" in the namespace "b""#
    );
    assert_eq!(
        message(
            "PUT",
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            None
        ),
        r#"deployments.apps "d" is forbidden: User "alice" cannot update resource "deployments/scale" in API group "apps" in the namespace "a""#
    );
    assert_eq!(
        message("GET", "/api/v1/nodes", Some("watch=true")),
        r#"nodes is forbidden: User "alice" cannot watch resource "nodes" in API group "" at the cluster scope"#
    );
    assert_eq!(
        message("GET", "/api/v1/pods", None),
        r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" at the cluster scope"#
    );
    assert_eq!(
        message("GET", "/foo", None),
        r#"forbidden: User "alice" cannot get path "/foo""#
    );
    // The path part is escaped so that no message reads as HTML; names are quoted as Go's %q quotes them.
    assert_eq!(
        message("GET", "/<b>&", None),
        r#"forbidden: User "alice" cannot get path "/&lt;b&gt;&amp;""#
    );
    let odd = user("a\"b\n\u{1}", &[]);
    assert_eq!(
        forbidden_message(&odd, &attributes("GET", "/x", None)),
        r#"forbidden: User "a\"b\n\x01" cannot get path "/x""#
    );
    let attrs = attributes("GET", "/api/v1/namespaces/b/pods", None);
    assert_eq!(
        forbidden_message_with_reason(
            &alice,
            &attrs,
            r#"RBAC: role.rbac.authorization.k8s.io "r" not found"#
        ),
        format!(
            "{}: RBAC: role.rbac.authorization.k8s.io \"r\" not found",
            forbidden_message(&alice, &attrs)
        )
    );
    assert_eq!(
        forbidden_message_with_reason(&alice, &attrs, ""),
        forbidden_message(&alice, &attrs)
    );
}

/// Deterministic pseudo-random bytes (no seed to print: the sequence is fixed).
fn noise(state: &mut u64) -> u8 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*state >> 33) as u8
}

#[test]
fn no_input_panics() {
    let (roles, bindings) = super::super::bootstrap_policy();
    let policy = Policy::new(roles, bindings, vec![], vec![]);
    let someone = user("x", &[]);
    let mut paths: Vec<String> = [
        "",
        "/",
        "//",
        "///",
        "%",
        "%%",
        "%2",
        "/%",
        "/api/%",
        "/api/v1/%E2%82",
        "/api/v1/%ff%fe/x",
        "/apis/%/%/%",
        "/api/v1/namespaces",
        "/api/v1/namespaces/",
        "/api/v1/namespaces//pods",
        "/api/v1/watch/",
        "/api/v1/proxy",
        "/api/v1/proxy/namespaces",
        "/apis/g/v/watch/namespaces",
        "/api/v1/namespaces/a/pods/p/log/a/b/c/d",
        "api/v1/pods",
        "/api/v1/pods?watch=true",
        "\u{0}",
        "/api/v1/é/ü",
        "/api/v1/namespaces/%C3%A9",
        "/apis/a/b/c/d/e/f/g/h",
        "/api/v1/namespaces/a/\u{1}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let alphabet = b"/%aipv1sn2Fz?=&.*";
    let mut state = 1;
    for _ in 0..2000 {
        let len = noise(&mut state) % 40;
        let bytes: Vec<u8> = (0..len)
            .map(|_| alphabet[noise(&mut state) as usize % alphabet.len()])
            .collect();
        paths.push(String::from_utf8(bytes).unwrap());
    }
    let queries = [
        None,
        Some(""),
        Some("watch"),
        Some("watch=%"),
        Some("fieldSelector=metadata.name%3D\\"),
        Some("fieldSelector=metadata.name=a\\,b,"),
        Some("&&=&="),
    ];
    for (i, path) in paths.iter().enumerate() {
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "BREW", ""] {
            let attrs = attributes(method, path, queries[i % queries.len()]);
            let decision = policy.authorize(&someone, &attrs);
            let _ = forbidden_message_with_reason(&someone, &attrs, &decision.reason);
        }
    }
}
