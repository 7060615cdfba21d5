//! The span of each Lambda invocation, in the trace Lambda names for it. A test binary of
//! its own: `tracing` caches per call site whether anyone listens, which tests running
//! beside these on other threads without a subscriber would disturb.

use lambda_runtime::layers::OpenTelemetryFaasTrigger;
use lambda_runtime::tower::{service_fn, Layer, Service};
use lambda_runtime::{Context, Error, LambdaInvocation};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use shared::telemetry;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const LAMBDA_TRACE: &str = "5759e988bd862e3fe1be46a994272793";
const LAMBDA_SEGMENT: &str = "53995c3f42cd8ad8";

/// Runs one invocation carrying `xray` through the telemetry's Lambda layer: the spans
/// exported, and the trace id and sampling the handler saw.
async fn invoke(xray: Option<&str>) -> (Vec<SpanData>, String, bool) {
    let exporter = InMemorySpanExporter::default();
    let (telemetry, _installed) = telemetry::init_for_test(exporter.clone());
    let seen = std::sync::Mutex::new(None);
    let handler = service_fn(|_: LambdaInvocation| {
        let span = tracing::Span::current()
            .context()
            .span()
            .span_context()
            .clone();
        *seen.lock().unwrap() = Some((span.trace_id().to_string(), span.is_sampled()));
        async { Ok::<(), Error>(()) }
    });
    let mut service = telemetry
        .lambda_layer(OpenTelemetryFaasTrigger::Http)
        .layer(handler);
    let mut context = Context::default();
    context.request_id = "a-request".into();
    context.xray_trace_id = xray.map(str::to_owned);
    let (parts, _) = http::Response::new(()).into_parts();
    let invocation = LambdaInvocation {
        parts,
        body: Default::default(),
        context,
    };

    service.call(invocation).await.unwrap();

    let (trace_id, sampled) = seen.into_inner().unwrap().expect("the handler ran");
    (exporter.get_finished_spans().unwrap(), trace_id, sampled)
}

#[tokio::test]
async fn when_lambda_samples_the_invocation_should_export_its_span_under_lambdas_segment() {
    let xray =
        format!("Root=1-5759e988-bd862e3fe1be46a994272793;Parent={LAMBDA_SEGMENT};Sampled=1");

    let (spans, trace_id, sampled) = invoke(Some(&xray)).await;

    assert_eq!(spans.len(), 1, "{spans:?}");
    let span = &spans[0];
    assert_eq!(span.span_context.trace_id().to_string(), LAMBDA_TRACE);
    assert_eq!(span.parent_span_id.to_string(), LAMBDA_SEGMENT);
    assert!(span.parent_span_is_remote);
    assert_eq!((trace_id.as_str(), sampled), (LAMBDA_TRACE, true));
}

#[tokio::test]
async fn when_lambda_does_not_sample_the_invocation_should_export_nothing() {
    let xray =
        format!("Root=1-5759e988-bd862e3fe1be46a994272793;Parent={LAMBDA_SEGMENT};Sampled=0");

    let (spans, trace_id, sampled) = invoke(Some(&xray)).await;

    assert!(spans.is_empty(), "{spans:?}");
    // The handler's work is still in Lambda's trace, so its events carry it on, unsampled.
    assert_eq!((trace_id.as_str(), sampled), (LAMBDA_TRACE, false));
}

#[tokio::test]
async fn when_lambda_names_no_trace_should_start_one() {
    let (spans, trace_id, sampled) = invoke(None).await;

    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(spans[0].span_context.trace_id().to_string(), trace_id);
    assert_ne!(trace_id, LAMBDA_TRACE);
    assert!(sampled);
}
