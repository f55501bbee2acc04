use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::*;

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
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

async fn read(text: &str, tail: Option<i64>, limit: Option<i64>) -> String {
    let (_dir, path) = file_with(text);
    let mut sink = Collect::default();
    let log = LogFile::open(&path, tail).unwrap();
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
    assert!(text.len() as u64 > 3 * SCAN_BLOCK);
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
    let log = LogFile::open(&path, None).unwrap();
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
        let log = LogFile::open(&path, Some(1)).unwrap();
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
    file.write_all(b"two\n").unwrap();
    tokio::time::sleep(POLL * 2).await;
    assert_eq!(sink.text(), "one\ntwo\n");
    assert_eq!(sink.heartbeats(), 0);
    tokio::time::sleep(HEARTBEAT + POLL).await;
    assert_eq!(sink.heartbeats(), 1);
    // Written just before the container stops: still sent.
    file.write_all(b"three\n").unwrap();
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
        let log = LogFile::open(&path, None).unwrap();
        async move { send_log(log, None, true, &mut sink, || async { true }).await }
    });
    tokio::time::sleep(POLL * 2).await;
    // As the runtime does on a restart: the old file moves aside (its last words still land in it).
    let mut old = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::fs::rename(&path, dir.path().join("c.log.1")).unwrap();
    old.write_all(b"last words\n").unwrap();
    std::fs::write(&path, "new\n").unwrap();
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
    let log = LogFile::open(&path, None).unwrap();
    // Nothing to send: the heartbeat finds the client gone.
    let ended = tokio::time::timeout(
        HEARTBEAT * 2,
        send_log(log, None, true, &mut Gone, || async { true }),
    )
    .await
    .unwrap();
    assert!(matches!(ended, Err(LogError::Stream(StreamError::Gone))));
}
