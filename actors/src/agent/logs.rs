//! Reads one container's log for `kubectl logs`: its rotated pieces and the file being written, in the CRI format
//! ([`crate::runtime::cri_log`]), rendered as the container wrote it (with each line's time for `timestamps`);
//! where to start for `tailLines` (found from the end, without reading large files whole), lines older than
//! `sinceSeconds`/`sinceTime` skipped, a `limitBytes` budget on what is sent, and `follow` by polling for growth,
//! through rotations, until the container stops or is replaced by its next instance.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::chrono::{DateTime, Utc};
use navarch_bus::logs::{StreamError, CHUNK_BYTES, HEARTBEAT};

use crate::runtime::cri_log;
use crate::runtime::log_writer::rotated_pieces;

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

/// What of a log to show: `kubectl logs`' options that pick and shape lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Only the last this many lines (all when `None`; none already written when 0 or negative, as `--tail=0`).
    pub tail_lines: Option<i64>,
    /// Only lines written at or after this time (`sinceSeconds`, `sinceTime`).
    pub since: Option<DateTime<Utc>>,
    /// Each line with its time first (`timestamps`).
    pub timestamps: bool,
}

/// A container instance's log, its rotated pieces (oldest first) and then the file being written
/// ([`crate::runtime::log_writer`]), read as one stream of lines rendered for `kubectl logs`.
#[derive(Debug)]
pub struct LogFile {
    /// The file being written (`<container>.log`, or `.log.1` for the previous instance).
    base: PathBuf,
    /// The file being read and its identity.
    current: Option<(PathBuf, File, (u64, u64))>,
    /// The files to read after it.
    queue: VecDeque<PathBuf>,
    /// Bytes read after the last full line (a line being written).
    partial: Vec<u8>,
    /// Rendered output not handed out yet.
    ready: VecDeque<u8>,
    since: Option<DateTime<Utc>>,
    timestamps: bool,
}

fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

