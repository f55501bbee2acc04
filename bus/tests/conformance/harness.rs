//! Two bus connections to one transport: the embedded router or a nats-server started for the test.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use navarch_bus::transport::embedded::Embedded;
use navarch_bus::Bus;

/// A nats-server child process, killed when dropped.
pub struct NatsServer {
    child: Child,
    pub url: String,
}

impl NatsServer {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "nats-server must be installed (apt-get install nats-server); .ci/run installs it",
            );
        let url = format!("nats://127.0.0.1:{port}");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { child, url };
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("nats-server did not listen on {port}");
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Harness {
    /// One connection.
    pub a: Bus,
    /// Another connection to the same transport.
    pub b: Bus,
    _server: Option<NatsServer>,
}

impl Harness {
    pub async fn embedded() -> Self {
        let router = Arc::new(Embedded::new());
        Self {
            a: Bus::new(router.clone(), "test").await.expect("bus a"),
            b: Bus::new(router, "test").await.expect("bus b"),
            _server: None,
        }
    }

    pub async fn nats() -> Self {
        let server = NatsServer::start();
        Self {
            a: Bus::nats(&server.url, "test", "conformance-a")
                .await
                .expect("bus a"),
            b: Bus::nats(&server.url, "test", "conformance-b")
                .await
                .expect("bus b"),
            _server: Some(server),
        }
    }
}
