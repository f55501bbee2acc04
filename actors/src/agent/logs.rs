//! Reads one container's log file for `kubectl logs`: where to start for `tailLines` (found from the end, without
//! reading a large file whole), a `limitBytes` budget, and `follow` by polling the file for growth until the
//! container stops or is replaced by its next instance.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use navarch_bus::logs::{StreamError, CHUNK_BYTES, HEARTBEAT};

/// How often a followed file is checked for growth.
pub const POLL: Duration = Duration::from_millis(200);

/// How much of the file is read at a time when looking for line starts from the end.
const SCAN_BLOCK: u64 = 64 * 1024;

/// Why sending a log stopped early.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log file could not be read. Not retryable for this stream; the reader sees the message.
    #[error("cannot read log file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The stream to the gateway failed (the client went away, or the bus did). Not retryable.
    #[error(transparent)]
    Stream(#[from] StreamError),
}

/// Where log bytes go: the bus in the agent, a vector in tests.
#[async_trait::async_trait]
pub trait Sink: Send {
    /// Sends `data`; empty data is a heartbeat.
    async fn send(&mut self, data: Vec<u8>) -> Result<(), StreamError>;
}

#[async_trait::async_trait]
impl Sink for navarch_bus::logs::ChunkSender {
    async fn send(&mut self, data: Vec<u8>) -> Result<(), StreamError> {
        navarch_bus::logs::ChunkSender::send(self, &data).await
    }
}

/// An open log file and the reading position in it.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
    identity: (u64, u64),
}

impl LogFile {
    /// Opens `path` positioned at the start of its last `tail_lines` lines (all of it when `None`; nothing
    /// already written when 0 or negative, as `--tail=0`).
    pub fn open(path: &Path, tail_lines: Option<i64>) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        let start = match tail_lines {
            None => 0,
            Some(n) => start_of_last_lines(&mut file, meta.len(), u64::try_from(n).unwrap_or(0))?,
        };
        file.seek(SeekFrom::Start(start))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            identity: (meta.dev(), meta.ino()),
        })
    }

    /// Up to `max` bytes from the reading position on; empty at the end of the file.
    pub fn read_some(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(max.min(CHUNK_BYTES));
        (&mut self.file)
            .take(u64::try_from(max).unwrap_or(u64::MAX))
            .read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// Whether the path now names another file (the container's next instance) or none: what was opened will
    /// not grow any more.
    pub fn replaced(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(meta) => (meta.dev(), meta.ino()) != self.identity,
            Err(_) => true,
        }
    }

    fn error(&self, source: io::Error) -> LogError {
        LogError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// The offset at which the last `lines` lines of a file of `len` bytes start. A final line without a newline
/// counts as a line; a newline ending the file does not start another.
fn start_of_last_lines(file: &mut File, len: u64, lines: u64) -> io::Result<u64> {
    if lines == 0 {
        return Ok(len);
    }
    let mut end = len;
    let mut found = 0;
    let mut block = Vec::new();
    let mut skip_final_newline = true;
    while end > 0 {
        let start = end.saturating_sub(SCAN_BLOCK);
        block.resize(usize::try_from(end - start).unwrap_or(0), 0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        for (i, byte) in block.iter().enumerate().rev() {
            if skip_final_newline {
                skip_final_newline = false;
                if *byte == b'\n' {
                    continue;
                }
            }
            if *byte == b'\n' {
                found += 1;
                if found == lines {
                    return Ok(start + i as u64 + 1);
                }
            }
        }
        end = start;
    }
    Ok(0)
}

/// How sending a log ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Everything there was was sent (without `follow`).
    Done,
    /// `limitBytes` were sent.
    Limit,
    /// Following stopped: the container stopped or a new instance replaced it (as the kubelet ends a follow).
    ContainerStopped,
}

/// Sends `log` to `sink` in pieces of at most [`CHUNK_BYTES`], at most `limit` bytes in all. With `follow`, keeps
/// polling the file every [`POLL`] (sending an empty heartbeat every [`HEARTBEAT`] without news) until the file is
/// replaced or `running` says the container has stopped, then sends what is left.
pub async fn send_log<S, R, F>(
    mut log: LogFile,
    limit: Option<i64>,
    follow: bool,
    sink: &mut S,
    mut running: R,
) -> Result<Ended, LogError>
where
    S: Sink,
    R: FnMut() -> F + Send,
    F: std::future::Future<Output = bool> + Send,
{
    let mut budget = limit.map(|l| u64::try_from(l).unwrap_or(0));
    if budget == Some(0) {
        return Ok(Ended::Limit);
    }
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sent = tokio::time::Instant::now();
    let mut stopping = false;
    loop {
        let room = budget.map_or(CHUNK_BYTES, |b| {
            usize::try_from(b).unwrap_or(CHUNK_BYTES).min(CHUNK_BYTES)
        });
        let data = log.read_some(room).map_err(|e| log.error(e))?;
        if !data.is_empty() {
            let sent = data.len() as u64;
            sink.send(data).await?;
            last_sent = tokio::time::Instant::now();
            if let Some(b) = budget.as_mut() {
                *b = b.saturating_sub(sent);
                if *b == 0 {
                    return Ok(Ended::Limit);
                }
            }
            continue;
        }
        if !follow {
            return Ok(Ended::Done);
        }
        if stopping {
            return Ok(Ended::ContainerStopped);
        }
        // At the end of the file: what was written before the container stopped is read once more, then done.
        if log.replaced() || !running().await {
            stopping = true;
            continue;
        }
        if last_sent.elapsed() >= HEARTBEAT {
            sink.send(Vec::new()).await?;
            last_sent = tokio::time::Instant::now();
        }
        poll.tick().await;
    }
}

#[cfg(test)]
#[path = "logs_tests.rs"]
mod tests;
