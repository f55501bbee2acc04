//! W3C trace context (`traceparent`, `tracestate`) carried in every bus message's headers.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rand::Rng;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::headers::Headers;

/// The header that carries the trace and parent span ids.
pub const TRACEPARENT: &str = "traceparent";

struct HeaderInjector<'a>(&'a mut Headers);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value);
    }
}

struct HeaderExtractor<'a>(&'a Headers);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k).collect()
    }
}

/// Writes the current span's trace context into `headers`, unless they already carry one. Without a current
/// span (or without an OpenTelemetry layer) a fresh root context is written, so every message can be followed.
pub fn inject(headers: &mut Headers) {
    if headers.get(TRACEPARENT).is_some() {
        return;
    }
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
    } else {
        let mut rng = rand::rng();
        let trace: u128 = rng.random::<u128>().max(1);
        let span: u64 = rng.random::<u64>().max(1);
        headers.insert(TRACEPARENT, format!("00-{trace:032x}-{span:016x}-01"));
    }
}

/// The trace context carried by `headers` (an empty context when there is none or it is malformed).
pub fn extract(headers: &Headers) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Makes `span` a child of the trace carried by `headers`, so work done on receipt joins the sender's trace.
pub fn continue_from(headers: &Headers, span: &tracing::Span) {
    let cx = extract(headers);
    if cx.span().span_context().is_valid() {
        // Fails only when the span is disabled; then there is nothing to join.
        let _ = span.set_parent(cx);
    }
}

/// The trace id carried by `headers`, as 32 hex digits.
pub fn trace_id(headers: &Headers) -> Option<String> {
    let cx = extract(headers);
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_context_is_written_without_a_span() {
        let mut h = Headers::new();
        inject(&mut h);
        let tp = h.get(TRACEPARENT).unwrap().to_string();
        assert_eq!(tp.len(), 55, "{tp}");
        assert_eq!(trace_id(&h).unwrap(), tp[3..35]);
    }

    #[test]
    fn an_existing_context_is_kept() {
        let mut h = Headers::new();
        h.insert(
            TRACEPARENT,
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        );
        inject(&mut h);
        assert_eq!(trace_id(&h).unwrap(), "0af7651916cd43dd8448eb211c80319c");
    }

    #[test]
    fn malformed_context_extracts_as_none() {
        let mut h = Headers::new();
        h.insert(TRACEPARENT, "garbage");
        assert!(trace_id(&h).is_none());
    }
}
