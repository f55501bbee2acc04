//! Authentication and RBAC, through the real kubectl and raw HTTPS against `navarch up`: anonymous and bad tokens
//! get 401 while the health probes stay open; a service account's token (`kubectl create token`) bound to a Role
//! in namespace `a` can do exactly what the Role grants, in `a` only; `kubectl auth can-i` (also `--list`) and
//! `auth whoami` answer from the same policy; a static-token user in a group bound to the default `view`
//! ClusterRole reads everything but Secrets; deleting the service account kills its token.

#![allow(clippy::disallowed_methods)]

mod util;

use std::path::Path;

use serde_json::Value;
use util::*;

fn status_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not a Status ({e}): {body}"))
}

#[test]
fn anonymous_and_bad_tokens_get_401_and_probes_stay_open() {
    let up = start_up(&[]);
    for token in [None, Some("not-a-token"), Some("a.b.c")] {
        let (code, body) = http_as(
            &up.api,
            token,
            "GET",
            "/api/v1/namespaces",
            "application/json",
            b"",
        )
        .expect("answer");
        assert_eq!(code, 401, "{token:?}: {body}");
        let status = status_of(&body);
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "Unauthorized");
        assert_eq!(status["code"], 401);
    }
    let (code, _) = http_as(&up.api, None, "GET", "/version", "application/json", b"").unwrap();
    assert_eq!(code, 401, "/version is not public");
    for probe in ["/livez", "/healthz", "/readyz"] {
        let (code, body) = http_as(&up.api, None, "GET", probe, "application/json", b"").unwrap();
        assert_eq!(code, 200, "{probe}: {body}");
    }
    // The admin token of the kubeconfig works.
    let (code, body) = http_get(&up.api, "/api/v1/namespaces/default").expect("answer");
    assert_eq!(code, 200, "{body}");
}

/// Runs kubectl with `--token`.
fn as_token(kubectl: &Kubectl, token: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--token", token];
    all.extend_from_slice(args);
    kubectl.run(&all)
}

/// Runs kubectl as `alice` (the static token of [`write_tokens`]).
fn as_alice(kubectl: &Kubectl, args: &[&str]) -> std::process::Output {
    as_token(kubectl, "alice-token", args)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_service_account_bound_to_a_role_in_a_can_do_exactly_that_in_a_only() {
    let up = start_up(&[]);
    let kubectl = Kubectl::new(&up.kubeconfig);
    kubectl.ok(&["create", "namespace", "a"]);
    kubectl.ok(&["create", "namespace", "b"]);
    kubectl.ok(&["-n", "a", "create", "serviceaccount", "robot"]);
    kubectl.ok(&[
        "-n",
        "a",
        "create",
        "role",
        "pod-reader",
        "--verb=get,list,watch",
        "--resource=pods",
    ]);
    kubectl.ok(&[
        "-n",
        "a",
        "create",
        "rolebinding",
        "robot-reads-pods",
        "--role=pod-reader",
        "--serviceaccount=a:robot",
    ]);
    let token = kubectl.ok(&["-n", "a", "create", "token", "robot"]);
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    // Allowed: what the Role grants, in a (the binding reaches the gateway's cache within moments).
    wait_for("the binding to take effect", || {
        as_token(&kubectl, token, &["-n", "a", "get", "pods"])
            .status
            .success()
            .then_some(())
    });
    // Denied: the same verb elsewhere, cluster-wide, another verb, another resource.
    let out = as_token(&kubectl, token, &["-n", "b", "get", "pods"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            r#"pods is forbidden: User "system:serviceaccount:a:robot" cannot list resource "pods" in API group "" in the namespace "b""#
        ),
        "{}",
        stderr(&out)
    );
    let out = as_token(&kubectl, token, &["get", "pods", "-A"]);
    assert!(
        stderr(&out).contains("at the cluster scope"),
        "{}",
        stderr(&out)
    );
    let out = as_token(&kubectl, token, &["-n", "a", "delete", "pod", "nothing"]);
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));
    let out = as_token(&kubectl, token, &["-n", "a", "get", "configmaps"]);
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));
    let out = as_token(
        &kubectl,
        token,
        &["-n", "a", "get", "pod", "web", "--subresource=status"],
    );
    assert!(
        stderr(&out).contains(r#"cannot get resource "pods/status""#),
        "pods/status is not granted by `pods`: {}",
        stderr(&out)
    );

    // can-i and whoami answer from the same policy.
    let can_i = |args: &[&str]| {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        let out = as_token(&kubectl, token, &all);
        (out.status.success(), stdout(&out).trim().to_string())
    };
    assert_eq!(can_i(&["list", "pods", "-n", "a"]), (true, "yes".into()));
    assert_eq!(can_i(&["watch", "pods", "-n", "a"]), (true, "yes".into()));
    assert_eq!(can_i(&["create", "pods", "-n", "a"]).1, "no");
    assert_eq!(can_i(&["list", "pods", "-n", "b"]).1, "no");
    assert_eq!(can_i(&["list", "secrets", "-n", "a"]).1, "no");
    let out = as_token(&kubectl, token, &["auth", "can-i", "--list", "-n", "a"]);
    let list = stdout(&out);
    assert!(
        list.lines()
            .any(|l| l.starts_with("pods ") && l.contains("[get list watch]")),
        "{list}"
    );
    assert!(
        list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{list}"
    );
    let out = as_token(&kubectl, token, &["auth", "whoami", "-o", "json"]);
    let me: Value = serde_json::from_str(&stdout(&out)).expect("whoami json");
    assert_eq!(
        me["status"]["userInfo"]["username"],
        "system:serviceaccount:a:robot"
    );
    assert!(me["status"]["userInfo"]["groups"]
        .as_array()
        .unwrap()
        .contains(&Value::from("system:serviceaccounts:a")));

    // The admin may do anything.
    assert_eq!(kubectl.ok(&["auth", "can-i", "*", "*"]).trim(), "yes");

    // The token dies with its service account.
    kubectl.ok(&["-n", "a", "delete", "serviceaccount", "robot"]);
    wait_for("the deleted account's token to be refused", || {
        let out = as_token(&kubectl, token, &["-n", "a", "get", "pods"]);
        let err = stderr(&out);
        (err.contains("Unauthorized") || err.contains("must be logged in")).then_some(())
    });
}

