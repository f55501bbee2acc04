//! Writes a container's output into its log file in the CRI format ([`super::cri_log`]), each line stamped when the
//! agent read it, rotating the file by size as the kubelet does (`containerLogMaxSize`, `containerLogMaxFiles`):
//! the full file becomes `<log>.r<N>` (N growing) and the oldest pieces beyond the limit are removed. Both runtimes
//! write through it, so their logs read the same.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use k8s_openapi::chrono::{DateTime, Utc};

use super::cri_log::{Splitter, Stream};

/// How large a container's log grows and how many files it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// A log file reaching this size is rotated. Default 10 MiB: the kubelet's `containerLogMaxSize`.
    pub max_size: u64,
    /// Files kept per container instance, the one being written included. Default 5: the kubelet's
    /// `containerLogMaxFiles`.
    pub max_files: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            max_size: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

impl LogLimits {
    /// Checks both limits as the kubelet does (at least 2 files) and that a file holds at least one entry.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_files < 2 {
            return Err("container log max files must be at least 2".into());
        }
        if self.max_size < 1024 {
            return Err("container log max size must be at least 1Ki".into());
        }
        Ok(())
    }
}

/// The rotated piece `seq` of the log at `path`: `<path>.r<seq>`, zero-padded so that names sort by age.
pub fn rotated_path(path: &Path, seq: u64) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".r{seq:06}"));
    PathBuf::from(name)
}

/// The rotated pieces of the log at `path`, oldest first, with their sequence numbers.
pub fn rotated_pieces(path: &Path) -> Vec<(u64, PathBuf)> {
    let (Some(dir), Some(base)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let prefix = format!("{base}.r");
    let mut pieces: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let seq = name.to_str()?.strip_prefix(&prefix)?.parse().ok()?;
            Some((seq, e.path()))
        })
        .collect();
    pieces.sort();
    pieces
}

/// Writes one container instance's log, rotating it by [`LogLimits`].
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    limits: LogLimits,
    file: File,
    size: u64,
    next_seq: u64,
    stdout: Splitter,
    stderr: Splitter,
}

impl LogWriter {
    /// Goes on writing the log at `path` (created if missing; an adopted container's log is appended to).
    pub fn open(path: &Path, limits: LogLimits) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let size = file.metadata()?.len();
        let next_seq = rotated_pieces(path).last().map_or(1, |(seq, _)| seq + 1);
        Ok(Self {
            path: path.to_path_buf(),
            limits,
            file,
            size,
            next_seq,
            stdout: Splitter::default(),
            stderr: Splitter::default(),
        })
    }

    /// Writes the entries `data` completes (output read from `stream` at `time`).
    pub fn write(&mut self, stream: Stream, data: &[u8], time: DateTime<Utc>) -> io::Result<()> {
        let mut entries = Vec::new();
        self.splitter(stream).push(&mut entries, time, stream, data);
        self.append(&entries)
    }

    /// Both streams have ended: writes what is left of an unfinished line.
    pub fn finish(&mut self, time: DateTime<Utc>) -> io::Result<()> {
        let mut entries = Vec::new();
        self.stdout.finish(&mut entries, time, Stream::Stdout);
        self.stderr.finish(&mut entries, time, Stream::Stderr);
        self.append(&entries)
    }

    fn splitter(&mut self, stream: Stream) -> &mut Splitter {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }

    /// Appends whole entries, rotating before one that would take the file past its size.
    fn append(&mut self, entries: &[u8]) -> io::Result<()> {
        let mut batch_start = 0;
        let mut batch_len = 0u64;
        for line in entries.split_inclusive(|b| *b == b'\n') {
            let len = line.len() as u64;
            if self.size + batch_len > 0 && self.size + batch_len + len > self.limits.max_size {
                let end = batch_start + usize::try_from(batch_len).unwrap_or(0);
                self.file.write_all(&entries[batch_start..end])?;
                self.rotate()?;
                batch_start = end;
                batch_len = 0;
            }
            batch_len += len;
        }
        self.file.write_all(&entries[batch_start..])?;
        self.size += batch_len;
        Ok(())
    }

    /// The full file becomes the newest rotated piece; pieces beyond the limit go, oldest first.
    fn rotate(&mut self) -> io::Result<()> {
        std::fs::rename(&self.path, rotated_path(&self.path, self.next_seq))?;
        self.next_seq += 1;
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        let pieces = rotated_pieces(&self.path);
        let keep = self.limits.max_files.saturating_sub(1);
        for (_, old) in pieces.iter().take(pieces.len().saturating_sub(keep)) {
            if let Err(e) = std::fs::remove_file(old) {
                tracing::debug!(path = %old.display(), error = %e, "cannot remove an old log piece");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::cri_log::parse;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn rotates_by_size_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.log");
        let limits = LogLimits {
            max_size: 1024,
            max_files: 3,
        };
        let mut w = LogWriter::open(&path, limits).unwrap();
        let t = at("2026-01-01T00:00:00Z");
        // Each entry: 40 bytes of header + 59 of text + a newline = 100 bytes, 10 per file.
        for i in 0..100 {
            let line = format!("{i:03}{}\n", "x".repeat(56));
            w.write(Stream::Stdout, line.as_bytes(), t).unwrap();
        }
        let pieces = rotated_pieces(&path);
        assert_eq!(
            pieces.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![8, 9]
        );
        let mut files: Vec<PathBuf> = pieces.into_iter().map(|(_, p)| p).collect();
        files.push(path.clone());
        let mut lines = Vec::new();
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            assert!(
                bytes.len() as u64 <= limits.max_size,
                "{} is {} bytes",
                f.display(),
                bytes.len()
            );
            for l in bytes.split_inclusive(|b| *b == b'\n') {
                lines.push(String::from_utf8(parse(l).unwrap().content[..3].to_vec()).unwrap());
            }
        }
        // The last 3 files hold the last 30 lines, in order.
        let expected: Vec<String> = (70..100).map(|i| format!("{i:03}")).collect();
        assert_eq!(lines, expected);

        // A writer opened again (an adopted container) goes on after the last piece: the full file it finds is
        // rotated first.
        drop(w);
        let mut w = LogWriter::open(&path, limits).unwrap();
        for _ in 0..11 {
            w.write(
                Stream::Stderr,
                format!("{}\n", "y".repeat(59)).as_bytes(),
                t,
            )
            .unwrap();
        }
        let seqs: Vec<u64> = rotated_pieces(&path).iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![10, 11]);
    }

    #[test]
    fn limits_are_validated() {
        assert!(LogLimits::default().validate().is_ok());
        let one_file = LogLimits {
            max_files: 1,
            ..Default::default()
        };
        assert!(one_file.validate().is_err());
        let tiny = LogLimits {
            max_size: 10,
            ..Default::default()
        };
        assert!(tiny.validate().is_err());
    }
}
