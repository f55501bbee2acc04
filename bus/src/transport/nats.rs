//! The NATS transport: core NATS through async-nats (pub/sub, queue groups, headers; no JetStream).

use std::time::Duration;

use futures::StreamExt;

use super::{Message, Outgoing, Subscription, Transport};
use crate::error::{Error, Result};
use crate::headers::Headers;
use crate::subject;

/// A connection to a NATS server or cluster.
#[derive(Clone)]
pub struct Nats {
    client: async_nats::Client,
}

impl Nats {
    /// Connects to `url` (e.g. `nats://127.0.0.1:4222`, or several separated by commas), naming the connection
    /// `name` in the server's monitoring. Keeps reconnecting after a drop; gives up on the first connect after
    /// `connect_timeout`.
    pub async fn connect(url: &str, name: &str, connect_timeout: Duration) -> Result<Self> {
        let options = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(connect_timeout)
            .event_callback(|event| async move {
                tracing::info!(%event, "nats connection event");
            });
        let connect = options.connect(url);
        let client = tokio::time::timeout(connect_timeout, connect)
            .await
            .map_err(|_| Error::Connection(format!("connecting to {url}: timed out")))?
            .map_err(|e| Error::Connection(format!("connecting to {url}: {e}")))?;
        Ok(Self { client })
    }

    /// Waits until the server has processed everything this connection sent so far: a message to a private
    /// subject comes back only after every earlier command (subscriptions included) was handled, since a server
    /// handles one connection's commands in order. async-nats's own `flush` only empties the socket buffer.
    async fn round_trip(&self) -> Result<()> {
        let subject = format!("_INBOX.{}.barrier", uuid::Uuid::new_v4().simple());
        let mut echo = self
            .client
            .subscribe(subject.clone())
            .await
            .map_err(|e| Error::Connection(e.to_string()))?;
        self.client
            .publish(subject, bytes::Bytes::new())
            .await
            .map_err(|e| Error::Connection(e.to_string()))?;
        self.client
            .flush()
            .await
            .map_err(|e| Error::Connection(e.to_string()))?;
        match tokio::time::timeout(Duration::from_secs(10), echo.next()).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Error::Connection("connection closed during flush".into())),
            Err(_) => Err(Error::Connection(
                "server did not answer a flush within 10 s".into(),
            )),
        }
    }

    /// The underlying async-nats client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }
}

fn to_nats_headers(headers: &Headers) -> Result<async_nats::HeaderMap> {
    let mut map = async_nats::HeaderMap::new();
    for (k, v) in headers.iter() {
        let value: async_nats::HeaderValue = v
            .parse()
            .map_err(|_| Error::Codec(format!("header {k} has a value NATS cannot carry")))?;
        map.append(k, value);
    }
    Ok(map)
}

fn from_nats(message: async_nats::Message) -> Message {
    let mut headers = Headers::new();
    if let Some(map) = &message.headers {
        for (name, values) in map.iter() {
            for v in values {
                headers.append(name.to_string(), v.as_str());
            }
        }
    }
    Message {
        subject: message.subject.to_string(),
        reply: message.reply.map(|r| r.to_string()),
        headers,
        payload: message.payload,
        status: message.status.map(|s| s.as_u16()),
    }
}

#[async_trait::async_trait]
impl Transport for Nats {
    async fn publish(&self, out: Outgoing) -> Result<()> {
        subject::validate_publish(&out.subject)?;
        if let Some(reply) = &out.reply {
            subject::validate_publish(reply)?;
        }
        let size = out.payload.len() + out.headers.wire_len();
        let max = self.max_payload();
        if size > max {
            return Err(Error::PayloadTooLarge { size, max });
        }
        let headers = to_nats_headers(&out.headers)?;
        let result = match out.reply {
            Some(reply) => {
                self.client
                    .publish_with_reply_and_headers(out.subject, reply, headers, out.payload)
                    .await
            }
            None => {
                self.client
                    .publish_with_headers(out.subject, headers, out.payload)
                    .await
            }
        };
        result.map_err(|e| match e.kind() {
            async_nats::client::PublishErrorKind::MaxPayloadExceeded => {
                Error::PayloadTooLarge { size, max }
            }
            async_nats::client::PublishErrorKind::InvalidSubject => {
                Error::InvalidSubject(e.to_string())
            }
            async_nats::client::PublishErrorKind::Send => Error::Connection(e.to_string()),
        })
    }

    async fn subscribe(&self, pattern: &str, queue: Option<&str>) -> Result<Subscription> {
        subject::validate_subscribe(pattern)?;
        let subscriber = match queue {
            Some(q) => {
                if q.is_empty() || q.chars().any(char::is_whitespace) {
                    return Err(Error::InvalidSubject(format!("queue group {q:?}")));
                }
                self.client
                    .queue_subscribe(pattern.to_string(), q.to_string())
                    .await
            }
            None => self.client.subscribe(pattern.to_string()).await,
        }
        .map_err(|e| Error::Connection(e.to_string()))?;
        // Return only once the server knows the subscription, so messages published after this call (by anyone)
        // reach it, as on the embedded transport.
        self.round_trip().await?;
        Ok(Subscription::new(subscriber.map(from_nats)))
    }

    async fn flush(&self) -> Result<()> {
        self.round_trip().await
    }

    fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }

    fn name(&self) -> &'static str {
        "nats"
    }
}
