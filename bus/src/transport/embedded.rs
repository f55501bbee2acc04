//! The embedded transport: an in-process router with NATS's semantics, the zero-install default of `navarch up`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;

use super::{Message, Outgoing, Subscription, Transport, STATUS_NO_RESPONDERS};
use crate::error::{Error, Result};
use crate::headers::Headers;
use crate::subject;

/// Same as nats-server's default `max_payload`, so a message that fits here fits on NATS too.
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// Messages a subscription buffers before it counts as a slow consumer and loses messages
/// (async-nats's default subscription capacity).
const SUBSCRIPTION_CAPACITY: usize = 65_536;

struct Entry {
    id: u64,
    pattern: String,
    queue: Option<String>,
    tx: mpsc::Sender<Message>,
}

#[derive(Default)]
struct Router {
    entries: RwLock<Vec<Entry>>,
    next_id: AtomicU64,
    round_robin: AtomicU64,
}

/// An in-process bus. Clones share one router.
#[derive(Clone)]
pub struct Embedded {
    router: Arc<Router>,
    max_payload: usize,
}

impl Default for Embedded {
    fn default() -> Self {
        Self::new()
    }
}

impl Embedded {
    /// A new, empty router with NATS's default payload limit.
    pub fn new() -> Self {
        Self {
            router: Arc::new(Router::default()),
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }

    fn deliver(&self, message: Message) -> usize {
        let entries = self
            .router
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let mut delivered = 0;
        let mut groups: HashMap<&str, Vec<&Entry>> = HashMap::new();
        for entry in entries.iter() {
            if !subject::matches(&entry.pattern, &message.subject) {
                continue;
            }
            match &entry.queue {
                Some(group) => groups.entry(group.as_str()).or_default().push(entry),
                None => {
                    if send(entry, message.clone()) {
                        delivered += 1;
                    }
                }
            }
        }
        for members in groups.values() {
            let live: Vec<&&Entry> = members.iter().filter(|e| !e.tx.is_closed()).collect();
            if live.is_empty() {
                continue;
            }
            let pick =
                self.router.round_robin.fetch_add(1, Ordering::Relaxed) as usize % live.len();
            if send(live[pick], message.clone()) {
                delivered += 1;
            }
        }
        delivered
    }
}

fn send(entry: &Entry, message: Message) -> bool {
    match entry.tx.try_send(message) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(m)) => {
            tracing::warn!(subject = %m.subject, pattern = %entry.pattern, "slow consumer: message dropped");
            // The message matched a live subscriber, so the publisher must not be told "no responders".
            true
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

#[async_trait::async_trait]
impl Transport for Embedded {
    async fn publish(&self, out: Outgoing) -> Result<()> {
        subject::validate_publish(&out.subject)?;
        if let Some(reply) = &out.reply {
            subject::validate_publish(reply)?;
        }
        let size = out.payload.len() + out.headers.wire_len();
        if size > self.max_payload {
            return Err(Error::PayloadTooLarge {
                size,
                max: self.max_payload,
            });
        }
        let reply = out.reply.clone();
        let delivered = self.deliver(Message {
            subject: out.subject,
            reply: out.reply,
            headers: out.headers,
            payload: out.payload,
            status: None,
        });
        if delivered == 0 {
            if let Some(reply) = reply {
                self.deliver(Message {
                    subject: reply,
                    reply: None,
                    headers: Headers::new(),
                    payload: Bytes::new(),
                    status: Some(STATUS_NO_RESPONDERS),
                });
            }
        }
        Ok(())
    }

    async fn subscribe(&self, pattern: &str, queue: Option<&str>) -> Result<Subscription> {
        subject::validate_subscribe(pattern)?;
        if let Some(q) = queue {
            if q.is_empty() || q.chars().any(char::is_whitespace) {
                return Err(Error::InvalidSubject(format!("queue group {q:?}")));
            }
        }
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_CAPACITY);
        let id = self.router.next_id.fetch_add(1, Ordering::Relaxed);
        self.router
            .entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Entry {
                id,
                pattern: pattern.to_string(),
                queue: queue.map(str::to_string),
                tx,
            });
        Ok(Subscription::new(EmbeddedStream {
            rx,
            guard: Unsubscribe {
                router: self.router.clone(),
                id,
            },
        }))
    }

    async fn flush(&self) -> Result<()> {
        // Delivery is synchronous: once publish returned, the message sits in the subscribers' queues.
        Ok(())
    }

    fn max_payload(&self) -> usize {
        self.max_payload
    }

    fn name(&self) -> &'static str {
        "embedded"
    }
}

struct Unsubscribe {
    router: Arc<Router>,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        self.router
            .entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|e| e.id != self.id);
    }
}

struct EmbeddedStream {
    rx: mpsc::Receiver<Message>,
    #[allow(dead_code)] // held for its Drop: unsubscribes
    guard: Unsubscribe,
}

impl Stream for EmbeddedStream {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.rx.poll_recv(cx)
    }
}
