//! The public event stream (`docs/events.md`): a NATS client outside Navarch (the Python example of the docs, with
//! PyPI `nats-py`) receives every change of the objects it subscribed to, with their resourceVersions and Secrets
//! redacted; and the gateway serves the same changes as Server-Sent Events.

#![allow(clippy::disallowed_methods)]

mod util;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use util::*;

/// Starts the documented Python subscriber on `subject` for `count` events; returns once it is subscribed.
fn subscribe(
    url: &str,
    subject: &str,
    count: usize,
) -> (std::process::Child, mpsc::Receiver<String>) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/event_subscriber.py"
    );
    let mut child = Command::new("python3")
        .args([script, url, subject, &count.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3 (the tests need python3 with PyPI `nats-py`: python3 -m pip install nats-py)");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the subscriber starts");
    assert_eq!(first, "subscribed");
    (child, rx)
}

/// The events the subscriber printed, until it has `count` (or a minute passed).
fn events(rx: &mpsc::Receiver<String>, count: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < count {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => out.push(serde_json::from_str(&line).expect("one JSON event per line")),
            Err(_) => panic!("only {} of {count} events arrived: {out:#?}", out.len()),
        }
    }
    out
}

#[test]
fn a_nats_client_receives_every_change_with_its_resource_version() {
    let (_nats, url) = start_nats();
    let up = start_up(&["--nats", &url, "--cluster", "evs"]);
    let kubectl = Kubectl::new(&up.kubeconfig);
    kubectl.ok(&["create", "namespace", "demo"]);

    let (mut configmaps, cm_rx) = subscribe(&url, "navarch.evs.events.configmaps.demo.>", 3);
    let (mut secrets, secret_rx) = subscribe(&url, "navarch.evs.events.secrets.demo.*", 1);
    kubectl.ok(&[
        "-n",
        "demo",
        "create",
        "configmap",
        "web",
        "--from-literal=color=blue",
    ]);
    kubectl.ok(&[
        "-n",
        "demo",
        "patch",
        "configmap",
        "web",
        "--type=merge",
        "-p",
        r#"{"data":{"color":"green"}}"#,
    ]);
    kubectl.ok(&[
        "-n",
        "demo",
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=hunter2",
    ]);
    kubectl.ok(&["-n", "demo", "delete", "configmap", "web"]);

    let got = events(&cm_rx, 3);
    let types: Vec<&str> = got.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"], "{got:#?}");
    for e in &got {
        assert_eq!(e["subject"], "navarch.evs.events.configmaps.demo.web");
        assert_eq!(e["name"], "web");
        assert_eq!(e["gap"], false, "{got:#?}");
        assert_eq!(e["object"]["kind"], "ConfigMap");
        assert_eq!(e["object"]["apiVersion"], "v1");
        assert_eq!(
            e["object"]["metadata"]["resourceVersion"], e["resourceVersion"],
            "the header is the object's resourceVersion"
        );
    }
    assert_eq!(got[0]["object"]["data"]["color"], "blue");
    assert_eq!(got[1]["object"]["data"]["color"], "green");
    // Each names the one before it: a subscriber can tell it missed nothing.
    assert_eq!(got[1]["previous"], got[0]["resourceVersion"]);
    assert_eq!(got[2]["previous"], got[1]["resourceVersion"]);
    let rvs: Vec<i64> = got
        .iter()
        .map(|e| e["resourceVersion"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{rvs:?}");

    // The stream's resourceVersions are the API's: a watch from the first one sees the rest.
    let watch = kubectl.json(&["-n", "demo", "get", "configmaps", "-o", "json"]);
    assert!(watch["items"].as_array().unwrap().is_empty());

    let secret = &events(&secret_rx, 1)[0];
    assert_eq!(secret["type"], "ADDED");
    assert_eq!(
        secret["object"]["data"]["password"], "",
        "Secret values are redacted"
    );
    assert!(!secret.to_string().contains("aHVudGVyMg"), "{secret}");
    // The API itself still has the value.
    let stored = kubectl.json(&["-n", "demo", "get", "secret", "db", "-o", "json"]);
    assert_eq!(stored["data"]["password"], "aHVudGVyMg==");

    assert!(configmaps.wait().expect("subscriber exits").success());
    assert!(secrets.wait().expect("subscriber exits").success());
}

#[test]
fn the_gateway_serves_watches_as_server_sent_events() {
    let up = start_up(&[]);
    let kubectl = Kubectl::new(&up.kubeconfig);
    kubectl.ok(&["create", "namespace", "demo"]);
    kubectl.ok(&[
        "-n",
        "demo",
        "create",
        "configmap",
        "first",
        "--from-literal=a=1",
    ]);

    // A browser's EventSource asks with `Accept: text/event-stream`; the watch ends after timeoutSeconds.
    let api = up.api.clone();
    let watcher = std::thread::spawn(move || {
        sse(
            &api,
            "/api/v1/namespaces/demo/configmaps?watch=1&timeoutSeconds=6",
            None,
        )
    });
    std::thread::sleep(Duration::from_secs(2));
    kubectl.ok(&[
        "-n",
        "demo",
        "create",
        "configmap",
        "second",
        "--from-literal=b=2",
    ]);
    let (head, body) = watcher.join().expect("watcher");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    let frames = parse_sse(&body);
    let names: Vec<(&str, &str)> = frames
        .iter()
        .map(|(_, kind, data)| {
            (
                kind.as_str(),
                data["object"]["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, [("ADDED", "first"), ("ADDED", "second")], "{body}");
    // The snapshot's event has no id (resuming from it could skip changes); the change has its resourceVersion.
    assert_eq!(frames[0].0, None, "{body}");
    let second_rv = frames[1].0.clone().expect("the change carries an id");
    assert_eq!(
        frames[1].2["object"]["metadata"]["resourceVersion"].as_str(),
        Some(second_rv.as_str())
    );

    // A reconnecting EventSource sends Last-Event-ID: the stream resumes after it, with no snapshot.
    kubectl.ok(&["-n", "demo", "delete", "configmap", "first"]);
    let (_, body) = sse(
        &up.api,
        "/api/v1/namespaces/demo/configmaps?watch=1&timeoutSeconds=3",
        Some(&second_rv),
    );
    let frames = parse_sse(&body);
    let seen: Vec<(&str, &str)> = frames
        .iter()
        .map(|(_, kind, data)| {
            (
                kind.as_str(),
                data["object"]["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, [("DELETED", "first")], "{body}");
}

/// A raw HTTP/1.1 watch asking for Server-Sent Events; returns the response head and the de-chunked body.
fn sse(api: &str, path: &str, last_event_id: Option<&str>) -> (String, String) {
    let (mut stream, host) = connect(api).expect("connect");
    let resume = last_event_id
        .map(|id| format!("Last-Event-ID: {id}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{}Accept: text/event-stream\r\n{resume}Connection: close\r\n\r\n",
        auth_header(api)
    );
    stream.write_all(head.as_bytes()).expect("send");
    stream.flush().expect("flush");
    let raw = read_all(&mut stream).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    (head.to_string(), dechunk(body))
}

/// `(id, event, data)` of each Server-Sent Event.
fn parse_sse(body: &str) -> Vec<(Option<String>, String, Value)> {
    body.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let (mut id, mut kind, mut data) = (None, String::new(), Value::Null);
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("event: ") {
                    kind = v.to_string();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).expect("JSON data");
                }
            }
            (id, kind, data)
        })
        .collect()
}
