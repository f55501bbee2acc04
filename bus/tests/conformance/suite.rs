//! The conformance tests, written once against the transport-neutral [`Bus`] API.

use std::collections::HashSet;
use std::time::Duration;

use navarch_bus::{Bus, Bytes, Error, Headers, Subscription};
use opentelemetry::trace::TracerProvider as _;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

use crate::harness::Harness;

const WAIT: Duration = Duration::from_secs(5);

async fn recv(sub: &mut Subscription) -> navarch_bus::Message {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a message within 5 s")
        .expect("subscription open")
}

/// Nothing more arrives within a short while (used only to check absence; never to measure speed).
async fn silent(sub: &mut Subscription) {
    if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        panic!("unexpected message on {}", m.subject);
    }
}

async fn subscribed(bus: &Bus, subject: &str) -> Subscription {
    let sub = bus.subscribe(subject).await.expect("subscribe");
    bus.flush().await.expect("flush");
    sub
}

async fn serve_echo(bus: &Bus, subject: &str) -> tokio::task::JoinHandle<()> {
    let mut sub = subscribed(bus, subject).await;
    let responder = bus.clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let mut headers = Headers::new();
            headers.insert("echo", m.headers.get("x-test").unwrap_or("none"));
            responder
                .respond(&m, headers, m.payload.clone())
                .await
                .expect("respond");
        }
    })
}

pub async fn publish_reaches_subscribers_with_headers(h: &Harness) {
    let mut s1 = subscribed(&h.b, "t.one").await;
    let mut s2 = subscribed(&h.a, "t.one").await;
    let mut headers = Headers::new();
    headers.insert("x-test", "value with spaces");
    h.a.publish("t.one", headers, Bytes::from_static(b"hello"))
        .await
        .unwrap();
    for sub in [&mut s1, &mut s2] {
        let m = recv(sub).await;
        assert_eq!(m.subject, "t.one");
        assert_eq!(&m.payload[..], b"hello");
        assert_eq!(m.headers.get("x-test"), Some("value with spaces"));
        assert_eq!(m.status, None);
    }
}

pub async fn wildcards_match_like_nats(h: &Harness) {
    let mut star = subscribed(&h.b, "w.*.end").await;
    let mut tail = subscribed(&h.b, "w.>").await;
    h.a.publish("w.x.end", Headers::new(), Bytes::from_static(b"1"))
        .await
        .unwrap();
    h.a.publish("w.x.y.end", Headers::new(), Bytes::from_static(b"2"))
        .await
        .unwrap();
    h.a.publish("w", Headers::new(), Bytes::from_static(b"3"))
        .await
        .unwrap();
    h.a.publish("other.x.end", Headers::new(), Bytes::from_static(b"4"))
        .await
        .unwrap();
    assert_eq!(&recv(&mut star).await.payload[..], b"1");
    silent(&mut star).await;
    assert_eq!(&recv(&mut tail).await.payload[..], b"1");
    assert_eq!(&recv(&mut tail).await.payload[..], b"2");
    silent(&mut tail).await;
}

pub async fn queue_groups_deliver_each_message_once(h: &Harness) {
    let mut q1 = h.b.queue_subscribe("q.work", "workers").await.unwrap();
    let mut q2 = h.a.queue_subscribe("q.work", "workers").await.unwrap();
    let mut plain = subscribed(&h.b, "q.work").await;
    h.a.flush().await.unwrap();
    const N: usize = 200;
    for i in 0..N {
        h.a.publish("q.work", Headers::new(), Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    h.a.flush().await.unwrap();
    let mut seen = HashSet::new();
    let mut from = [0usize; 2];
    while seen.len() < N {
        let (m, which) = tokio::select! {
            m = recv(&mut q1) => (m, 0),
            m = recv(&mut q2) => (m, 1),
        };
        assert!(
            seen.insert(m.payload.clone()),
            "message delivered twice in the group"
        );
        from[which] += 1;
    }
    silent(&mut q1).await;
    silent(&mut q2).await;
    assert_eq!(from[0] + from[1], N);
    for _ in 0..N {
        recv(&mut plain).await;
    }
}

pub async fn request_reply_round_trip(h: &Harness) {
    let _echo = serve_echo(&h.b, "svc.echo").await;
    let mut headers = Headers::new();
    headers.insert("x-test", "42");
    let reply =
        h.a.request("svc.echo", headers, Bytes::from_static(b"ping"), WAIT)
            .await
            .unwrap();
    assert_eq!(&reply.payload[..], b"ping");
    assert_eq!(reply.headers.get("echo"), Some("42"));
}

pub async fn request_times_out_when_nobody_answers(h: &Harness) {
    let _silent = subscribed(&h.b, "svc.silent").await;
    let err =
        h.a.request(
            "svc.silent",
            Headers::new(),
            Bytes::new(),
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
}

pub async fn no_responders_is_distinct_from_timeout(h: &Harness) {
    let err =
        h.a.request("svc.nobody", Headers::new(), Bytes::new(), WAIT)
            .await
            .unwrap_err();
    assert!(matches!(err, Error::NoResponders { .. }), "{err:?}");
}

pub async fn large_replies_are_chunked_and_reassembled(h: &Harness) {
    let max = h.a.max_payload();
    let big: Vec<u8> = (0..max * 3 + 12345).map(|i| (i % 251) as u8).collect();
    let big = Bytes::from(big);
    let mut sub = subscribed(&h.b, "svc.big").await;
    let responder = h.b.clone();
    let payload = big.clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            responder
                .respond(&m, Headers::new(), payload.clone())
                .await
                .expect("respond");
        }
    });
    let reply =
        h.a.request("svc.big", Headers::new(), Bytes::new(), WAIT)
            .await
            .unwrap();
    assert_eq!(reply.payload.len(), big.len());
    assert!(reply.payload == big, "reassembled reply differs");
    assert_eq!(reply.headers.get(navarch_bus::client::CHUNK_HEADER), None);
}

