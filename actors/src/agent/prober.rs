//! Carries out probe and hook [`Action`]s: exec through the runtime, HTTP GET with a minimal HTTP/1.1 client, TCP
//! connect; each bounded by its timeout. The verdicts are [`super::probe`]'s.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::probe::Action;
use crate::runtime::{ContainerId, Runtime};

/// The most bytes read looking for an HTTP response's status line.
const STATUS_LINE_LIMIT: u64 = 4096;

/// How much longer than its timeout an exec may take to come back before it counts as failed.
const EXEC_SLACK: Duration = Duration::from_secs(5);

/// How a probe or hook went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether it passed.
    pub success: bool,
    /// What it said (a failure's cause, an exec's output), for the log.
    pub message: String,
}

impl Outcome {
    fn failed(message: impl Into<String>) -> Self {
        Self {
            success: false,
            message: message.into(),
        }
    }

    fn passed(message: impl Into<String>) -> Self {
        Self {
            success: true,
            message: message.into(),
        }
    }
}

/// Runs `action` for container `id` within `timeout`. HTTP and TCP actions must have their host filled in.
pub async fn run(
    runtime: &dyn Runtime,
    id: &ContainerId,
    action: &Action,
    timeout: Duration,
) -> Outcome {
    match action {
        Action::Exec { command } if command.is_empty() => Outcome::failed("exec: no command"),
        Action::Exec { command } => {
            // The runtime bounds the command by `timeout`; the slack only guards against a runtime that does not.
            let exec = tokio::time::timeout(
                timeout.saturating_add(EXEC_SLACK),
                runtime.exec(id, command, timeout),
            );
            match exec.await {
                Ok(Ok(out)) => match out.exit_code {
                    Some(0) => Outcome::passed(out.output),
                    Some(code) => Outcome::failed(format!(
                        "command {command:?} exited with {code}: {}",
                        out.output.trim_end()
                    )),
                    None => Outcome::failed(format!(
                        "command {command:?} timed out after {}s",
                        timeout.as_secs()
                    )),
                },
                Ok(Err(e)) => Outcome::failed(e.to_string()),
                Err(_) => Outcome::failed(format!("command {command:?} did not return in time")),
            }
        }
        Action::HttpGet {
            host,
            port,
            path,
            scheme,
            headers,
        } => {
            if !scheme.eq_ignore_ascii_case("HTTP") {
                return Outcome::failed(format!("scheme {scheme} is not supported (only HTTP)"));
            }
            let host = host.as_deref().unwrap_or("127.0.0.1");
            match tokio::time::timeout(timeout, http_get(host, *port, path, headers)).await {
                Ok(Ok(code)) if (200..400).contains(&code) => {
                    Outcome::passed(format!("HTTP probe succeeded with statuscode: {code}"))
                }
                Ok(Ok(code)) => {
                    Outcome::failed(format!("HTTP probe failed with statuscode: {code}"))
                }
                Ok(Err(e)) => Outcome::failed(format!("Get \"http://{}{}\": {e}", authority(host, *port), request_path(path))),
                Err(_) => Outcome::failed(format!(
                    "Get \"http://{}{}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                    authority(host, *port),
                    request_path(path)
                )),
            }
        }
        Action::TcpSocket { host, port } => {
            let host = host.as_deref().unwrap_or("127.0.0.1");
            let target = authority(host, *port);
            match tokio::time::timeout(timeout, TcpStream::connect((host, *port))).await {
                Ok(Ok(_)) => Outcome::passed(""),
                Ok(Err(e)) => Outcome::failed(format!("dial tcp {target}: {e}")),
                Err(_) => Outcome::failed(format!("dial tcp {target}: i/o timeout")),
            }
        }
        Action::Sleep(d) => {
            tokio::time::sleep((*d).min(timeout)).await;
            Outcome::passed("")
        }
        Action::Invalid(message) => Outcome::failed(message.clone()),
    }
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}") // an IPv6 literal
    } else {
        format!("{host}:{port}")
    }
}

fn request_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

