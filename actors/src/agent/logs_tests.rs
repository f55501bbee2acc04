use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::*;
use crate::runtime::cri_log::{Splitter, Stream};
use crate::runtime::log_writer::{LogLimits, LogWriter};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// `text` as the runtime writes it: one CRI entry per line, an unfinished last line as a `P` entry.
fn cri(text: &str) -> Vec<u8> {
    let t = at("2026-11-27T12:00:00Z");
    let (mut out, mut s) = (Vec::new(), Splitter::default());
    s.push(&mut out, t, Stream::Stdout, text.as_bytes());
    s.finish(&mut out, t, Stream::Stdout);
    out
}

fn tail(lines: Option<i64>) -> ReadOptions {
    ReadOptions {
        tail_lines: lines,
        ..Default::default()
    }
}

/// Collects what is sent; each send is one entry (heartbeats are empty entries).
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Vec<u8>>>>);

impl Collect {
    fn text(&self) -> String {
        let sent = self.0.lock().unwrap();
        String::from_utf8(sent.concat()).unwrap()
    }
    fn heartbeats(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.is_empty())
            .count()
    }
}

#[async_trait::async_trait]
impl Sink for Collect {
    async fn send(&mut self, data: Vec<u8>) -> Result<(), StreamError> {
        self.0.lock().unwrap().push(data);
        Ok(())
    }
}

fn file_with(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    std::fs::write(&path, cri(text)).unwrap();
    (dir, path)
}

async fn read(text: &str, tail: Option<i64>, limit: Option<i64>) -> String {
    let (_dir, path) = file_with(text);
    let mut sink = Collect::default();
    let log = LogFile::open(&path, &self::tail(tail)).unwrap();
    send_log(log, limit, false, &mut sink, || async { true })
        .await
        .unwrap();
    sink.text()
}

#[tokio::test]
async fn tail_lines_counts_from_the_end() {
    let text = "a\nb\nc\n";
    assert_eq!(read(text, None, None).await, text);
    assert_eq!(read(text, Some(2), None).await, "b\nc\n");
    assert_eq!(read(text, Some(3), None).await, text);
    assert_eq!(read(text, Some(10), None).await, text);
    assert_eq!(read(text, Some(0), None).await, "");
    assert_eq!(read(text, Some(-1), None).await, "");
    // An unfinished last line is a line.
    assert_eq!(read("a\nb\nc", Some(1), None).await, "c");
    assert_eq!(read("a\nb\nc", Some(2), None).await, "b\nc");
    assert_eq!(read("", Some(2), None).await, "");
    assert_eq!(read("\n\n", Some(1), None).await, "\n");
}

#[tokio::test]
async fn tail_lines_of_a_file_larger_than_a_scan_block() {
    let lines: Vec<String> = (0..40_000).map(|i| format!("line {i}")).collect();
    let text = lines.join("\n") + "\n";
    assert!(cri(&text).len() as u64 > 3 * SCAN_BLOCK);
    assert_eq!(read(&text, Some(2), None).await, "line 39998\nline 39999\n");
    let last = read(&text, Some(30_000), None).await;
    assert!(last.starts_with("line 10000\n"));
    assert_eq!(last.lines().count(), 30_000);
}

#[tokio::test]
async fn limit_bytes_cuts_the_output() {
    assert_eq!(read("hello\nworld\n", None, Some(8)).await, "hello\nwo");
    assert_eq!(read("hello\nworld\n", Some(1), Some(3)).await, "wor");
    assert_eq!(read("hello\n", None, Some(0)).await, "");
    let big = "x".repeat(CHUNK_BYTES * 2);
    let (_dir, path) = file_with(&big);
    let mut sink = Collect::default();
    let log = LogFile::open(&path, &tail(None)).unwrap();
    send_log(log, None, false, &mut sink, || async { true })
        .await
        .unwrap();
    assert!(sink
        .0
        .lock()
        .unwrap()
        .iter()
        .all(|d| d.len() <= CHUNK_BYTES));
    assert_eq!(sink.text().len(), big.len());
}

#[tokio::test(start_paused = true)]
async fn follow_sends_growth_and_heartbeats_until_the_container_stops() {
    let (_dir, path) = file_with("one\n");
    let running = Arc::new(AtomicBool::new(true));
    let sink = Collect::default();
    let task = tokio::spawn({
        let (mut sink, running) = (sink.clone(), running.clone());
        let log = LogFile::open(&path, &tail(Some(1))).unwrap();
        async move {
            send_log(log, None, true, &mut sink, move || {
                let running = running.load(Ordering::SeqCst);
                async move { running }
            })
            .await
        }
    });
    tokio::time::sleep(POLL * 2).await;
    assert_eq!(sink.text(), "one\n");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(&cri("two\n")).unwrap();
    tokio::time::sleep(POLL * 2).await;
    assert_eq!(sink.text(), "one\ntwo\n");
    assert_eq!(sink.heartbeats(), 0);
    tokio::time::sleep(HEARTBEAT + POLL).await;
    assert_eq!(sink.heartbeats(), 1);
    // Written just before the container stops: still sent.
    file.write_all(&cri("three\n")).unwrap();
    running.store(false, Ordering::SeqCst);
    let ended = tokio::time::timeout(POLL * 5, task).await.unwrap().unwrap();
    assert_eq!(ended.unwrap(), Ended::ContainerStopped);
    assert_eq!(sink.text(), "one\ntwo\nthree\n");
}

