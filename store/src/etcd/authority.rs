//! Makes etcd 3.4 clients' HTTP/2 requests acceptable to the HTTP/2 server here: every `:authority` a client sends
//! is replaced by a short valid one before the server reads it.
//!
//! etcd 3.4's client dials some calls (`etcdctl --endpoints=http://host:port endpoint status`, `--cluster`) with the
//! whole endpoint URL as the `:authority`, e.g. `http://127.0.0.1:2379`. etcd's own gRPC server ignores it; the
//! `h2` crate under tonic refuses it as malformed and resets the stream. The API never uses the authority, so a
//! connection reader rewrites it: [`Rewriter`] walks the client's frames, and in each HEADERS frame re-encodes an
//! `:authority` field (by static name index) with the value `x`, leaving every other byte as it was.
//!
//! HPACK's dynamic table stays consistent: an entry the rewritten field inserts is never larger on the server's side
//! than on the client's, so the server's table always holds every entry the client can refer to, at the same index.
//! Anything that does not parse as expected (not HTTP/2, a field split across frames) passes through untouched, for
//! the server to judge.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// HEADERS frames up to this size are rewritten; larger ones (the server refuses them anyway) pass untouched.
const MAX_REWRITTEN: usize = 64 * 1024;
/// Index of `:authority` in HPACK's static table.
const AUTHORITY_INDEX: u64 = 1;
/// The authority every request gets.
const AUTHORITY: &[u8] = b"x";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the connection preface.
    Preface,
    /// Reading frames; `skip` payload bytes of the current frame pass through as they come.
    Frames { skip: usize },
    /// Not HTTP/2 as expected: everything passes through.
    Passthrough,
}

/// The pure core: turns the bytes a client sent into the bytes the server reads.
#[derive(Debug)]
pub struct Rewriter {
    phase: Phase,
}

impl Default for Rewriter {
    fn default() -> Self {
        Self {
            phase: Phase::Preface,
        }
    }
}

impl Rewriter {
    /// Moves what can be decided from `input` to `output`; keeps an incomplete preface or HEADERS frame in `input`
    /// until more arrives. With `eof`, everything left passes through.
    pub fn feed(&mut self, input: &mut BytesMut, output: &mut BytesMut, eof: bool) {
        loop {
            match self.phase {
                Phase::Passthrough => {
                    output.extend_from_slice(input);
                    input.clear();
                    return;
                }
                Phase::Preface => {
                    let n = input.len().min(PREFACE.len());
                    if input.get(..n) != PREFACE.get(..n) {
                        self.phase = Phase::Passthrough;
                    } else if n == PREFACE.len() {
                        output.extend_from_slice(&input.split_to(n));
                        self.phase = Phase::Frames { skip: 0 };
                    } else {
                        break;
                    }
                }
                Phase::Frames { skip } if skip > 0 => {
                    let n = skip.min(input.len());
                    if n == 0 {
                        break;
                    }
                    output.extend_from_slice(&input.split_to(n));
                    self.phase = Phase::Frames { skip: skip - n };
                }
                Phase::Frames { .. } => {
                    let Some(header) = frame_header(input) else {
                        break;
                    };
                    let [l0, l1, l2, kind, ..] = header;
                    let length = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
                    if kind == HEADERS && length <= MAX_REWRITTEN {
                        if input.len() < FRAME_HEADER + length {
                            break;
                        }
                        let frame = input.split_to(FRAME_HEADER + length);
                        rewrite_headers(&frame, output);
                    } else {
                        output.extend_from_slice(&input.split_to(FRAME_HEADER));
                        self.phase = Phase::Frames { skip: length };
                    }
                }
            }
        }
        if eof {
            output.extend_from_slice(input);
            input.clear();
        }
    }
}

fn frame_header(bytes: &[u8]) -> Option<[u8; FRAME_HEADER]> {
    bytes.get(..FRAME_HEADER)?.try_into().ok()
}

/// Writes a HEADERS frame to `output`, its `:authority` replaced when it has one that parses.
fn rewrite_headers(frame: &[u8], output: &mut BytesMut) {
    match rewritten(frame) {
        Some(new) => output.extend_from_slice(&new),
        None => output.extend_from_slice(frame),
    }
}

