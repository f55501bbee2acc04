//! Serves [`super::answer`] over UDP and TCP (length-prefixed, RFC 1035 4.2.2) on one address, port 53 for pods,
//! and forwards names outside the cluster domain to the host's resolvers, relaying their answers unchanged.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use super::{answer, Reply, SharedRecords};

/// How long one upstream resolver gets to answer a forwarded query before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a TCP client may stay idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// The largest UDP answer without EDNS (RFC 1035); larger ones are truncated so the client retries over TCP.
const UDP_PLAIN_LIMIT: usize = 512;

/// A running DNS server; dropping it stops it.
#[derive(Debug)]
pub struct DnsServer {
    address: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Shared {
    records: SharedRecords,
    upstreams: Vec<IpAddr>,
    upstream_port: u16,
}

/// Serves DNS on `address` (UDP and TCP, same port) from `records`, forwarding other names to `upstreams` on
/// `upstream_port` (53 but in tests). Must be called inside a tokio runtime.
pub async fn start(
    address: SocketAddr,
    records: SharedRecords,
    upstreams: Vec<IpAddr>,
    upstream_port: u16,
) -> std::io::Result<DnsServer> {
    let udp = UdpSocket::bind(address).await?;
    let address = udp.local_addr()?;
    let tcp = TcpListener::bind(address).await?;
    // Never forward to ourselves.
    let upstreams = upstreams
        .into_iter()
        .filter(|ip| SocketAddr::new(*ip, upstream_port) != address)
        .collect();
    let shared = Arc::new(Shared {
        records,
        upstreams,
        upstream_port,
    });
    let tasks = vec![
        tokio::spawn(serve_udp(Arc::new(udp), shared.clone())),
        tokio::spawn(serve_tcp(tcp, shared)),
    ];
    Ok(DnsServer { address, tasks })
}

async fn serve_udp(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "dns: udp receive failed");
                continue;
            }
        };
        let packet = buf[..len].to_vec();
        let (socket, shared) = (socket.clone(), shared.clone());
        tokio::spawn(async move {
            if let Some(reply) = handle(&packet, &shared, false).await {
                let _ = socket.send_to(&reply, from).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = serve_tcp_client(stream, &shared).await;
        });
    }
}

async fn serve_tcp_client(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    loop {
        let Ok(Ok(len)) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await else {
            return Ok(());
        };
        let mut packet = vec![0u8; usize::from(len)];
        stream.read_exact(&mut packet).await?;
        let Some(reply) = handle(&packet, shared, true).await else {
            return Ok(());
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return Ok(());
        };
        stream.write_u16(len).await?;
        stream.write_all(&reply).await?;
    }
}

/// The bytes to send back for one query, or None for a packet that is no DNS message (dropped, as its id cannot be
/// trusted).
async fn handle(packet: &[u8], shared: &Shared, tcp: bool) -> Option<Vec<u8>> {
    let query = Message::from_vec(packet).ok()?;
    let records = shared.records.current();
    match answer(&query, &records, !shared.upstreams.is_empty()) {
        Reply::Answer(response) => encode(*response, &query, tcp),
        Reply::Forward => match forward(packet, shared, tcp).await {
            Some(bytes) => Some(bytes),
            None => {
                let mut failed = Message::error_msg(
                    query.metadata.id,
                    query.metadata.op_code,
                    ResponseCode::ServFail,
                );
                failed.metadata.recursion_desired = query.metadata.recursion_desired;
                failed.metadata.recursion_available = true;
                failed.add_queries(query.queries.clone());
                encode(failed, &query, tcp)
            }
        },
    }
}

/// The response's bytes; over UDP, truncated (TC set, no records) when larger than the client takes.
fn encode(response: Message, query: &Message, tcp: bool) -> Option<Vec<u8>> {
    let bytes = response.to_vec().ok()?;
    let limit = query.edns.as_ref().map_or(UDP_PLAIN_LIMIT, |e| {
        usize::from(e.max_payload()).max(UDP_PLAIN_LIMIT)
    });
    if tcp || bytes.len() <= limit {
        return Some(bytes);
    }
    response.truncate().to_vec().ok()
}

/// The first upstream answer to `packet`, over the same transport the client used.
async fn forward(packet: &[u8], shared: &Shared, tcp: bool) -> Option<Vec<u8>> {
    for ip in &shared.upstreams {
        let upstream = SocketAddr::new(*ip, shared.upstream_port);
        let attempt = async {
            if tcp {
                forward_tcp(packet, upstream).await
            } else {
                forward_udp(packet, upstream).await
            }
        };
        match tokio::time::timeout(UPSTREAM_TIMEOUT, attempt).await {
            Ok(Ok(bytes)) => return Some(bytes),
            Ok(Err(e)) => tracing::debug!(%upstream, error = %e, "dns: upstream failed"),
            Err(_) => tracing::debug!(%upstream, "dns: upstream timed out"),
        }
    }
    None
}

async fn forward_udp(packet: &[u8], upstream: SocketAddr) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(packet).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let len = socket.recv(&mut buf).await?;
        // Only the answer to this query (same id) counts.
        if len >= 2 && packet.len() >= 2 && buf[..2] == packet[..2] {
            buf.truncate(len);
            return Ok(buf);
        }
    }
}

async fn forward_tcp(packet: &[u8], upstream: SocketAddr) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    let len = u16::try_from(packet.len()).map_err(std::io::Error::other)?;
    stream.write_u16(len).await?;
    stream.write_all(packet).await?;
    let len = stream.read_u16().await?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}
