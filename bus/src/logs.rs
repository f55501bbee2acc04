//! `kubectl logs` over the bus: the request a gateway sends to a node agent, the numbered chunks streamed back,
//! and the two ends of that stream ([`ChunkSender`], [`ChunkReceiver`]).
//!
//! The flow: the gateway subscribes to a fresh inbox ([`inbox`]), sends a [`LogRequest`] naming it to the node's
//! agent subject ([`crate::Subjects::agent`]) and gets a [`LogReply`] at once (accepted, or why not). The agent then
//! sends each [`LogChunk`] as a bus *request* to the inbox and waits for the gateway's empty acknowledgement before
//! the next one. That gives backpressure (a slow HTTP client slows the agent down, nothing piles up) and liveness:
//! once the client goes away the gateway drops the subscription, the agent's next send meets no responders, and it
//! stops. While following with nothing new, the agent sends an empty chunk every [`HEARTBEAT`], so a dead gateway
//! is noticed within one heartbeat and a dead agent within [`SILENCE_LIMIT`].
//!
//! NATS core delivers at most once, so chunks are numbered from 1: a lost acknowledgement makes the agent send the
//! same chunk again (the receiver acknowledges and drops the duplicate); a lost chunk shows as a gap, which ends the
//! stream rather than silently dropping lines.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::Bus;
use crate::codec;
use crate::error::Error;
use crate::headers::Headers;
use crate::subject::Subjects;
use crate::transport::{Subscription, STATUS_NO_RESPONDERS};

/// Most log bytes in one chunk: far under NATS's 1 MiB default payload, and small enough that one slow client
/// holds little memory anywhere.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// How often a following agent sends an empty chunk when the log has nothing new.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// How long the agent waits for the gateway to acknowledge one chunk. Long, because the gateway acknowledges
/// only once the HTTP client has taken the previous data (backpressure).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the gateway waits for the next chunk before it gives the agent up (three heartbeats).
pub const SILENCE_LIMIT: Duration = Duration::from_secs(15);

/// How many times the agent sends one chunk when its acknowledgement does not come in time.
const SEND_ATTEMPTS: u32 = 2;

/// Asks a node agent for one container's log. Sent to [`crate::Subjects::agent`] of the pod's node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRequest {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's `metadata.uid` (a pod re-created under the same name is another pod).
    pub uid: String,
    /// The container's name.
    pub container: String,
    /// Only the last this many lines (`tailLines`).
    pub tail_lines: Option<i64>,
    /// Stop after this many bytes (`limitBytes`).
    pub limit_bytes: Option<i64>,
    /// Keep sending what the container writes until it exits or the client goes away (`follow`).
    pub follow: bool,
    /// The log of the container's previous instance instead of the current one (`previous`).
    pub previous: bool,
    /// Only what was written in the last this many seconds (`sinceSeconds`), by the node's clock.
    pub since_seconds: Option<i64>,
    /// Only what was written at or after this RFC 3339 time (`sinceTime`).
    pub since_time: Option<String>,
    /// Each line with the time it was written first (`timestamps`).
    pub timestamps: bool,
    /// Where to send the chunks (see [`inbox`]).
    pub inbox: String,
}

/// The agent's immediate answer to a [`LogRequest`]: accepted (chunks follow on the inbox) or refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogReply {
    /// Why the request is refused, as a user should read it; `None` when chunks follow.
    pub error: Option<String>,
}

/// One piece of a log stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    /// 1 for the first chunk, then one more per chunk.
    pub seq: u64,
    /// Log bytes (empty for a heartbeat or the last chunk).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// The stream ends with this chunk.
    pub end: bool,
    /// Why the stream ended early, when it did.
    pub error: Option<String>,
}

