//! [`Bus`]: the handle every role holds. Publish, subscribe, queue groups, and request/reply with timeouts,
//! a distinct no-responders error and requests and replies of any size, over either transport. Every message it
//! sends carries the W3C trace context.
//!
//! A reply larger than one message is split into parts (`Navarch-Chunk: i/n`) sent to the requester's inbox. A
//! request larger than one message cannot be split the same way (parts sent to a queue group would reach different
//! members), so it is *pulled*: the request carries only `Navarch-Body: <subject>` and `Navarch-Body-Size`, and the
//! responder, through [`Bus::request_body`], asks that subject of the requester's inbox for the body, which comes
//! back as an ordinary (chunked) reply.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::mpsc;

use crate::codec;
use crate::error::{Error, Result};
use crate::headers::Headers;
use crate::subject::Subjects;
use crate::trace;
use crate::transport::{
    embedded::Embedded, nats::Nats, Message, Outgoing, Subscription, Transport,
    STATUS_NO_RESPONDERS,
};

/// Header naming a reply's part, as `i/n` (1-based), when a reply is larger than one message.
pub const CHUNK_HEADER: &str = "Navarch-Chunk";

/// Header of a request whose body is too large for one message: the subject to fetch it from.
pub const BODY_HEADER: &str = "Navarch-Body";

/// Header giving the size in bytes of a pulled request body.
pub const BODY_SIZE_HEADER: &str = "Navarch-Body-Size";

/// Room left in each message for headers when a reply is split.
const CHUNK_HEADROOM: usize = 16 * 1024;

type Pending = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Message>>>>;

/// Request bodies waiting to be pulled, by inbox token.
type Bodies = Arc<Mutex<HashMap<String, Bytes>>>;

struct Inner {
    transport: Arc<dyn Transport>,
    subjects: Subjects,
    inbox_prefix: String,
    pending: Pending,
    bodies: Bodies,
    next_token: AtomicU64,
    inbox_task: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.inbox_task.abort();
    }
}

/// A connection to the bus of one cluster. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("transport", &self.inner.transport.name())
            .field("prefix", &self.inner.subjects.prefix())
            .finish()
    }
}