fn rewritten(frame: &[u8]) -> Option<Vec<u8>> {
    let header = frame_header(frame)?;
    let payload = frame.get(FRAME_HEADER..)?;
    let [_, _, _, kind, flags, stream @ ..] = header;
    let mut start = 0;
    let mut pad = 0;
    if flags & PADDED != 0 {
        pad = usize::from(*payload.first()?);
        start = 1;
    }
    if flags & PRIORITY != 0 {
        start += 5;
    }
    let end = payload.len().checked_sub(pad)?;
    let block = payload.get(start..end)?;
    let (value_start, value_end) = find_authority(block)?;
    let mut new_block = Vec::with_capacity(block.len());
    new_block.extend_from_slice(block.get(..value_start)?);
    // A raw (not Huffman-coded) string of one byte: H bit 0, length 1.
    new_block.push(u8::try_from(AUTHORITY.len()).ok()?);
    new_block.extend_from_slice(AUTHORITY);
    new_block.extend_from_slice(block.get(value_end..)?);
    let length = start + new_block.len() + pad;
    let mut out = Vec::with_capacity(FRAME_HEADER + length);
    let length = u32::try_from(length).ok()?;
    let [_, l0, l1, l2] = length.to_be_bytes();
    out.extend_from_slice(&[l0, l1, l2, kind, flags]);
    out.extend_from_slice(&stream);
    out.extend_from_slice(payload.get(..start)?);
    out.extend_from_slice(&new_block);
    out.extend_from_slice(payload.get(end..)?);
    Some(out)
}

/// Where the value of the first `:authority` field of a header block is: its encoded string, length prefix
/// included.
fn find_authority(block: &[u8]) -> Option<(usize, usize)> {
    let mut at = 0;
    while at < block.len() {
        let first = *block.get(at)?;
        let name_index = if first & 0x80 != 0 {
            // Indexed field: nothing to rewrite (a dynamic entry already holds a rewritten value).
            at = integer(block, at, 7)?.1;
            continue;
        } else if first & 0xc0 == 0x40 {
            let (index, next) = integer(block, at, 6)?;
            at = next;
            index
        } else if first & 0xe0 == 0x20 {
            // Dynamic table size update.
            at = integer(block, at, 5)?.1;
            continue;
        } else {
            let (index, next) = integer(block, at, 4)?;
            at = next;
            index
        };
        let is_authority = if name_index == 0 {
            let (name, next) = string(block, at)?;
            at = next;
            name == b":authority"
        } else {
            name_index == AUTHORITY_INDEX
        };
        let value_start = at;
        let (value, value_end) = string(block, at)?;
        if is_authority {
            return (!value.is_empty()).then_some((value_start, value_end));
        }
        at = value_end;
    }
    None
}

/// An HPACK integer with an `prefix`-bit prefix at `at`: its value and the position after it.
fn integer(block: &[u8], at: usize, prefix: u32) -> Option<(u64, usize)> {
    let max = (1_u64 << prefix) - 1;
    let mut value = u64::from(*block.get(at)?) & max;
    let mut at = at + 1;
    if value < max {
        return Some((value, at));
    }
    let mut shift = 0_u32;
    loop {
        let byte = *block.get(at)?;
        at += 1;
        value = value.checked_add(u64::from(byte & 0x7f).checked_shl(shift)?)?;
        if byte & 0x80 == 0 {
            return Some((value, at));
        }
        shift += 7;
        if shift > 56 {
            return None;
        }
    }
}

/// An HPACK string at `at`: its encoded bytes (raw or Huffman-coded, as sent) and the position after it.
fn string(block: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let (length, start) = integer(block, at, 7)?;
    let end = start.checked_add(usize::try_from(length).ok()?)?;
    Some((block.get(start..end)?, end))
}

/// A client connection whose reads go through a [`Rewriter`].
pub struct Normalized {
    inner: TcpStream,
    rewriter: Rewriter,
    input: BytesMut,
    output: BytesMut,
    eof: bool,
}

impl Normalized {
    /// Wraps an accepted connection.
    pub fn new(inner: TcpStream) -> Self {
        Self {
            inner,
            rewriter: Rewriter::default(),
            input: BytesMut::new(),
            output: BytesMut::new(),
            eof: false,
        }
    }
}

impl Connected for Normalized {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for Normalized {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.output.is_empty() {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0_u8; 16 * 1024];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let filled = read.filled();
            this.eof = filled.is_empty();
            this.input.put_slice(filled);
            this.rewriter
                .feed(&mut this.input, &mut this.output, this.eof);
        }
    }
}

impl AsyncWrite for Normalized {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
#[path = "authority_tests.rs"]
mod tests;
