//! Helpers shared by the integration tests: start `navarch` processes and nats-server on free ports, drive the
//! real kubectl with an isolated cache, look at the OS processes pods run as, and clean everything up.

#![allow(dead_code)] // each test file uses its own subset
#![allow(clippy::disallowed_methods)] // wall-clock deadlines are fine in tests; library code uses tokio's clock

use std::io::{BufRead, BufReader, Write as _};

use rustls::pki_types::pem::PemObject as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Generous upper bound for things that should happen in a few seconds; never used to measure speed.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Polls `check` every 200 ms until it returns Some or `PATIENCE` passes; panics with `what` on timeout.
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if std::time::Instant::now() > deadline {
            panic!("timed out after {PATIENCE:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A child process killed (SIGKILL to its process group as a last resort) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                panic!("{} did not exit within {PATIENCE:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    /// SIGTERM first, so a navarch process stops the pod processes it started; SIGKILL after 20 s.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A nats-server on a free port.
pub fn start_nats() -> (Proc, String) {
    // Another process may take the free port before nats-server binds it (other test binaries run meanwhile):
    // then nats-server exits at once, and a connection would reach the other process. Try another port.
    for _ in 0..5 {
        let port = free_port();
        let mut child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be installed (.ci/run installs it)");
        let listening = wait_for("nats-server to listen or exit", || {
            if let Ok(Some(_)) = child.try_wait() {
                return Some(false);
            }
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| true)
        });
        std::thread::sleep(Duration::from_millis(50));
        if listening && matches!(child.try_wait(), Ok(None)) {
            return (
                Proc {
                    child,
                    name: "nats-server".into(),
                },
                format!("nats://127.0.0.1:{port}"),
            );
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("nats-server could not bind a free port in 5 tries");
}

/// The navarch binary built for these tests (logging at its default levels unless `RUST_LOG` says otherwise).
pub fn navarch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_navarch"))
}

/// Starts `navarch <args>`, forwarding its stderr to the test output, and returns it with a receiver of its stdout
/// lines.
pub fn spawn(name: &str, args: &[&str]) -> (Proc, mpsc::Receiver<String>) {
    let mut child = navarch()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start navarch {name}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end even when nobody listens any more: a closed pipe would make the process's next
        // println! fail (EPIPE) and panic it.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("[navarch] {line}");
            let _ = tx.send(line);
        }
    });
    (
        Proc {
            child,
            name: name.to_string(),
        },
        rx,
    )
}

/// Reads stdout lines until one starts with `prefix`; returns the rest of it.
pub fn read_line_starting(rx: &mpsc::Receiver<String>, prefix: &str) -> String {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return rest.trim().to_string();
                }
            }
            Err(e) => panic!("no stdout line starting with {prefix:?}: {e}"),
        }
    }
}

/// `navarch up` on a free API port in a temp data dir.
pub struct Up {
    pub proc: Proc,
    pub kubeconfig: PathBuf,
    pub api: String,
    pub dir: tempfile::TempDir,
}

pub fn start_up(extra: &[&str]) -> Up {
    let dir = tempfile::tempdir().expect("temp dir");
    let (proc, kubeconfig, api) = start_up_at(&dir.path().join("data"), extra);
    Up {
        proc,
        kubeconfig,
        api,
        dir,
    }
}

/// `navarch up` on a free API port with data directory `data`, which the caller keeps (e.g. across restarts);
/// returns the process, the kubeconfig and the API's URL once the API is ready.
pub fn start_up_at(data: &Path, extra: &[&str]) -> (Proc, PathBuf, String) {
    let mut args = vec![
        "up",
        "--api-listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    let (proc, rx) = spawn("up", &args);
    let api = read_line_starting(&rx, "API:");
    let kubeconfig = PathBuf::from(read_line_starting(&rx, "kubeconfig:"));
    trust(&api, &kubeconfig);
    wait_for("the API to be ready", || {
        http_get(&api, "/readyz").filter(|(code, _)| *code == 200)
    });
    (proc, kubeconfig, api)
}

/// Runs the real kubectl against `kubeconfig` with a private discovery cache.
pub struct Kubectl {
    pub kubeconfig: PathBuf,
    cache: tempfile::TempDir,
}

impl Kubectl {
    pub fn new(kubeconfig: &Path) -> Self {
        Self {
            kubeconfig: kubeconfig.to_path_buf(),
            cache: tempfile::tempdir().expect("cache dir"),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.cache.path())
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().expect("run kubectl");
        show(args, &out);
        out
    }

    /// Runs kubectl and returns stdout, panicking with its stderr when it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl with a file given on stdin (`-f -`).
    pub fn apply_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("kubectl output");
        show(args, &out);
        out
    }

    /// Parsed `kubectl get ... -o json`.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("kubectl -o json output")
    }
}