#[tokio::test(start_paused = true)]
async fn follow_ends_when_a_new_instance_replaces_the_file() {
    let (dir, path) = file_with("old\n");
    let sink = Collect::default();
    let task = tokio::spawn({
        let mut sink = sink.clone();
        let log = LogFile::open(&path, &tail(None)).unwrap();
        async move { send_log(log, None, true, &mut sink, || async { true }).await }
    });
    tokio::time::sleep(POLL * 2).await;
    // As the runtime does on a restart: the old file moves aside (its last words still land in it).
    let mut old = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::fs::rename(&path, dir.path().join("c.log.1")).unwrap();
    old.write_all(&cri("last words\n")).unwrap();
    std::fs::write(&path, cri("new\n")).unwrap();
    let ended = tokio::time::timeout(POLL * 5, task).await.unwrap().unwrap();
    assert_eq!(ended.unwrap(), Ended::ContainerStopped);
    assert_eq!(sink.text(), "old\nlast words\n");
}

#[tokio::test(start_paused = true)]
async fn follow_stops_when_the_sink_is_gone() {
    struct Gone;
    #[async_trait::async_trait]
    impl Sink for Gone {
        async fn send(&mut self, _: Vec<u8>) -> Result<(), StreamError> {
            Err(StreamError::Gone)
        }
    }
    let (_dir, path) = file_with("");
    let log = LogFile::open(&path, &tail(None)).unwrap();
    // Nothing to send: the heartbeat finds the client gone.
    let ended = tokio::time::timeout(
        HEARTBEAT * 2,
        send_log(log, None, true, &mut Gone, || async { true }),
    )
    .await
    .unwrap();
    assert!(matches!(ended, Err(LogError::Stream(StreamError::Gone))));
}

#[tokio::test]
async fn timestamps_and_since_pick_and_shape_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let mut text = Vec::new();
    for (time, line) in [
        ("2026-11-27T12:00:00.5Z", "first"),
        ("2026-11-27T12:00:10Z", "second"),
        ("2026-11-27T12:00:20Z", "third"),
    ] {
        crate::runtime::cri_log::encode(
            &mut text,
            at(time),
            Stream::Stdout,
            false,
            line.as_bytes(),
        );
    }
    std::fs::write(&path, text).unwrap();
    let read = |options: ReadOptions| {
        let path = path.clone();
        async move {
            let mut sink = Collect::default();
            let log = LogFile::open(&path, &options).unwrap();
            send_log(log, None, false, &mut sink, || async { true })
                .await
                .unwrap();
            sink.text()
        }
    };
    let since = ReadOptions {
        since: Some(at("2026-11-27T12:00:10Z")),
        ..Default::default()
    };
    assert_eq!(read(since.clone()).await, "second\nthird\n");
    let stamped = ReadOptions {
        timestamps: true,
        ..since
    };
    assert_eq!(
        read(stamped).await,
        "2026-11-27T12:00:10.000000000Z second\n2026-11-27T12:00:20.000000000Z third\n"
    );
    let last = ReadOptions {
        tail_lines: Some(1),
        timestamps: true,
        ..Default::default()
    };
    assert_eq!(read(last).await, "2026-11-27T12:00:20.000000000Z third\n");
}

/// A log written through a small rotation limit: 100-byte entries, 10 per file, 3 files kept.
fn rotated_log(dir: &Path, lines: std::ops::Range<usize>) -> (PathBuf, LogWriter) {
    let path = dir.join("c.log");
    let limits = LogLimits {
        max_size: 1024,
        max_files: 3,
    };
    let mut w = LogWriter::open(&path, limits).unwrap();
    for i in lines {
        let line = format!("{i:03}{}\n", "x".repeat(56));
        w.write(Stream::Stdout, line.as_bytes(), at("2026-11-27T12:00:00Z"))
            .unwrap();
    }
    (path, w)
}

#[tokio::test]
async fn tail_and_whole_reads_span_the_rotated_files() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _w) = rotated_log(dir.path(), 0..95);
    let numbers =
        |text: String| -> Vec<usize> { text.lines().map(|l| l[..3].parse().unwrap()).collect() };
    let read = |tail_lines| {
        let path = path.clone();
        async move {
            let mut sink = Collect::default();
            let log = LogFile::open(&path, &tail(tail_lines)).unwrap();
            send_log(log, None, false, &mut sink, || async { true })
                .await
                .unwrap();
            sink.text()
        }
    };
    // Kept: two full pieces (70..90) and the file being written (90..95).
    assert_eq!(numbers(read(None).await), (70..95).collect::<Vec<_>>());
    assert_eq!(numbers(read(Some(12)).await), (83..95).collect::<Vec<_>>());
    assert_eq!(numbers(read(Some(5)).await), (90..95).collect::<Vec<_>>());
    assert_eq!(
        numbers(read(Some(1000)).await),
        (70..95).collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn follow_goes_on_through_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut w) = rotated_log(dir.path(), 0..5);
    let sink = Collect::default();
    let running = Arc::new(AtomicBool::new(true));
    let task = tokio::spawn({
        let (mut sink, running) = (sink.clone(), running.clone());
        let log = LogFile::open(&path, &tail(None)).unwrap();
        async move {
            send_log(log, None, true, &mut sink, move || {
                let running = running.load(Ordering::SeqCst);
                async move { running }
            })
            .await
        }
    });
    for i in 5..25 {
        tokio::time::sleep(POLL).await;
        let line = format!("{i:03}{}\n", "x".repeat(56));
        w.write(Stream::Stdout, line.as_bytes(), at("2026-11-27T12:00:00Z"))
            .unwrap();
    }
    tokio::time::sleep(POLL * 2).await;
    running.store(false, Ordering::SeqCst);
    let ended = tokio::time::timeout(POLL * 5, task).await.unwrap().unwrap();
    assert_eq!(ended.unwrap(), Ended::ContainerStopped);
    let got: Vec<usize> = sink
        .text()
        .lines()
        .map(|l| l[..3].parse().unwrap())
        .collect();
    assert_eq!(got, (0..25).collect::<Vec<_>>());
}