#[test]
fn token_requests_refuse_short_lives_and_missing_accounts() {
    let up = start_up(&[]);
    let post = |path: &str, body: &str| {
        http(&up.api, "POST", path, "application/json", body.as_bytes()).expect("answer")
    };
    let request = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":60}}"#;
    let (code, body) = post(
        "/api/v1/namespaces/default/serviceaccounts/nobody/token",
        r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{}}"#,
    );
    assert_eq!(code, 404, "{body}");
    let kubectl = Kubectl::new(&up.kubeconfig);
    kubectl.ok(&["create", "serviceaccount", "bot"]);
    let (code, body) = post(
        "/api/v1/namespaces/default/serviceaccounts/bot/token",
        request,
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("less than 10 minutes"), "{body}");
    let (code, body) = post(
        "/api/v1/namespaces/default/serviceaccounts/bot/token",
        r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"audiences":["vault"]}}"#,
    );
    assert_eq!(code, 201, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["spec"]["expirationSeconds"], 3600);
    let vault_token = answer["status"]["token"].as_str().unwrap().to_string();
    // A token for another audience is no key to the API.
    let (code, _) = http_as(
        &up.api,
        Some(&vault_token),
        "GET",
        "/api/v1/namespaces",
        "application/json",
        b"",
    )
    .unwrap();
    assert_eq!(code, 401);
    // TokenReview tells whose a token is.
    let (code, body) = post(
        "/apis/authentication.k8s.io/v1/tokenreviews",
        &format!(
            r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{{"token":"{vault_token}"}}}}"#
        ),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(status_of(&body)["status"]["authenticated"], false);
}

/// A token file with the admin and `alice` (group `devs`), placed before `navarch up` starts.
fn write_tokens(data: &Path) -> String {
    std::fs::create_dir_all(data).unwrap();
    let admin = "admin-token-for-tests-0123456789";
    std::fs::write(
        data.join("tokens.csv"),
        format!("{admin},navarch-admin,navarch-admin,\"system:masters\"\nalice-token,alice,alice-uid,\"devs\"\n"),
    )
    .unwrap();
    admin.to_string()
}

#[test]
fn a_static_token_user_in_a_group_bound_to_view_reads_all_but_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let admin = write_tokens(&data);
    let (_up, kubeconfig, api) = start_up_at(&data, &[]);
    let kubeconfig_text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        kubeconfig_text.contains(&admin),
        "up's kubeconfig uses the token file's admin"
    );
    let kubectl = Kubectl::new(&kubeconfig);
    kubectl.ok(&["create", "secret", "generic", "s", "--from-literal=k=v"]);
    kubectl.ok(&["create", "configmap", "c", "--from-literal=k=v"]);
    // Before any binding alice may discover the API and ask about herself, nothing else.
    let out = as_alice(&kubectl, &["get", "configmaps"]);
    assert!(
        stderr(&out).contains(r#"User "alice" cannot list resource "configmaps""#),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        stdout(&as_alice(&kubectl, &["auth", "can-i", "get", "configmaps"])).trim(),
        "no"
    );
    kubectl.ok(&[
        "create",
        "clusterrolebinding",
        "devs-view",
        "--clusterrole=view",
        "--group=devs",
    ]);
    wait_for("the group binding to take effect", || {
        as_alice(&kubectl, &["get", "configmaps", "-A"])
            .status
            .success()
            .then_some(())
    });
    let out = as_alice(&kubectl, &["get", "secrets"]);
    assert!(
        stderr(&out).contains("forbidden"),
        "view does not read Secrets: {}",
        stderr(&out)
    );
    let out = as_alice(&kubectl, &["create", "configmap", "d"]);
    assert!(
        stderr(&out).contains("forbidden"),
        "view does not write: {}",
        stderr(&out)
    );
    // The raw API says the same with a Status.
    let (code, body) = http_as(
        &api,
        Some("alice-token"),
        "GET",
        "/api/v1/namespaces/default/secrets/s",
        "application/json",
        b"",
    )
    .unwrap();
    assert_eq!(code, 403, "{body}");
    let status = status_of(&body);
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(status["details"]["name"], "s");
    assert_eq!(status["details"]["kind"], "secrets");
    // Removing the binding takes the grant away again.
    kubectl.ok(&["delete", "clusterrolebinding", "devs-view"]);
    wait_for("the grant to end", || {
        stderr(&as_alice(&kubectl, &["get", "configmaps"]))
            .contains("forbidden")
            .then_some(())
    });
}