/// The request a probe sends: `GET path` with the kubelet's default headers, which `headers` may override.
pub fn request(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Result<String, String> {
    let bad = |s: &str| s.contains(['\r', '\n']);
    let path = request_path(path);
    if bad(&path) || path.contains(' ') {
        return Err(format!("invalid request path {path:?}"));
    }
    let mut lines: Vec<(String, String)> = vec![
        ("Host".into(), authority(host, port)),
        ("User-Agent".into(), "kube-probe/1.32".into()),
        ("Accept".into(), "*/*".into()),
    ];
    for (name, value) in headers {
        if name.is_empty() || bad(name) || name.contains(':') || bad(value) {
            return Err(format!("invalid header {name:?}"));
        }
        match lines.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(line) => line.1 = value.clone(),
            None => lines.push((name.clone(), value.clone())),
        }
    }
    let mut text = format!("GET {path} HTTP/1.1\r\n");
    for (name, value) in lines {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("Connection: close\r\n\r\n");
    Ok(text)
}

/// The status code in an HTTP/1.x status line.
pub fn status_code(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    parts
        .next()?
        .parse()
        .ok()
        .filter(|c| (100..600).contains(c))
}

/// Sends a GET and returns the response's status code.
async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> std::io::Result<u16> {
    let text = request(host, port, path, headers).map_err(std::io::Error::other)?;
    let mut stream = TcpStream::connect((host, port)).await?;
    stream.write_all(text.as_bytes()).await?;
    // A status line is short: a peer sending endless bytes without a newline is cut off here, not by the timeout.
    let mut reader = BufReader::new(stream.take(STATUS_LINE_LIMIT));
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    status_code(&line).ok_or_else(|| {
        std::io::Error::other(format!("malformed HTTP response {:?}", line.trim_end()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_the_kubelet_headers_and_the_probe_s() {
        let text = request(
            "10.0.0.5",
            8080,
            "healthz",
            &[
                ("user-agent".into(), "mine".into()),
                ("X-A".into(), "b".into()),
            ],
        )
        .unwrap();
        assert_eq!(
            text,
            "GET /healthz HTTP/1.1\r\nHost: 10.0.0.5:8080\r\nUser-Agent: mine\r\nAccept: */*\r\nX-A: b\r\n\
             Connection: close\r\n\r\n"
        );
        assert!(request("h", 1, "/a\r\nX: y", &[]).is_err());
        assert!(request("h", 1, "/", &[("X".into(), "a\nb".into())]).is_err());
        assert!(request("::1", 80, "", &[])
            .unwrap()
            .contains("Host: [::1]:80\r\n"));
    }

    #[test]
    fn status_lines_parse() {
        assert_eq!(status_code("HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(
            status_code("HTTP/1.0 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(status_code("SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code("HTTP/1.1 abc\r\n"), None);
        assert_eq!(status_code(""), None);
    }

    #[tokio::test]
    async fn http_and_tcp_probes_against_real_listeners() {
        use crate::runtime::ProcessRuntime;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut codes = [200u16, 503].into_iter().cycle();
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let code = codes.next().unwrap();
                let mut buf = [0u8; 1024];
                let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let runtime = ProcessRuntime::new(dir.path());
        let id = ContainerId {
            pod_uid: "u".into(),
            container: "c".into(),
            attempt: 0,
        };
        let get = Action::HttpGet {
            host: Some("127.0.0.1".into()),
            port,
            path: "/".into(),
            scheme: "HTTP".into(),
            headers: vec![],
        };
        let second = Duration::from_secs(1);
        assert!(run(&runtime, &id, &get, second).await.success);
        let failed = run(&runtime, &id, &get, second).await;
        assert_eq!(failed.message, "HTTP probe failed with statuscode: 503");
        let tcp = Action::TcpSocket {
            host: Some("127.0.0.1".into()),
            port,
        };
        assert!(run(&runtime, &id, &tcp, second).await.success);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        let refused = Action::TcpSocket {
            host: Some("127.0.0.1".into()),
            port: closed_port,
        };
        assert!(!run(&runtime, &id, &refused, second).await.success);
        // An exec in a container the runtime does not know fails, it does not panic.
        let exec = Action::Exec {
            command: vec!["true".into()],
        };
        assert!(!run(&runtime, &id, &exec, second).await.success);
    }
}