/// A fresh subject for one log stream's chunks.
pub fn inbox(subjects: &Subjects) -> String {
    format!(
        "{}.logs.{}",
        subjects.prefix(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Why a log stream stopped before its last chunk.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The other end is gone: no subscriber on the inbox (the HTTP client left), or the subscription closed. Not
    /// retryable; the stream is over.
    #[error("the other end of the log stream is gone")]
    Gone,
    /// A chunk was lost on the way. Not retryable: the lines in it are gone from this stream.
    #[error("log chunk {expected} was lost (got chunk {got})")]
    Gap {
        /// The chunk that should have come.
        expected: u64,
        /// The chunk that came.
        got: u64,
    },
    /// Nothing (not even a heartbeat) came for this long: the agent is gone. Retryable with a new request.
    #[error("no log chunk for {0:?}")]
    Silent(Duration),
    /// The bus failed, or a peer sent something that is not a chunk. Retryable with a new request.
    #[error("log stream: {0}")]
    Bus(#[from] Error),
}

/// The agent's end: sends numbered chunks to the inbox, each after the previous one was acknowledged.
#[derive(Debug)]
pub struct ChunkSender {
    bus: Bus,
    inbox: String,
    next: u64,
    ack_timeout: Duration,
}

impl ChunkSender {
    /// Sends chunks to `inbox` on `bus`.
    pub fn new(bus: Bus, inbox: String) -> Self {
        Self::with_ack_timeout(bus, inbox, ACK_TIMEOUT)
    }

    /// Like [`ChunkSender::new`], waiting `ack_timeout` for each acknowledgement (tests shorten it).
    pub fn with_ack_timeout(bus: Bus, inbox: String, ack_timeout: Duration) -> Self {
        Self {
            bus,
            inbox,
            next: 1,
            ack_timeout,
        }
    }

    /// Sends `data` (split into [`CHUNK_BYTES`] pieces) and waits for each piece's acknowledgement. Empty `data`
    /// sends one empty chunk (a heartbeat).
    pub async fn send(&mut self, data: &[u8]) -> Result<(), StreamError> {
        if data.is_empty() {
            return self.send_chunk(Vec::new(), false, None).await;
        }
        for piece in data.chunks(CHUNK_BYTES) {
            self.send_chunk(piece.to_vec(), false, None).await?;
        }
        Ok(())
    }

    /// Sends the last chunk, with `error` if the stream ends because of one.
    pub async fn finish(mut self, error: Option<String>) -> Result<(), StreamError> {
        self.send_chunk(Vec::new(), true, error).await
    }

    async fn send_chunk(
        &mut self,
        data: Vec<u8>,
        end: bool,
        error: Option<String>,
    ) -> Result<(), StreamError> {
        let chunk = LogChunk {
            seq: self.next,
            data,
            end,
            error,
        };
        let payload: bytes::Bytes = codec::encode(&chunk)?.into();
        let mut attempt = 1;
        loop {
            let sent = self
                .bus
                .request(
                    &self.inbox,
                    Headers::new(),
                    payload.clone(),
                    self.ack_timeout,
                )
                .await;
            match sent {
                Ok(_) => break,
                Err(Error::NoResponders { .. }) => return Err(StreamError::Gone),
                // The chunk or its acknowledgement was lost: the receiver drops a chunk it already has.
                Err(Error::Timeout { .. }) if attempt < SEND_ATTEMPTS => attempt += 1,
                Err(Error::Timeout { .. }) => return Err(StreamError::Gone),
                Err(e) => return Err(e.into()),
            }
        }
        self.next += 1;
        Ok(())
    }
}

/// What the receiver makes of a chunk's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// The chunk expected next.
    Next,
    /// A chunk already taken (its acknowledgement was lost and it came again).
    Duplicate,
    /// A later chunk: the ones between were lost.
    Gap {
        /// The chunk that should have come.
        expected: u64,
    },
}

/// Tracks which chunk comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sequence {
    next: u64,
}

impl Default for Sequence {
    fn default() -> Self {
        Self { next: 1 }
    }
}

impl Sequence {
    /// Classifies chunk `seq`, and moves on when it is the next one.
    pub fn check(&mut self, seq: u64) -> Order {
        if seq == self.next {
            self.next += 1;
            Order::Next
        } else if seq < self.next {
            Order::Duplicate
        } else {
            Order::Gap {
                expected: self.next,
            }
        }
    }
}

/// The gateway's end: takes chunks from the inbox in order, acknowledging each.
pub struct ChunkReceiver {
    bus: Bus,
    subscription: Subscription,
    sequence: Sequence,
    silence_limit: Duration,
    done: bool,
}

impl std::fmt::Debug for ChunkReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkReceiver")
            .field("sequence", &self.sequence)
            .field("done", &self.done)
            .finish()
    }
}

impl ChunkReceiver {
    /// Subscribes to `inbox` on `bus`; do this before sending the request that names it.
    pub async fn subscribe(bus: &Bus, inbox: &str) -> Result<Self, Error> {
        Self::subscribe_with(bus, inbox, SILENCE_LIMIT).await
    }

    /// Like [`ChunkReceiver::subscribe`], giving up after `silence_limit` without a chunk (tests shorten it).
    pub async fn subscribe_with(
        bus: &Bus,
        inbox: &str,
        silence_limit: Duration,
    ) -> Result<Self, Error> {
        let subscription = bus.subscribe(inbox).await?;
        Ok(Self {
            bus: bus.clone(),
            subscription,
            sequence: Sequence::default(),
            silence_limit,
            done: false,
        })
    }

    /// The next chunk in order (possibly an empty heartbeat, or the last one with `end`, carrying the agent's
    /// error if it had one); `None` once the last chunk or an error was returned.
    pub async fn next_chunk(&mut self) -> Option<Result<LogChunk, StreamError>> {
        if self.done {
            return None;
        }
        let result = self.receive().await;
        if matches!(&result, Err(_) | Ok(LogChunk { end: true, .. })) {
            self.done = true;
        }
        Some(result)
    }

    async fn receive(&mut self) -> Result<LogChunk, StreamError> {
        loop {
            let message = tokio::time::timeout(self.silence_limit, self.subscription.next())
                .await
                .map_err(|_| StreamError::Silent(self.silence_limit))?
                .ok_or(StreamError::Gone)?;
            if message.status == Some(STATUS_NO_RESPONDERS) {
                continue;
            }
            let chunk: LogChunk = codec::decode(&message.payload)?;
            match self.sequence.check(chunk.seq) {
                Order::Gap { expected } => {
                    return Err(StreamError::Gap {
                        expected,
                        got: chunk.seq,
                    })
                }
                order => {
                    // Acknowledged only now, when the previous chunk has been taken: the sender's pace is ours.
                    self.bus
                        .respond(&message, Headers::new(), bytes::Bytes::new())
                        .await?;
                    if order == Order::Next {
                        return Ok(chunk);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "logs_tests.rs"]
mod tests;