pub async fn oversized_publish_is_refused(h: &Harness) {
    let too_big = Bytes::from(vec![0u8; h.a.max_payload() + 1]);
    let err =
        h.a.publish("big.one", Headers::new(), too_big)
            .await
            .unwrap_err();
    assert!(matches!(err, Error::PayloadTooLarge { .. }), "{err:?}");
    assert!(!err.is_retryable());
}

pub async fn malformed_subjects_are_refused(h: &Harness) {
    for bad in ["", "a..b", "a.*", "a.>", "a b"] {
        let err =
            h.a.publish(bad, Headers::new(), Bytes::new())
                .await
                .unwrap_err();
        assert!(
            matches!(err, Error::InvalidSubject(_)),
            "publish {bad:?}: {err:?}"
        );
    }
    for bad in ["", "a..b", "a.>.b", "a b"] {
        let err = h.a.subscribe(bad).await.err().expect("refused");
        assert!(
            matches!(err, Error::InvalidSubject(_)),
            "subscribe {bad:?}: {err:?}"
        );
    }
}

pub async fn dropping_a_subscription_unsubscribes(h: &Harness) {
    let sub = subscribed(&h.b, "gone.svc").await;
    drop(sub);
    h.b.flush().await.unwrap();
    // Unsubscribing travels to the server asynchronously; a request sees no responders once it has.
    let mut last = None;
    for _ in 0..50 {
        match h
            .a
            .request(
                "gone.svc",
                Headers::new(),
                Bytes::new(),
                Duration::from_millis(500),
            )
            .await
        {
            Err(Error::NoResponders { .. }) => return,
            other => last = Some(other),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("still subscribed after drop: {last:?}");
}

pub async fn one_publisher_keeps_its_order(h: &Harness) {
    let mut sub = subscribed(&h.b, "order.x").await;
    const N: u32 = 2000;
    for i in 0..N {
        h.a.publish(
            "order.x",
            Headers::new(),
            Bytes::from(i.to_be_bytes().to_vec()),
        )
        .await
        .unwrap();
    }
    for i in 0..N {
        let m = recv(&mut sub).await;
        assert_eq!(u32::from_be_bytes(m.payload[..4].try_into().unwrap()), i);
    }
}

pub async fn every_message_carries_trace_context(h: &Harness) {
    let mut sub = subscribed(&h.b, "trace.any").await;
    h.a.publish("trace.any", Headers::new(), Bytes::new())
        .await
        .unwrap();
    let m = recv(&mut sub).await;
    let id = navarch_bus::trace::trace_id(&m.headers).expect("a valid traceparent");
    assert_eq!(id.len(), 32);
    // Replies carry it too.
    let _echo = serve_echo(&h.b, "trace.echo").await;
    let reply =
        h.a.request("trace.echo", Headers::new(), Bytes::new(), WAIT)
            .await
            .unwrap();
    assert!(navarch_bus::trace::trace_id(&reply.headers).is_some());
}

pub async fn trace_context_follows_the_current_span(h: &Harness) {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("conformance")));
    let mut sub = subscribed(&h.b, "trace.span").await;
    let _guard = tracing::subscriber::set_default(subscriber);
    let span = tracing::info_span!("publisher");
    let expected = {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        span.context().span().span_context().trace_id().to_string()
    };
    h.a.publish("trace.span", Headers::new(), Bytes::new())
        .instrument(span)
        .await
        .unwrap();
    let m = recv(&mut sub).await;
    assert_eq!(
        navarch_bus::trace::trace_id(&m.headers).as_deref(),
        Some(expected.as_str())
    );
    // The receiver continues the same trace.
    let child = tracing::info_span!("receiver");
    navarch_bus::trace::continue_from(&m.headers, &child);
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    assert_eq!(
        child.context().span().span_context().trace_id().to_string(),
        expected
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Ask {
    Add(i64, i64),
    Name { first: String, last: Option<String> },
}

pub async fn encoded_requests_round_trip(h: &Harness) {
    let mut sub = subscribed(&h.b, "svc.calc").await;
    let responder = h.b.clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let answer: Result<String, String> = match navarch_bus::codec::decode::<Ask>(&m.payload)
            {
                Ok(Ask::Add(a, b)) => Ok((a + b).to_string()),
                Ok(Ask::Name { first, last }) => {
                    Ok(format!("{first} {}", last.unwrap_or_default()))
                }
                Err(e) => Err(e.to_string()),
            };
            responder.respond_encoded(&m, &answer).await.unwrap();
        }
    });
    let r: Result<String, String> =
        h.a.request_encoded("svc.calc", &Ask::Add(2, 40), WAIT)
            .await
            .unwrap();
    assert_eq!(r, Ok("42".into()));
    let r: Result<String, String> =
        h.a.request_encoded(
            "svc.calc",
            &Ask::Name {
                first: "Ada".into(),
                last: None,
            },
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(r, Ok("Ada ".into()));
    let garbage =
        h.a.request(
            "svc.calc",
            Headers::new(),
            Bytes::from_static(b"\xff\xff\xff"),
            WAIT,
        )
        .await
        .unwrap();
    let r: Result<String, String> = navarch_bus::codec::decode(&garbage.payload).unwrap();
    assert!(r.is_err());
}

