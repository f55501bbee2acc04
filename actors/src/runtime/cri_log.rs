//! The on-disk log format, the CRI's (what containerd and CRI-O write for the kubelet): one entry per line,
//! `2016-10-06T00:17:09.669794202Z stdout F text`, where `F` ends a line of the container's output and `P` is a
//! piece of a longer (or unfinished) one. Pure: turning output into entries and entries back into output.

use k8s_openapi::chrono::{DateTime, SecondsFormat, Utc};

/// A container's output longer than this without a newline is cut into `P` entries (containerd's 16 KiB
/// buffer), so no entry, and no file, grows without bound.
pub const MAX_ENTRY: usize = 16 * 1024;

/// Which of the container's outputs an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// One entry of a log file, borrowed from the line it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// When the agent read it from the container.
    pub time: DateTime<Utc>,
    /// Where it came from.
    pub stream: Stream,
    /// A piece of a line (`P`): the container's output goes on in the next entry, with no newline in between.
    pub partial: bool,
    /// The output, without the newline that ends a full line.
    pub content: &'a [u8],
}

/// The timestamp as the kubelet writes it: RFC 3339 in UTC with exactly nine fractional digits.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Appends the entry for `content` (a full line without its newline, or a piece) to `out`.
pub fn encode(
    out: &mut Vec<u8>,
    time: DateTime<Utc>,
    stream: Stream,
    partial: bool,
    content: &[u8],
) {
    out.extend_from_slice(format_time(time).as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(content);
    out.push(b'\n');
}

/// Parses one line of a log file (with or without its newline). None for a line that is not an entry (a file
/// cut short by a crash, say): readers skip it.
pub fn parse(line: &[u8]) -> Option<Entry<'_>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let time = DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc);
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Entry {
        time,
        stream,
        partial,
        content: parts.next().unwrap_or_default(),
    })
}

/// What `kubectl logs` shows of an entry: its content, a newline if it ends a line, and with `timestamps` the
/// entry's time and a space first (as the kubelet writes them).
pub fn render(out: &mut Vec<u8>, entry: &Entry<'_>, timestamps: bool) {
    if timestamps {
        out.extend_from_slice(format_time(entry.time).as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(entry.content);
    if !entry.partial {
        out.push(b'\n');
    }
}

/// Cuts one stream of a container's output into entries: full lines as `F`, and pieces of [`MAX_ENTRY`] bytes of a
/// longer line as `P`. Output that does not end in a newline waits for more, until [`Splitter::finish`].
#[derive(Debug, Default)]
pub struct Splitter {
    pending: Vec<u8>,
}

impl Splitter {
    /// Takes `data` read from the stream and appends the entries it completes to `out`, stamped `time`.
    pub fn push(&mut self, out: &mut Vec<u8>, time: DateTime<Utc>, stream: Stream, data: &[u8]) {
        let mut rest = data;
        while let Some(newline) = rest.iter().position(|b| *b == b'\n') {
            let (line, after) = rest.split_at(newline);
            if self.pending.is_empty() {
                self.cut(out, time, stream, line);
            } else {
                self.pending.extend_from_slice(line);
                let whole = std::mem::take(&mut self.pending);
                self.cut(out, time, stream, &whole);
            }
            rest = &after[1..];
        }
        self.pending.extend_from_slice(rest);
        while self.pending.len() >= MAX_ENTRY {
            let piece: Vec<u8> = self.pending.drain(..MAX_ENTRY).collect();
            encode(out, time, stream, true, &piece);
        }
    }

    /// The stream has ended: what is left without a newline becomes a last `P` entry (so `kubectl logs` shows the
    /// output exactly as written, without a newline the container never wrote).
    pub fn finish(&mut self, out: &mut Vec<u8>, time: DateTime<Utc>, stream: Stream) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            encode(out, time, stream, true, &rest);
        }
    }

    /// A full line: `P` pieces of [`MAX_ENTRY`] bytes, then the rest as `F`.
    fn cut(&self, out: &mut Vec<u8>, time: DateTime<Utc>, stream: Stream, line: &[u8]) {
        let mut line = line;
        while line.len() > MAX_ENTRY {
            let (piece, rest) = line.split_at(MAX_ENTRY);
            encode(out, time, stream, true, piece);
            line = rest;
        }
        encode(out, time, stream, false, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn entries_are_written_and_read_as_the_cri_defines_them() {
        let t = at("2016-10-06T00:17:09.669794202Z");
        let mut out = Vec::new();
        encode(&mut out, t, Stream::Stdout, false, b"hello world");
        assert_eq!(
            out,
            b"2016-10-06T00:17:09.669794202Z stdout F hello world\n"
        );
        let entry = parse(&out).unwrap();
        assert_eq!(
            entry,
            Entry {
                time: t,
                stream: Stream::Stdout,
                partial: false,
                content: b"hello world"
            }
        );
        // Whole seconds keep their nine digits, as the kubelet's fixed-width format.
        assert_eq!(
            format_time(at("2026-01-01T00:00:00Z")),
            "2026-01-01T00:00:00.000000000Z"
        );
        assert_eq!(parse(b"garbage"), None);
        assert_eq!(parse(b"2016-10-06T00:17:09Z stdin F x"), None);
        let empty = parse(b"2016-10-06T00:17:09Z stderr F").unwrap();
        assert_eq!((empty.stream, empty.content), (Stream::Stderr, &b""[..]));
    }

    #[test]
    fn output_is_cut_at_newlines_and_long_lines_into_pieces() {
        let t = at("2026-01-01T00:00:00Z");
        let mut s = Splitter::default();
        let mut out = Vec::new();
        s.push(&mut out, t, Stream::Stdout, b"one\ntw");
        s.push(&mut out, t, Stream::Stdout, b"o\nthree");
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            "2026-01-01T00:00:00.000000000Z stdout F one\n2026-01-01T00:00:00.000000000Z stdout F two\n"
        );
        out.clear();
        s.finish(&mut out, t, Stream::Stdout);
        assert_eq!(out, b"2026-01-01T00:00:00.000000000Z stdout P three\n");

        let long = vec![b'x'; MAX_ENTRY * 2 + 5];
        let mut out = Vec::new();
        let mut s = Splitter::default();
        s.push(&mut out, t, Stream::Stderr, &long);
        s.push(&mut out, t, Stream::Stderr, b"\n");
        let entries: Vec<Entry<'_>> = out
            .split_inclusive(|b| *b == b'\n')
            .filter_map(parse)
            .collect();
        let shape: Vec<(bool, usize)> = entries
            .iter()
            .map(|e| (e.partial, e.content.len()))
            .collect();
        assert_eq!(
            shape,
            vec![(true, MAX_ENTRY), (true, MAX_ENTRY), (false, 5)]
        );
        let mut shown = Vec::new();
        for e in &entries {
            render(&mut shown, e, false);
        }
        assert_eq!(shown.len(), long.len() + 1);
    }

    #[test]
    fn rendering_adds_the_timestamp_when_asked() {
        let line = b"2016-10-06T00:17:09.669794202Z stdout F hi\n";
        let entry = parse(line).unwrap();
        let mut out = Vec::new();
        render(&mut out, &entry, true);
        assert_eq!(out, b"2016-10-06T00:17:09.669794202Z hi\n");
        out.clear();
        render(&mut out, &entry, false);
        assert_eq!(out, b"hi\n");
    }
}
