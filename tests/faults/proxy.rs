//! A TCP proxy between one store member and NATS, so a test can cut the member off the network or move it to
//! another NATS server: a real partition, seen by the member as lost and refused connections.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// Where the proxy sends what it accepts.
#[derive(Default)]
struct Route {
    /// `None`: connections are accepted and dropped at once (the network is cut).
    upstream: Option<SocketAddr>,
    /// The connections being relayed, to drop them when the route changes.
    relays: Vec<AbortHandle>,
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    port: u16,
    route: Arc<Mutex<Route>>,
    accept: AbortHandle,
}

impl Proxy {
    /// A proxy on a free loopback port relaying to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let route = Arc::new(Mutex::new(Route {
            upstream: Some(upstream),
            relays: Vec::new(),
        }));
        let accepting = route.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = accepting.lock().expect("route").upstream;
                let Some(upstream) = upstream else {
                    drop(client); // cut: the member sees its connection refused at once
                    continue;
                };
                let relay = tokio::spawn(relay(client, upstream));
                let mut route = accepting.lock().expect("route");
                route.relays.retain(|r| !r.is_finished());
                route.relays.push(relay.abort_handle());
                // The route may have changed while this connection was being set up.
                if route.upstream != Some(upstream) {
                    relay.abort();
                }
            }
        })
        .abort_handle();
        Proxy {
            port,
            route,
            accept,
        }
    }

    /// The URL a member connects to.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Drops every relayed connection and sends new ones to `upstream` (`None`: refuse them).
    pub fn route_to(&self, upstream: Option<SocketAddr>) {
        let mut route = self.route.lock().expect("route");
        route.upstream = upstream;
        for relay in route.relays.drain(..) {
            relay.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.route_to(None);
    }
}

/// Copies bytes both ways until either side closes; aborting the task closes both sockets.
async fn relay(mut client: TcpStream, upstream: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