pub async fn concurrent_requests_get_their_own_replies(h: &Harness) {
    let _echo = serve_echo(&h.b, "svc.many").await;
    let mut tasks = Vec::new();
    for i in 0..100u32 {
        let bus = h.a.clone();
        tasks.push(tokio::spawn(async move {
            let reply = bus
                .request("svc.many", Headers::new(), Bytes::from(i.to_string()), WAIT)
                .await
                .unwrap();
            assert_eq!(reply.payload, Bytes::from(i.to_string()));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

pub async fn large_requests_are_pulled_by_the_responder(h: &Harness) {
    let max = h.a.max_payload();
    let big: Bytes = (0..max * 2 + 777)
        .map(|i| (i % 253) as u8)
        .collect::<Vec<u8>>()
        .into();
    let mut sub =
        h.b.queue_subscribe("svc.upload", "uploaders")
            .await
            .unwrap();
    h.b.flush().await.unwrap();
    let responder = h.b.clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let answer = match responder.request_body(&m, 16 << 20, WAIT).await {
                Ok(body) => format!(
                    "{} {}",
                    body.len(),
                    body.iter().map(|b| *b as u64).sum::<u64>()
                ),
                Err(e) => format!("error: {e}"),
            };
            responder
                .respond(&m, Headers::new(), Bytes::from(answer))
                .await
                .unwrap();
        }
    });
    let reply =
        h.a.request("svc.upload", Headers::new(), big.clone(), WAIT)
            .await
            .unwrap();
    let expected = format!(
        "{} {}",
        big.len(),
        big.iter().map(|b| *b as u64).sum::<u64>()
    );
    assert_eq!(String::from_utf8_lossy(&reply.payload), expected);
    // A small request through the same responder is delivered inline.
    let reply =
        h.a.request(
            "svc.upload",
            Headers::new(),
            Bytes::from_static(b"abc"),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&reply.payload),
        format!("3 {}", 97 + 98 + 99)
    );
}

pub async fn oversized_request_bodies_are_refused_before_fetching(h: &Harness) {
    let big = Bytes::from(vec![7u8; h.a.max_payload() * 2]);
    let mut sub = subscribed(&h.b, "svc.small").await;
    let responder = h.b.clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let answer = match responder.request_body(&m, 1024, WAIT).await {
                Ok(body) => format!("got {}", body.len()),
                Err(Error::PayloadTooLarge { size, max }) => format!("too large {size} > {max}"),
                Err(e) => format!("error: {e}"),
            };
            responder
                .respond(&m, Headers::new(), Bytes::from(answer))
                .await
                .unwrap();
        }
    });
    let reply =
        h.a.request("svc.small", Headers::new(), big.clone(), WAIT)
            .await
            .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&reply.payload),
        format!("too large {} > 1024", big.len())
    );
    let reply =
        h.a.request(
            "svc.small",
            Headers::new(),
            Bytes::from(vec![1u8; 2000]),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&reply.payload),
        "too large 2000 > 1024"
    );
}
