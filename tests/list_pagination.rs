//! Lists in pages against `navarch up`: `limit` and `continue` over raw HTTP (one consistent snapshot across pages,
//! `remainingItemCount`, label selectors), `kubectl get --chunk-size`, Kubernetes' `resourceVersion` semantics, and
//! the 400/410/422/504 answers, including a continue token whose revision was compacted through the etcd API.

#![allow(clippy::disallowed_methods)]

mod util;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;
use util::*;

const CMS: &str = "/api/v1/namespaces/paging/configmaps";

/// The namespace and 25 ConfigMaps `cm-00`..`cm-24`, labelled `parity: even|odd`.
fn manifest() -> String {
    let mut yaml = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: paging}\n");
    for i in 0..25 {
        let parity = if i % 2 == 0 { "even" } else { "odd" };
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i:02}, namespace: paging, labels: \
             {{parity: {parity}}}}}\ndata: {{index: \"{i}\"}}\n"
        ));
    }
    yaml
}

/// GETs `path` and returns the code and the parsed body.
fn get(api: &str, path: &str) -> (u16, Value) {
    let (code, body) = http_get(api, path).unwrap_or_else(|| panic!("GET {path}: no answer"));
    let value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET {path}: {code} body is not JSON ({e}): {body}"));
    (code, value)
}

/// GETs a list that must succeed.
fn list(api: &str, path: &str) -> Value {
    let (code, body) = get(api, path);
    assert_eq!(code, 200, "GET {path}: {body}");
    body
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| {
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn token(list: &Value) -> Option<String> {
    list["metadata"]["continue"].as_str().map(str::to_string)
}

/// Lists with `query` from the page `start` continues at (None: the first page), following `continue` to the end.
fn all_pages(api: &str, query: &str, start: Option<&str>) -> Vec<Value> {
    let first = match start {
        Some(start) => format!("{CMS}?{query}&continue={start}"),
        None => format!("{CMS}?{query}"),
    };
    let mut pages = vec![list(api, &first)];
    while let Some(next) = pages.last().and_then(token) {
        assert!(pages.len() < 30, "pagination does not end");
        pages.push(list(api, &format!("{CMS}?{query}&continue={next}")));
    }
    pages
}

fn etcdctl(endpoint: &str, args: &[&str]) -> std::process::Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--dial-timeout=5s")
        .args(args)
        .output()
        .expect("etcdctl (Debian package etcd-client) must be installed")
}

fn expect_failure(api: &str, path: &str, code: u16, reason: &str) -> Value {
    let (got, status) = get(api, path);
    assert_eq!(got, code, "GET {path}: {status}");
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["reason"], reason, "{status}");
    assert_eq!(status["code"], code, "{status}");
    status
}