/// Prints a kubectl run the way a shell session would show it.
fn show(args: &[&str], out: &Output) {
    println!(
        "$ kubectl {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How the raw helpers reach an `https://` API: the CA to trust and the token to send.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub ca_pem: Vec<u8>,
    pub token: Option<String>,
}

/// Credentials per API base URL (`https://127.0.0.1:PORT`), so that [`http`] keeps its signature across its many
/// call sites: [`start_up_at`] (or [`trust`]) registers each cluster it starts, and [`connect`] looks the base up.
/// Process-wide because the tests of one file share helpers but not state; ports make the keys unique.
static CREDENTIALS: std::sync::Mutex<Option<std::collections::HashMap<String, Credentials>>> =
    std::sync::Mutex::new(None);

/// Registers what the kubeconfig at `kubeconfig` says (CA, token) for requests to `base`.
pub fn trust(base: &str, kubeconfig: &Path) {
    use base64::Engine as _;
    let text = std::fs::read_to_string(kubeconfig).expect("read the kubeconfig");
    let config: serde_json::Value = serde_norway::from_str(&text).expect("kubeconfig YAML");
    let ca = config["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .expect("certificate-authority-data in the kubeconfig");
    let credentials = Credentials {
        ca_pem: base64::engine::general_purpose::STANDARD
            .decode(ca)
            .expect("base64 CA"),
        token: config["users"][0]["user"]["token"]
            .as_str()
            .map(str::to_string),
    };
    CREDENTIALS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(Default::default)
        .insert(base.trim_end_matches('/').to_string(), credentials);
}

/// What [`trust`] registered for `base`; panics for an `https://` base nobody registered (a test bug).
pub fn credentials(base: &str) -> Option<Credentials> {
    if !base.starts_with("https://") {
        return None;
    }
    let known = CREDENTIALS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|all| all.get(base.trim_end_matches('/')).cloned());
    Some(known.unwrap_or_else(|| {
        panic!("no credentials for {base}: call util::trust(base, kubeconfig) first")
    }))
}

/// A byte stream to an API: plain TCP or TLS.
pub trait Io: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> Io for T {}

/// Connects to the API at `base` (`http://` or `https://` HOST:PORT), over TLS trusting only that cluster's CA,
/// offering only HTTP/1.1 (the raw helpers write HTTP/1.1 by hand). Returns the stream and the `Host` value.
pub fn connect(base: &str) -> Option<(Box<dyn Io>, String)> {
    let addr = base
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let tcp = std::net::TcpStream::connect(&addr).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let Some(credentials) = credentials(base) else {
        return Some((Box::new(tcp), addr));
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&credentials.ca_pem) {
        roots.add(cert.ok()?).ok()?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let host = match addr.parse::<std::net::SocketAddr>() {
        Ok(socket) => socket.ip().to_string(),
        Err(_) => addr.rsplit_once(':')?.0.to_string(),
    };
    let name = rustls::pki_types::ServerName::try_from(host).ok()?;
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).ok()?;
    Some((Box::new(rustls::StreamOwned::new(connection, tcp)), addr))
}

/// The `Authorization` header line (with its CRLF) for `base`, or nothing when its kubeconfig has no token.
pub fn auth_header(base: &str) -> String {
    match credentials(base).and_then(|c| c.token) {
        Some(token) => format!("Authorization: Bearer {token}\r\n"),
        None => String::new(),
    }
}

/// Reads a whole answer up to the server's close. A TLS server may close without close_notify (rustls then says
/// UnexpectedEof); what arrived before still counts.
pub fn read_all(stream: &mut dyn Io) -> Option<Vec<u8>> {
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => Some(raw),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => Some(raw),
        Err(_) => None,
    }
}

