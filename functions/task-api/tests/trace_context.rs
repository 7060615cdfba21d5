//! The trace context a request continues and its events carry. A test binary of its own:
//! `tracing` caches per call site whether anyone listens, which tests running beside
//! these on other threads without a subscriber would disturb.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Method;
use axum::middleware;
use dashboard::memory::MemoryDashboard;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use shared::events::EventEnvelope;
use shared::memory::{MemoryStore, RecordingPublisher};
use shared::service::TaskService;
use task_api::{identity, router, Deps, MemoryRequestKeys};
use tower::ServiceExt;
use tracing::Instrument;

/// Creates a task with `headers`; the request span the exporter holds, and the event the
/// publisher got.
async fn traced_create(headers: &[(&'static str, &str)]) -> (SpanData, EventEnvelope) {
    let (span, event) = traced_create_within(headers, None).await;
    (span.expect("a request span"), event)
}

/// The same, within the invocation's trace that `lambda` (an X-Ray trace id, as Lambda
/// names it) gives, when one is given; no span when that trace is not sampled.
async fn traced_create_within(
    headers: &[(&'static str, &str)],
    lambda: Option<&str>,
) -> (Option<SpanData>, EventEnvelope) {
    let exporter = InMemorySpanExporter::default();
    let (_telemetry, _installed) = shared::telemetry::init_for_test(exporter.clone());
    let store = Arc::new(MemoryStore::new());
    let publisher = Arc::new(RecordingPublisher::new());
    let deps = Deps::new(
        TaskService::new(store.clone(), store, publisher.clone()),
        Arc::new(MemoryDashboard::default()),
        MemoryRequestKeys::new(),
        Arc::new(shared::memory::MemoryArchive::default()),
    );
    let mut request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/tasks")
        .header("content-type", "application/json")
        .header(identity::USER_HEADER, "alice")
        .body(Body::from(r#"{"title":"t","description":""}"#))
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }

    let app = router(deps).layer(middleware::from_fn(identity::local_headers));
    let response = match lambda.and_then(shared::telemetry::xray_parent) {
        Some(invocation) => {
            let span = tracing::info_span!("Lambda invocation");
            let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(&span, invocation);
            app.oneshot(request).instrument(span).await.unwrap()
        }
        None => app.oneshot(request).await.unwrap(),
    };

    assert_eq!(response.status(), 201);
    let span = exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .find(|s| s.name == "POST /tasks");
    (span, publisher.published().remove(0))
}

#[tokio::test]
async fn when_no_trace_header_arrives_should_start_a_trace_the_event_carries() {
    let (span, event) = traced_create(&[]).await;

    let traceparent = event.traceparent.expect("a traceparent");
    assert_eq!(
        traceparent,
        format!(
            "00-{}-{}-01",
            span.span_context.trace_id(),
            span.span_context.span_id()
        )
    );
}

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn when_a_caller_sends_its_traceparent_in_lambda_should_link_it_and_keep_the_invocations_trace(
) {
    // Given the invocation's trace, sampled, as Lambda names it
    let lambda = "Root=1-6759e988-bd862e3fe1be46a994272793;Parent=63995c3f42cd8ad8;Sampled=1";

    // When a caller sends its own traceparent
    let (span, event) = traced_create_within(&[("traceparent", CALLER)], Some(lambda)).await;

    // Then the request is in the invocation's trace, not the caller's, and links to the
    // caller's span
    let span = span.expect("a request span");
    assert_eq!(
        span.span_context.trace_id().to_string(),
        "6759e988bd862e3fe1be46a994272793"
    );
    let links: Vec<String> = span
        .links
        .iter()
        .map(|link| {
            format!(
                "{}-{}",
                link.span_context.trace_id(),
                link.span_context.span_id()
            )
        })
        .collect();
    assert_eq!(links, ["4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"]);
    let traceparent = event.traceparent.expect("a traceparent");
    assert!(
        traceparent.starts_with("00-6759e988bd862e3fe1be46a994272793-"),
        "{traceparent}"
    );
}

#[tokio::test]
async fn when_a_caller_asks_to_sample_a_request_x_ray_did_not_should_record_nothing() {
    // Given an invocation X-Ray chose not to sample
    let lambda = "Root=1-6759e988-bd862e3fe1be46a994272793;Parent=63995c3f42cd8ad8;Sampled=0";

    // When a caller sends a traceparent that asks for sampling (flags 01)
    let (span, event) = traced_create_within(&[("traceparent", CALLER)], Some(lambda)).await;

    // Then the request is not recorded, and its event carries X-Ray's decision
    assert!(span.is_none(), "{span:?}");
    let traceparent = event.traceparent.expect("a traceparent");
    assert!(
        traceparent.starts_with("00-6759e988bd862e3fe1be46a994272793-")
            && traceparent.ends_with("-00"),
        "{traceparent}"
    );
}

#[tokio::test]
async fn when_a_caller_sends_its_traceparent_beside_an_xray_header_should_only_link_it() {
    let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

    let (span, _) = traced_create(&[("traceparent", CALLER), ("x-amzn-trace-id", xray)]).await;

    assert_eq!(
        span.span_context.trace_id().to_string(),
        "5759e988bd862e3fe1be46a994272793"
    );
    assert_eq!(span.parent_span_id.to_string(), "53995c3f42cd8ad8");
    assert_eq!(span.links.len(), 1);
}

#[tokio::test]
async fn when_a_caller_sends_its_traceparent_with_no_trace_of_ours_should_continue_it() {
    let caller = CALLER;

    let (span, event) = traced_create(&[("traceparent", caller)]).await;

    // Locally (no X-Ray): in the caller's trace, under the request's span rather than the caller's
    assert_eq!(span.parent_span_id.to_string(), "00f067aa0ba902b7");
    let expected = format!(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
        span.span_context.span_id()
    );
    assert_eq!(event.traceparent.as_deref(), Some(expected.as_str()));
}

#[tokio::test]
async fn when_api_gateway_sends_a_root_without_parent_should_continue_its_trace() {
    let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";

    let (span, event) = traced_create(&[("x-amzn-trace-id", xray)]).await;

    assert_eq!(
        span.span_context.trace_id().to_string(),
        "5759e988bd862e3fe1be46a994272793"
    );
    assert!(event
        .traceparent
        .unwrap()
        .starts_with("00-5759e988bd862e3fe1be46a994272793-"));
}