impl Bus {
    /// A bus over `transport` for the cluster named `cluster`.
    pub async fn new(transport: Arc<dyn Transport>, cluster: &str) -> Result<Self> {
        let inbox_prefix = format!("_INBOX.{}", uuid::Uuid::new_v4().simple());
        let mut inbox = transport
            .subscribe(&format!("{inbox_prefix}.*"), None)
            .await?;
        let pending: Pending = Arc::default();
        let bodies: Bodies = Arc::default();
        let routes = pending.clone();
        let (serving, sender) = (bodies.clone(), transport.clone());
        let inbox_task = tokio::spawn(async move {
            while let Some(message) = inbox.next().await {
                let token = message.subject.rsplit('.').next().unwrap_or_default();
                if token.starts_with('b') {
                    // A responder pulling a request body: answer from the bodies waiting here.
                    let body = serving
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(token)
                        .cloned();
                    if let Some(body) = body {
                        let sender = sender.clone();
                        tokio::spawn(async move {
                            if let Err(e) =
                                respond_on(sender.as_ref(), &message, Headers::new(), body).await
                            {
                                tracing::debug!(error = %e, "could not send a request body");
                            }
                        });
                    }
                    continue;
                }
                let route = routes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(token)
                    .cloned();
                if let Some(tx) = route {
                    let _ = tx.send(message);
                }
            }
        });
        transport.flush().await?;
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                subjects: Subjects::new(cluster),
                inbox_prefix,
                pending,
                bodies,
                next_token: AtomicU64::new(1),
                inbox_task,
            }),
        })
    }

    /// A bus on a fresh embedded (in-process) router. Share it by cloning the returned handle or by building more
    /// buses on [`Bus::transport`].
    pub async fn embedded(cluster: &str) -> Result<Self> {
        Self::new(Arc::new(Embedded::new()), cluster).await
    }

    /// A bus over a NATS server at `url`.
    pub async fn nats(url: &str, cluster: &str, connection_name: &str) -> Result<Self> {
        let nats = Nats::connect(url, connection_name, Duration::from_secs(10)).await?;
        Self::new(Arc::new(nats), cluster).await
    }

    /// The transport underneath.
    pub fn transport(&self) -> Arc<dyn Transport> {
        self.inner.transport.clone()
    }

    /// Names of this cluster's subjects.
    pub fn subjects(&self) -> &Subjects {
        &self.inner.subjects
    }

    /// The largest message the transport carries.
    pub fn max_payload(&self) -> usize {
        self.inner.transport.max_payload()
    }

    /// Publishes `payload` on `subject`, adding the current trace context to `headers`.
    pub async fn publish(&self, subject: &str, mut headers: Headers, payload: Bytes) -> Result<()> {
        trace::inject(&mut headers);
        self.inner
            .transport
            .publish(Outgoing {
                subject: subject.to_string(),
                reply: None,
                headers,
                payload,
            })
            .await
    }

    /// Publishes `value` encoded with the bus codec.
    pub async fn publish_encoded<T: Serialize>(&self, subject: &str, value: &T) -> Result<()> {
        self.publish(subject, Headers::new(), codec::encode(value)?.into())
            .await
    }

    /// Subscribes to `subject` (wildcards allowed).
    pub async fn subscribe(&self, subject: &str) -> Result<Subscription> {
        self.inner.transport.subscribe(subject, None).await
    }

    /// Subscribes to `subject` as a member of queue group `group`: each message goes to one member.
    pub async fn queue_subscribe(&self, subject: &str, group: &str) -> Result<Subscription> {
        self.inner.transport.subscribe(subject, Some(group)).await
    }

    /// Waits until the bus has handled everything this connection sent so far (with NATS: a round trip to the
    /// server).
    pub async fn flush(&self) -> Result<()> {
        self.inner.transport.flush().await
    }

    /// Sends a request and waits up to `timeout` for the whole reply.
    ///
    /// Errors: [`Error::NoResponders`] when nobody subscribes to `subject`, [`Error::Timeout`] when nobody answered
    /// in time (or a part of a chunked reply was lost).
    pub async fn request(
        &self,
        subject: &str,
        mut headers: Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Message> {
        let token = self
            .inner
            .next_token
            .fetch_add(1, Ordering::Relaxed)
            .to_string();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _route = Route::add(&self.inner.pending, token.clone(), tx);
        trace::inject(&mut headers);
        // Too large for one message: offer the body for the responder to pull while the request is open.
        let mut _body = None;
        let payload = if payload.len() + headers.wire_len() + CHUNK_HEADROOM > self.max_payload() {
            let body_token = format!("b{token}");
            headers.insert(
                BODY_HEADER,
                format!("{}.{body_token}", self.inner.inbox_prefix),
            );
            headers.insert(BODY_SIZE_HEADER, payload.len().to_string());
            _body = Some(Body::add(&self.inner.bodies, body_token, payload));
            Bytes::new()
        } else {
            payload
        };
        self.inner
            .transport
            .publish(Outgoing {
                subject: subject.to_string(),
                reply: Some(format!("{}.{token}", self.inner.inbox_prefix)),
                headers,
                payload,
            })
            .await?;
        let timed_out = || Error::Timeout {
            subject: subject.to_string(),
            timeout,
        };
        let collect = async {
            let mut parts: Vec<Option<Bytes>> = Vec::new();
            let mut first_headers = None;
            while let Some(message) = rx.recv().await {
                if message.status == Some(STATUS_NO_RESPONDERS) {
                    return Err(Error::NoResponders {
                        subject: subject.to_string(),
                    });
                }
                let Some((index, total)) = message.headers.get(CHUNK_HEADER).and_then(parse_chunk)
                else {
                    return Ok(message);
                };
                if parts.is_empty() {
                    parts = vec![None; total];
                }
                if total != parts.len() || index >= total {
                    return Err(Error::Codec(format!(
                        "reply part {index}/{total} does not fit a reply of {} parts",
                        parts.len()
                    )));
                }
                if index == 0 {
                    first_headers = Some(message.headers.clone());
                }
                parts[index] = Some(message.payload.clone());
                if parts.iter().all(Option::is_some) {
                    let mut whole =
                        Vec::with_capacity(parts.iter().flatten().map(Bytes::len).sum());
                    for part in parts.iter().flatten() {
                        whole.extend_from_slice(part);
                    }
                    let mut headers = first_headers.take().unwrap_or_default();
                    headers.remove(CHUNK_HEADER);
                    return Ok(Message {
                        payload: whole.into(),
                        headers,
                        ..message
                    });
                }
            }
            Err(Error::Connection(
                "bus closed while waiting for a reply".into(),
            ))
        };
        tokio::time::timeout(timeout, collect)
            .await
            .map_err(|_| timed_out())?
    }

    /// Sends `request` encoded with the bus codec and decodes the reply as `R`.
    pub async fn request_encoded<Q: Serialize, R: DeserializeOwned>(
        &self,
        subject: &str,
        request: &Q,
        timeout: Duration,
    ) -> Result<R> {
        let reply = self
            .request(
                subject,
                Headers::new(),
                codec::encode(request)?.into(),
                timeout,
            )
            .await?;
        codec::decode(&reply.payload)
    }

    /// Answers `request` with `payload`, split into parts when it is larger than one message may be. A request
    /// without a reply subject is answered by nobody (Ok).
    pub async fn respond(&self, request: &Message, headers: Headers, payload: Bytes) -> Result<()> {
        respond_on(self.inner.transport.as_ref(), request, headers, payload).await
    }

    /// The body of a request: its payload, or, for a request too large for one message, the body pulled from the
    /// requester. A body over `max` bytes is refused with [`Error::PayloadTooLarge`] before it is fetched.
    pub async fn request_body(
        &self,
        request: &Message,
        max: usize,
        timeout: Duration,
    ) -> Result<Bytes> {
        let Some(source) = request.headers.get(BODY_HEADER) else {
            if request.payload.len() > max {
                return Err(Error::PayloadTooLarge {
                    size: request.payload.len(),
                    max,
                });
            }
            return Ok(request.payload.clone());
        };
        let size: usize = request
            .headers
            .get(BODY_SIZE_HEADER)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Codec(format!("{BODY_SIZE_HEADER} missing or not a number")))?;
        if size > max {
            return Err(Error::PayloadTooLarge { size, max });
        }
        let body = self
            .request(source, Headers::new(), Bytes::new(), timeout)
            .await?
            .payload;
        if body.len() != size {
            return Err(Error::Codec(format!(
                "request body has {} bytes, {BODY_SIZE_HEADER} said {size}",
                body.len()
            )));
        }
        Ok(body)
    }

    /// Answers `request` with `value` encoded with the bus codec.
    pub async fn respond_encoded<T: Serialize>(&self, request: &Message, value: &T) -> Result<()> {
        self.respond(request, Headers::new(), codec::encode(value)?.into())
            .await
    }
}

