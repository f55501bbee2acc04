//! The bus conformance suite: every test runs against the embedded transport and against a real nats-server, so
//! the embedded bus behaves as NATS does (or it is a toy).

#![allow(missing_docs)] // a test crate: its items document nothing public

mod harness;
mod suite;

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = crate::harness::Harness::embedded().await;
                    crate::suite::$name(&h).await;
                }
            )*
        }
        mod nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = crate::harness::Harness::nats().await;
                    crate::suite::$name(&h).await;
                }
            )*
        }
    };
}

conformance!(
    publish_reaches_subscribers_with_headers,
    wildcards_match_like_nats,
    queue_groups_deliver_each_message_once,
    request_reply_round_trip,
    request_times_out_when_nobody_answers,
    no_responders_is_distinct_from_timeout,
    large_replies_are_chunked_and_reassembled,
    oversized_publish_is_refused,
    malformed_subjects_are_refused,
    dropping_a_subscription_unsubscribes,
    one_publisher_keeps_its_order,
    every_message_carries_trace_context,
    trace_context_follows_the_current_span,
    encoded_requests_round_trip,
    concurrent_requests_get_their_own_replies,
    large_requests_are_pulled_by_the_responder,
    oversized_request_bodies_are_refused_before_fetching,
);