#[test]
fn a_namespace_admin_cannot_grant_more_than_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_tokens(&data);
    let (_up, kubeconfig, _api) = start_up_at(&data, &[]);
    let kubectl = Kubectl::new(&kubeconfig);
    kubectl.ok(&["create", "namespace", "a"]);
    kubectl.ok(&[
        "-n",
        "a",
        "create",
        "rolebinding",
        "devs-admin",
        "--clusterrole=admin",
        "--group=devs",
    ]);
    wait_for("alice to be admin in a", || {
        as_alice(&kubectl, &["-n", "a", "get", "rolebindings"])
            .status
            .success()
            .then_some(())
    });
    // What admin holds, alice may hand on; cluster-admin she may not, not even in her namespace.
    let out = as_alice(
        &kubectl,
        &[
            "-n",
            "a",
            "create",
            "rolebinding",
            "eve-view",
            "--clusterrole=view",
            "--user=eve",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = as_alice(
        &kubectl,
        &[
            "-n",
            "a",
            "create",
            "rolebinding",
            "eve-root",
            "--clusterrole=cluster-admin",
            "--user=eve",
        ],
    );
    assert!(
        stderr(&out).contains("is attempting to grant RBAC permissions not currently held"),
        "{}",
        stderr(&out)
    );
    // A Role with rules admin does not hold (nodes are cluster-scoped; admin has none) is refused too, and one
    // within admin's rules is fine.
    let out = as_alice(
        &kubectl,
        &[
            "-n",
            "a",
            "create",
            "role",
            "nodes",
            "--verb=get",
            "--resource=nodes",
        ],
    );
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));
    let out = as_alice(
        &kubectl,
        &[
            "-n",
            "a",
            "create",
            "role",
            "cm",
            "--verb=get,list",
            "--resource=configmaps",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Nothing outside a.
    let out = as_alice(
        &kubectl,
        &[
            "-n",
            "default",
            "create",
            "rolebinding",
            "eve-view",
            "--clusterrole=view",
            "--user=eve",
        ],
    );
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));
}

#[test]
fn impersonation_needs_the_impersonate_verb() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_tokens(&data);
    let (_up, kubeconfig, _api) = start_up_at(&data, &[]);
    let kubectl = Kubectl::new(&kubeconfig);
    kubectl.ok(&["create", "namespace", "a"]);
    kubectl.ok(&[
        "-n",
        "a",
        "create",
        "rolebinding",
        "bob-view",
        "--clusterrole=view",
        "--user=bob",
    ]);
    // The admin acts as bob: bob's rights, not the admin's.
    wait_for("bob's binding", || {
        (kubectl
            .ok(&["auth", "can-i", "list", "pods", "-n", "a", "--as=bob"])
            .trim()
            == "yes")
            .then_some(())
    });
    let out = kubectl.run(&["auth", "can-i", "list", "pods", "-n", "default", "--as=bob"]);
    assert_eq!(stdout(&out).trim(), "no");
    let out = kubectl.run(&["-n", "default", "get", "pods", "--as=bob"]);
    assert!(
        stderr(&out).contains(r#"User "bob" cannot list resource "pods""#),
        "{}",
        stderr(&out)
    );
    let me = kubectl.ok(&[
        "auth",
        "whoami",
        "--as=bob",
        "--as-group=devs",
        "-o",
        "jsonpath={.status.userInfo.groups}",
    ]);
    assert!(
        me.contains("devs") && me.contains("system:authenticated"),
        "{me}"
    );
    // alice may not impersonate anyone.
    let out = as_alice(&kubectl, &["get", "pods", "--as=navarch-admin"]);
    assert!(
        stderr(&out).contains(r#"cannot impersonate resource "users""#),
        "{}",
        stderr(&out)
    );
}