/// A minimal HTTP/1.1 client for raw API requests: returns (status code, body). Speaks TLS to `https://` bases,
/// with the credentials [`trust`] registered for them.
pub fn http(
    base: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Option<(u16, String)> {
    request(base, &auth_header(base), method, path, content_type, body)
}

/// [`http`] with the bearer token `token` instead of the kubeconfig's, or with none at all.
pub fn http_as(
    base: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Option<(u16, String)> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    request(base, &auth, method, path, content_type, body)
}

fn request(
    base: &str,
    auth: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Option<(u16, String)> {
    let (mut stream, addr) = connect(base)?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: {content_type}\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    stream.flush().ok()?;
    let raw = read_all(&mut stream)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Some((
        code,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    ))
}

pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn http_get(base: &str, path: &str) -> Option<(u16, String)> {
    http(base, "GET", path, "application/json", b"")
}

/// PIDs of the live (not zombie) processes whose parent is `parent` and whose command line is `argv`.
pub fn children_running(parent: u32, argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let Some(after) = stat
            .rsplit_once(')')
            .map(|(_, a)| a.split_whitespace().collect::<Vec<_>>())
        else {
            continue;
        };
        let (state, ppid) = (
            after.first().copied(),
            after.get(1).and_then(|p| p.parse::<u32>().ok()),
        );
        if ppid != Some(parent) || state == Some("Z") {
            continue;
        }
        if std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want) {
            pids.push(pid);
        }
    }
    pids
}

/// PIDs of every live process (any parent) whose command line is `argv`.
pub fn processes_running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, a)| a.trim_start().starts_with('Z'))
                })
                .unwrap_or(true);
            !zombie && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want)
        })
        .collect()
}

/// Runs `test` inside an actix system on a multi-thread tokio runtime, as the navarch binary does (for tests that
/// start roles in-process).
pub fn run_in_system<T>(test: impl std::future::Future<Output = T>) -> T {
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    });
    system.block_on(test)
}

/// Starts `navarch <args> --nats <url> --cluster <cluster>`: one role of a cluster on a real nats-server.
pub fn spawn_role(
    name: &str,
    (url, cluster): (&str, &str),
    args: &[&str],
) -> (Proc, mpsc::Receiver<String>) {
    spawn(
        name,
        &[args, &["--nats", url, "--cluster", cluster][..]].concat(),
    )
}

/// A control plane as separate processes on a nats-server: one store member and a gateway whose token file holds an
/// admin in `system:masters` (the gateway's kubeconfig carries that token).
pub struct ControlPlane {
    /// The store member (its data in `<dir>/store`).
    pub store: Proc,
    /// The gateway.
    pub gateway: Proc,
    /// The API's base URL.
    pub api: String,
    /// A kubeconfig for the admin, trusting the gateway's CA.
    pub kubeconfig: PathBuf,
}

impl ControlPlane {
    /// Starts the store and the gateway of `cluster` on the nats-server at `url`, keeping their files in `dir`.
    pub fn start((url, cluster): (&str, &str), dir: &Path) -> Self {
        let path = |p: &str| dir.join(p).to_str().expect("utf-8").to_string();
        let (store, _) = spawn_role(
            "store",
            (url, cluster),
            &["store", "--id", "1", "--data-dir", &path("store")],
        );
        let kubeconfig = path("kubeconfig");
        let tokens = path("tokens.csv");
        std::fs::write(
            &tokens,
            format!("{cluster}-admin-token,admin,admin,\"system:masters\"\n"),
        )
        .expect("token file");
        let (gateway, gw_out) = spawn_role(
            "gateway",
            (url, cluster),
            &[
                "gateway",
                "--api-listen",
                "127.0.0.1:0",
                "--kubeconfig",
                &kubeconfig,
                "--pki-dir",
                &path("pki"),
                "--token-auth-file",
                &tokens,
            ],
        );
        let api = read_line_starting(&gw_out, "API:");
        read_line_starting(&gw_out, "kubeconfig:");
        trust(&api, Path::new(&kubeconfig));
        ControlPlane {
            store,
            gateway,
            api,
            kubeconfig: PathBuf::from(kubeconfig),
        }
    }

    /// Waits until the API answers `/readyz` with 200.
    pub fn wait_ready(&self) {
        wait_for("the API to be ready", || {
            http_get(&self.api, "/readyz").filter(|(c, _)| *c == 200)
        });
    }

    /// kubectl as the admin.
    pub fn kubectl(&self) -> Kubectl {
        Kubectl::new(&self.kubeconfig)
    }
}
