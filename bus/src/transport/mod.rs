//! The transport contract and its two implementations: NATS and the embedded in-process bus.
//!
//! A transport only moves messages; request/reply, chunking, trace context and encoding live above it in
//! [`crate::Bus`], so both transports share them.
//!
//! # To be correct, a transport must
//! - deliver a published message to every plain subscription whose pattern matches its subject (`*` one token,
//!   `>` one or more trailing tokens), and to exactly one member of each queue group whose pattern matches;
//! - keep the order of messages from one publisher to one subscription;
//! - refuse subjects that [`crate::subject`] rejects and payloads (with headers) over [`Transport::max_payload`],
//!   with [`crate::Error::InvalidSubject`] and [`crate::Error::PayloadTooLarge`];
//! - answer a message published with a reply subject that no subscription matched by delivering a message with
//!   status 503 (no responders) and an empty payload to that reply subject;
//! - deliver to a subscription every matching message published after `subscribe` returned, by any connection;
//! - stop delivering to a subscription once it is dropped;
//! - deliver at most once: a subscriber that cannot keep up may lose messages, never receive duplicates.

pub mod embedded;
pub mod nats;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;

use crate::error::Result;
use crate::headers::Headers;

/// Status code of a "no responders" notice, as NATS sends it.
pub const STATUS_NO_RESPONDERS: u16 = 503;

/// A message as delivered to a subscriber.
#[derive(Debug, Clone)]
pub struct Message {
    /// The subject it was published on.
    pub subject: String,
    /// Where the publisher wants an answer, if anywhere.
    pub reply: Option<String>,
    /// Its headers (always present, possibly empty).
    pub headers: Headers,
    /// Its body.
    pub payload: Bytes,
    /// A status set by the transport itself (503: no responders), never by a publisher.
    pub status: Option<u16>,
}

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Subject to publish on (no wildcards).
    pub subject: String,
    /// Reply subject, for requests.
    pub reply: Option<String>,
    /// Headers to send.
    pub headers: Headers,
    /// Body.
    pub payload: Bytes,
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    stream: Pin<Box<dyn Stream<Item = Message> + Send>>,
}

impl Subscription {
    /// Wraps a transport's stream of messages.
    pub fn new(stream: impl Stream<Item = Message> + Send + 'static) -> Self {
        Self {
            stream: Box::pin(stream),
        }
    }

    /// The next message, or `None` once the transport closed the subscription.
    pub async fn next(&mut self) -> Option<Message> {
        futures::StreamExt::next(&mut self.stream).await
    }
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.stream.as_mut().poll_next(cx)
    }
}

/// A way of moving messages between roles. See the module docs for what an implementation must guarantee.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Publishes one message.
    async fn publish(&self, message: Outgoing) -> Result<()>;

    /// Subscribes to `subject` (wildcards allowed); with `queue`, joins that queue group.
    async fn subscribe(&self, subject: &str, queue: Option<&str>) -> Result<Subscription>;

    /// Waits until the bus has handled everything this connection sent so far.
    async fn flush(&self) -> Result<()>;

    /// The largest payload plus headers, in bytes, one message may carry.
    fn max_payload(&self) -> usize;

    /// A short name for logs ("nats", "embedded").
    fn name(&self) -> &'static str;
}