#[test]
fn lists_page_through_one_snapshot_and_answer_like_kube_apiserver() {
    let etcd = format!("127.0.0.1:{}", free_port());
    let up = start_up(&["--etcd-listen", &etcd]);
    let api = up.api.as_str();
    let kubectl = Kubectl::new(&up.kubeconfig);
    let out = kubectl.apply_stdin(&["apply", "-f", "-"], &manifest());
    assert!(out.status.success(), "{out:?}");
    let all: BTreeSet<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();

    // kubectl pages through Tables: 7 requests of 4, all 25 rows once.
    let out = kubectl.run(&["get", "cm", "-n", "paging", "--chunk-size=4", "-v=6"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        rows.iter().map(|r| r.to_string()).collect::<BTreeSet<_>>(),
        all
    );
    assert_eq!(rows.len(), 25, "{stdout}");
    let log = String::from_utf8_lossy(&out.stderr);
    let tokens: BTreeSet<&str> = log
        .split("continue=")
        .skip(1)
        .filter_map(|rest| rest.split(['&', '"', ' ']).next())
        .collect();
    assert_eq!(
        tokens.len(),
        6,
        "kubectl should have followed 6 continue tokens:\n{log}"
    );

    // Raw pages of 10: 10, 10, 5, all at the first page's revision, with the count of what remains.
    let first = list(api, &format!("{CMS}?limit=10"));
    let revision = first["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_string();
    assert_eq!(first["kind"], "ConfigMapList");
    assert_eq!(names(&first).len(), 10);
    assert_eq!(first["metadata"]["remainingItemCount"], 15);
    let first_token = token(&first).expect("a continue token after page 1");

    // Created between pages: after every other key, yet never part of this list.
    let (code, body) = http(
        api,
        "POST",
        CMS,
        "application/json",
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm-99","namespace":"paging"}}"#,
    )
    .expect("POST cm-99");
    assert_eq!(code, 201, "{body}");

    let second = list(api, &format!("{CMS}?limit=10&continue={first_token}"));
    assert_eq!(names(&second).len(), 10);
    assert_eq!(second["metadata"]["remainingItemCount"], 5);
    assert_eq!(second["metadata"]["resourceVersion"], revision.as_str());
    let third = list(
        api,
        &format!(
            "{CMS}?limit=10&continue={}",
            token(&second).expect("token 2")
        ),
    );
    assert_eq!(third["metadata"]["resourceVersion"], revision.as_str());
    assert_eq!(token(&third), None, "{third}");
    assert!(
        third["metadata"].get("remainingItemCount").is_none(),
        "{third}"
    );
    let seen: Vec<String> = [&first, &second, &third]
        .iter()
        .flat_map(|p| names(p))
        .collect();
    assert_eq!(seen.len(), 25, "{seen:?}");
    assert!(!seen.contains(&"cm-99".to_string()));
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), all);

    // A new list sees it.
    let fresh = list(api, CMS);
    assert_eq!(names(&fresh).len(), 26);
    assert!(token(&fresh).is_none());

    // A label selector filters on the server and pages fill up: 13 even ones in pages of 5, no count.
    let pages = all_pages(api, "labelSelector=parity%3Deven&limit=5", None);
    let sizes: Vec<usize> = pages.iter().map(|p| names(p).len()).collect();
    assert_eq!(sizes, [5, 5, 3]);
    let even: BTreeSet<String> = pages.iter().flat_map(names).collect();
    assert_eq!(even.len(), 13);
    assert!(even
        .iter()
        .all(|n| n[3..].parse::<u32>().is_ok_and(|i| i % 2 == 0)));
    let rv = &pages[0]["metadata"]["resourceVersion"];
    assert!(pages
        .iter()
        .all(|p| &p["metadata"]["resourceVersion"] == rv));
    assert!(pages
        .iter()
        .all(|p| p["metadata"].get("remainingItemCount").is_none()));

    // resourceVersion semantics: Exact reads the past, NotOlderThan the latest.
    let exact = list(
        api,
        &format!("{CMS}?resourceVersion={revision}&resourceVersionMatch=Exact"),
    );
    assert_eq!(names(&exact).len(), 25);
    assert_eq!(exact["metadata"]["resourceVersion"], revision.as_str());
    // Kubernetes' legacy rule: a paged list at a resourceVersion is exact too.
    let legacy = list(api, &format!("{CMS}?resourceVersion={revision}&limit=30"));
    assert_eq!(names(&legacy).len(), 25);
    let not_older = list(api, &format!("{CMS}?resourceVersion={revision}"));
    assert_eq!(names(&not_older).len(), 26);
    assert_eq!(
        names(&list(api, &format!("{CMS}?resourceVersion=0"))).len(),
        26
    );

    // Bad requests, with Kubernetes' codes.
    let s = expect_failure(api, &format!("{CMS}?continue=garbage"), 400, "BadRequest");
    assert!(s["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("invalid continue token: continue key is not valid")));
    let s = expect_failure(
        api,
        &format!("{CMS}?continue={first_token}&resourceVersion={revision}"),
        400,
        "BadRequest",
    );
    assert_eq!(
        s["message"],
        "specifying resource version is not allowed when using continue"
    );
    expect_failure(
        api,
        &format!("{CMS}?resourceVersion=abc"),
        400,
        "BadRequest",
    );
    expect_failure(api, &format!("{CMS}?limit=ten"), 400, "BadRequest");
    let s = expect_failure(
        api,
        &format!("{CMS}?resourceVersionMatch=Exact"),
        422,
        "Invalid",
    );
    assert_eq!(
        s["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is \
         forbidden unless resourceVersion is provided"
    );
    expect_failure(
        api,
        &format!("{CMS}?resourceVersion=5&resourceVersionMatch=Latest"),
        422,
        "Invalid",
    );

    // A revision the store has not reached: after a short wait, 504 with Kubernetes' message and retry advice.
    let ahead: i64 = revision.parse::<i64>().expect("numeric revision") + 100_000;
    for query in [
        format!("resourceVersion={ahead}"),
        format!("resourceVersion={ahead}&resourceVersionMatch=Exact"),
    ] {
        let s = expect_failure(api, &format!("{CMS}?{query}"), 504, "Timeout");
        assert!(
            s["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(&format!(
                    "Timeout: Too large resource version: {ahead}, current: "
                ))),
            "{s}"
        );
        assert_eq!(s["details"]["retryAfterSeconds"], 1, "{s}");
        assert_eq!(
            s["details"]["causes"][0]["reason"],
            "ResourceVersionTooLarge"
        );
    }

    // Compacting past the list's revision expires its token: 410 with a token for the rest at the latest revision.
    let current = fresh["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_string();
    assert!(current.parse::<i64>().unwrap() > revision.parse::<i64>().unwrap());
    let out = etcdctl(&etcd, &["compact", &current]);
    assert!(out.status.success(), "etcdctl compact: {out:?}");
    let s = expect_failure(
        api,
        &format!("{CMS}?limit=10&continue={first_token}"),
        410,
        "Expired",
    );
    assert_eq!(
        s["message"],
        "The provided continue parameter is too old to display a consistent list result. You can start a new list \
         without the continue parameter, or use the continue token in this response to retrieve the remainder of \
         the results. Continuing with the provided token results in an inconsistent list - objects that were \
         created, modified, or deleted between the time the first chunk was returned and now may show up in the \
         list."
    );
    let inconsistent = s["metadata"]["continue"]
        .as_str()
        .expect("a token for the rest")
        .to_string();
    let rest = all_pages(api, "limit=10", Some(&inconsistent));
    let rest_names: Vec<String> = rest.iter().flat_map(names).collect();
    assert_eq!(rest_names.first().map(String::as_str), Some("cm-10"));
    assert_eq!(
        rest_names.len(),
        16,
        "cm-10..cm-24 and cm-99: {rest_names:?}"
    );
    let s = expect_failure(
        api,
        &format!("{CMS}?resourceVersion={revision}&resourceVersionMatch=Exact"),
        410,
        "Expired",
    );
    assert_eq!(
        s["message"],
        "The resourceVersion for the provided list is too old."
    );
}