/// Answers `request` on `transport`, splitting a payload too large for one message into `Navarch-Chunk` parts.
async fn respond_on(
    transport: &dyn Transport,
    request: &Message,
    mut headers: Headers,
    payload: Bytes,
) -> Result<()> {
    let Some(reply) = &request.reply else {
        return Ok(());
    };
    trace::inject(&mut headers);
    let max = transport.max_payload();
    if payload.len() + headers.wire_len() <= max {
        return transport
            .publish(Outgoing {
                subject: reply.clone(),
                reply: None,
                headers,
                payload,
            })
            .await;
    }
    let room = max
        .saturating_sub(headers.wire_len() + CHUNK_HEADROOM)
        .max(1024);
    let total = payload.len().div_ceil(room);
    for (index, start) in (0..payload.len()).step_by(room).enumerate() {
        let mut part_headers = headers.clone();
        part_headers.insert(CHUNK_HEADER, format!("{}/{total}", index + 1));
        let end = (start + room).min(payload.len());
        transport
            .publish(Outgoing {
                subject: reply.clone(),
                reply: None,
                headers: part_headers,
                payload: payload.slice(start..end),
            })
            .await?;
    }
    Ok(())
}

/// Parses `i/n` (1-based) into a 0-based index and a count.
fn parse_chunk(value: &str) -> Option<(usize, usize)> {
    let (i, n) = value.split_once('/')?;
    let (i, n): (usize, usize) = (i.parse().ok()?, n.parse().ok()?);
    (i >= 1 && n >= 1 && i <= n && n <= 1 << 20).then(|| (i - 1, n))
}

/// Withdraws a request body offered for pulling when the request ends, however it ends.
struct Body {
    bodies: Bodies,
    token: String,
}

impl Body {
    fn add(bodies: &Bodies, token: String, body: Bytes) -> Self {
        bodies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.clone(), body);
        Self {
            bodies: bodies.clone(),
            token,
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        self.bodies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.token);
    }
}

/// Removes a pending reply route when the request ends, however it ends.
struct Route {
    pending: Pending,
    token: String,
}

impl Route {
    fn add(pending: &Pending, token: String, tx: mpsc::UnboundedSender<Message>) -> Self {
        pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.clone(), tx);
        Self {
            pending: pending.clone(),
            token,
        }
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_chunk;

    #[test]
    fn chunk_headers_parse_strictly() {
        assert_eq!(parse_chunk("1/3"), Some((0, 3)));
        assert_eq!(parse_chunk("3/3"), Some((2, 3)));
        for bad in ["0/3", "4/3", "x/3", "1/", "", "1/0"] {
            assert_eq!(parse_chunk(bad), None, "{bad}");
        }
    }
}
