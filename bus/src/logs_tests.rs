use super::*;

async fn pair(silence: Duration) -> (ChunkSender, ChunkReceiver, Bus) {
    let bus = Bus::embedded("t").await.unwrap();
    let inbox = inbox(bus.subjects());
    let receiver = ChunkReceiver::subscribe_with(&bus, &inbox, silence)
        .await
        .unwrap();
    let sender = ChunkSender::with_ack_timeout(bus.clone(), inbox, Duration::from_millis(500));
    (sender, receiver, bus)
}

#[test]
fn messages_round_trip_through_the_codec() {
    let request = LogRequest {
        namespace: "default".into(),
        pod: "p1".into(),
        uid: "u".into(),
        container: "c".into(),
        tail_lines: Some(2),
        limit_bytes: None,
        follow: true,
        previous: false,
        since_seconds: Some(-1),
        since_time: Some("2026-11-27T12:00:00Z".into()),
        timestamps: true,
        inbox: "navarch.t.logs.x".into(),
    };
    assert_eq!(
        codec::decode::<LogRequest>(&codec::encode(&request).unwrap()).unwrap(),
        request
    );
    let chunk = LogChunk {
        seq: 7,
        data: b"a\nb\n".to_vec(),
        end: true,
        error: Some("boom".into()),
    };
    assert_eq!(
        codec::decode::<LogChunk>(&codec::encode(&chunk).unwrap()).unwrap(),
        chunk
    );
    assert!(codec::decode::<LogChunk>(b"\xff\xff").is_err());
}

#[test]
fn sequences_spot_duplicates_and_gaps() {
    let mut s = Sequence::default();
    assert_eq!(s.check(1), Order::Next);
    assert_eq!(s.check(2), Order::Next);
    assert_eq!(s.check(2), Order::Duplicate);
    assert_eq!(s.check(1), Order::Duplicate);
    assert_eq!(s.check(4), Order::Gap { expected: 3 });
    assert_eq!(s.check(3), Order::Next);
}

#[tokio::test]
async fn chunks_arrive_in_order_split_under_the_chunk_size() {
    let (mut sender, mut receiver, _bus) = pair(Duration::from_secs(5)).await;
    let big = vec![b'x'; CHUNK_BYTES * 2 + 10];
    let expected = big.clone();
    let send = tokio::spawn(async move {
        sender.send(b"hello\n").await.unwrap();
        sender.send(&big).await.unwrap();
        sender.send(b"").await.unwrap();
        sender
            .finish(Some("container exited".into()))
            .await
            .unwrap();
    });
    let mut seqs = Vec::new();
    let mut data = Vec::new();
    let mut last = None;
    while let Some(chunk) = receiver.next_chunk().await {
        let chunk = chunk.unwrap();
        assert!(chunk.data.len() <= CHUNK_BYTES);
        seqs.push(chunk.seq);
        data.extend_from_slice(&chunk.data);
        last = Some(chunk);
    }
    send.await.unwrap();
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
    assert_eq!(&data[..6], b"hello\n");
    assert_eq!(&data[6..], &expected[..]);
    let last = last.unwrap();
    assert!(last.end);
    assert_eq!(last.error.as_deref(), Some("container exited"));
}

#[tokio::test]
async fn the_sender_stops_once_the_receiver_is_gone() {
    let (mut sender, receiver, _bus) = pair(Duration::from_secs(5)).await;
    drop(receiver);
    assert!(matches!(sender.send(b"x").await, Err(StreamError::Gone)));
}

#[tokio::test]
async fn a_lost_chunk_ends_the_stream() {
    let bus = Bus::embedded("t").await.unwrap();
    let inbox = inbox(bus.subjects());
    let mut receiver = ChunkReceiver::subscribe_with(&bus, &inbox, Duration::from_secs(5))
        .await
        .unwrap();
    // Chunk 1 never came; chunk 2 does.
    let chunk = LogChunk {
        seq: 2,
        data: b"late".to_vec(),
        end: false,
        error: None,
    };
    let sent = tokio::spawn(async move {
        let _ = bus
            .request(
                &inbox,
                Headers::new(),
                codec::encode(&chunk).unwrap().into(),
                Duration::from_millis(300),
            )
            .await;
    });
    assert!(matches!(
        receiver.next_chunk().await,
        Some(Err(StreamError::Gap {
            expected: 1,
            got: 2
        }))
    ));
    assert!(receiver.next_chunk().await.is_none());
    sent.await.unwrap();
}

#[tokio::test]
async fn a_silent_agent_ends_the_stream() {
    let (_sender, mut receiver, _bus) = pair(Duration::from_millis(100)).await;
    assert!(matches!(
        receiver.next_chunk().await,
        Some(Err(StreamError::Silent(_)))
    ));
}

#[tokio::test]
async fn a_repeated_chunk_is_acknowledged_and_dropped() {
    let bus = Bus::embedded("t").await.unwrap();
    let inbox = inbox(bus.subjects());
    let mut receiver = ChunkReceiver::subscribe_with(&bus, &inbox, Duration::from_secs(5))
        .await
        .unwrap();
    let send = |seq: u64, data: &'static [u8]| {
        let (bus, inbox) = (bus.clone(), inbox.clone());
        async move {
            let chunk = LogChunk {
                seq,
                data: data.to_vec(),
                end: false,
                error: None,
            };
            bus.request(
                &inbox,
                Headers::new(),
                codec::encode(&chunk).unwrap().into(),
                Duration::from_secs(2),
            )
            .await
            .map(|_| ())
        }
    };
    let task = tokio::spawn({
        let (a, b, c) = (send(1, b"a"), send(1, b"a"), send(2, b"b"));
        async move {
            a.await.unwrap();
            b.await.unwrap(); // acknowledged although dropped
            c.await.unwrap();
        }
    });
    assert_eq!(receiver.next_chunk().await.unwrap().unwrap().data, b"a");
    assert_eq!(receiver.next_chunk().await.unwrap().unwrap().data, b"b");
    task.await.unwrap();
}