impl LogFile {
    /// Opens the log whose file being written is `base`, positioned at the start of the last `tail_lines` lines
    /// (counted back across its rotated pieces).
    pub fn open(base: &Path, options: &ReadOptions) -> io::Result<Self> {
        // The file being written must exist: it says the container started.
        let newest = File::open(base)?;
        let mut files: Vec<PathBuf> = rotated_pieces(base).into_iter().map(|(_, p)| p).collect();
        files.push(base.to_path_buf());
        let mut log = Self {
            base: base.to_path_buf(),
            current: None,
            queue: VecDeque::new(),
            partial: Vec::new(),
            ready: VecDeque::new(),
            since: options.since,
            timestamps: options.timestamps,
        };
        let Some(wanted) = options.tail_lines else {
            log.queue = files.into();
            return Ok(log);
        };
        // From the newest file back, until enough lines are found.
        let mut wanted = u64::try_from(wanted).unwrap_or(0);
        let mut newest = Some(newest);
        while let Some(path) = files.pop() {
            let mut file = match newest.take() {
                Some(f) => f,
                None => match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                },
            };
            let meta = file.metadata()?;
            let (start, found) = start_of_last_lines(&mut file, meta.len(), wanted)?;
            file.seek(SeekFrom::Start(start))?;
            wanted -= found;
            log.queue.push_front(path.clone());
            log.current = Some((path, file, identity(&meta)));
            if wanted == 0 {
                break;
            }
        }
        // The file found last is the one to read first; the queue holds those after it.
        log.queue.pop_front();
        Ok(log)
    }

    /// Up to `max` bytes of rendered output from the reading position on; empty at the end of the log (for now).
    pub fn read_some(&mut self, max: usize) -> io::Result<Vec<u8>> {
        while self.ready.len() < max {
            if !self.fill()? {
                break;
            }
        }
        let n = max.min(self.ready.len());
        Ok(self.ready.drain(..n).collect())
    }

    /// Reads on and renders what it finds; false at the end of the file being written.
    fn fill(&mut self) -> io::Result<bool> {
        if self.current.is_none() && !self.next_file()? {
            return Ok(false);
        }
        let Some((_, file, _)) = self.current.as_mut() else {
            return Ok(false);
        };
        let mut buf = vec![0u8; CHUNK_BYTES];
        let n = file.read(&mut buf)?;
        if n == 0 {
            // A finished piece: a line cut short in it (a crash) is dropped, and the next file is read.
            if self.queue.is_empty() {
                return Ok(false);
            }
            self.partial.clear();
            self.current = None;
            return Ok(true);
        }
        self.partial.extend_from_slice(&buf[..n]);
        let complete = self
            .partial
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let lines: Vec<u8> = self.partial.drain(..complete).collect();
        let mut out = Vec::new();
        for line in lines.split_inclusive(|b| *b == b'\n') {
            let Some(entry) = cri_log::parse(line) else {
                continue;
            };
            if self.since.is_some_and(|since| entry.time < since) {
                continue;
            }
            cri_log::render(&mut out, &entry, self.timestamps);
        }
        self.ready.extend(out);
        Ok(true)
    }

    /// Opens the next file of the queue; false when there is none (or the file being written is not there yet,
    /// between a rotation's rename and its new file).
    fn next_file(&mut self) -> io::Result<bool> {
        while let Some(path) = self.queue.front().cloned() {
            match File::open(&path) {
                Ok(file) => {
                    let meta = file.metadata()?;
                    self.queue.pop_front();
                    self.current = Some((path, file, identity(&meta)));
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && path != self.base => {
                    self.queue.pop_front(); // a rotated piece removed meanwhile
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// At the end of the file being read: whether it was rotated (the pieces after it and the new file are queued:
    /// read on) or replaced by the container's next instance, or is gone (what was opened will not grow any more).
    /// None while it is still the file being written.
    pub fn moved_on(&mut self) -> Option<Moved> {
        let id = match &self.current {
            Some((_, _, id)) => *id,
            None if !self.queue.is_empty() => return None, // waiting for the new file of a rotation
            None => return Some(Moved::Replaced),
        };
        match std::fs::metadata(&self.base) {
            Ok(meta) if identity(&meta) == id => return None,
            _ => {}
        }
        let pieces = rotated_pieces(&self.base);
        let ours = pieces
            .iter()
            .position(|(_, p)| std::fs::metadata(p).is_ok_and(|meta| identity(&meta) == id));
        match ours {
            Some(i) => {
                self.queue = pieces[i + 1..].iter().map(|(_, p)| p.clone()).collect();
                self.queue.push_back(self.base.clone());
                Some(Moved::Rotated)
            }
            None => Some(Moved::Replaced),
        }
    }

    fn error(&self, source: io::Error) -> LogError {
        LogError::Io {
            path: self.base.clone(),
            source,
        }
    }
}

/// What became of a followed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// It was rotated: reading goes on in the newer files.
    Rotated,
    /// The container's next instance has its own log now, or the file is gone.
    Replaced,
}

/// The offset at which the last `lines` lines of a file of `len` bytes start, and how many lines were found (fewer
/// when the file has fewer). Lines end with a newline; a final line without one counts too.
fn start_of_last_lines(file: &mut File, len: u64, lines: u64) -> io::Result<(u64, u64)> {
    if lines == 0 {
        return Ok((len, 0));
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
                    return Ok((start + i as u64 + 1, found));
                }
            }
        }
        end = start;
    }
    // The first line has no newline before it.
    Ok((0, if len > 0 { found + 1 } else { 0 }))
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
        // At the end of the file: after a rotation reading goes on in the new file; once the container has
        // stopped (or a new instance took the file's place) what it wrote last is read once more, then done.
        match log.moved_on() {
            Some(Moved::Rotated) => continue,
            Some(Moved::Replaced) => {
                stopping = true;
                continue;
            }
            None if !running().await => {
                stopping = true;
                continue;
            }
            None => {}
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
