//! Trace context across process boundaries: a request's place in a trace from its headers
//! and Lambda's X-Ray trace id, and the `traceparent` of the current span for the events
//! it emits.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId};
use opentelemetry::Context;
use opentelemetry_aws::trace::XrayPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Where a request's span goes: under `parent` (`None`: under the current span), linked to
/// `link`.
#[derive(Debug, Default)]
pub struct RequestTrace {
    pub parent: Option<Context>,
    pub link: Option<SpanContext>,
}

/// A request's place in a trace. A client's W3C `traceparent` is the client's, not ours:
/// it neither picks our trace id nor decides our sampling. Where our own trace exists (an
/// `X-Amzn-Trace-Id` header, or the current span: in Lambda, the invocation's, which X-Ray
/// sampled), the request stays in it and links to the client's span. Only where there is
/// no trace of ours at all (a local server, with no X-Ray above it) does the request
/// continue the client's trace, and then sampled, as everything is there.
pub fn request_trace(traceparent: Option<&str>, xray_header: Option<&str>) -> RequestTrace {
    let client = traceparent
        .and_then(context_of)
        .map(|context| context.span().span_context().clone());
    match (xray_header.and_then(xray_parent), client) {
        (Some(ours), link) => RequestTrace {
            parent: Some(ours),
            link,
        },
        (None, Some(client)) if in_a_trace() => RequestTrace {
            parent: None,
            link: Some(client),
        },
        (None, Some(client)) => {
            let sampled = SpanContext::new(
                client.trace_id(),
                client.span_id(),
                TraceFlags::SAMPLED,
                true,
                client.trace_state().clone(),
            );
            RequestTrace {
                parent: Some(Context::new().with_remote_span_context(sampled)),
                link: None,
            }
        }
        (None, None) => RequestTrace::default(),
    }
}

/// Whether a trace of ours is current: the current `tracing` span's, or an attached
/// OpenTelemetry context.
fn in_a_trace() -> bool {
    tracing::Span::current()
        .context()
        .span()
        .span_context()
        .is_valid()
        || Context::current().span().span_context().is_valid()
}

/// The context a W3C `traceparent` names, if valid.
pub fn context_of(traceparent: &str) -> Option<Context> {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.trim().to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    context.span().span_context().is_valid().then_some(context)
}

/// The context an X-Ray trace header (`Root=…;Parent=…;Sampled=…`) names, with the
/// sampling decision it carries; `None` if it names no trace.
///
/// A header may name the trace but not its sender's segment (API Gateway sends a `Root`
/// without `Parent`): the trace is continued under a stand-in for that segment. A header
/// that leaves the decision open (no `Sampled`, or `Sampled=?`) takes the current trace's:
/// in Lambda, the one X-Ray made for the invocation; where nothing is current, sampled.
pub fn xray_parent(header: &str) -> Option<Context> {
    let carrier = HashMap::from([("x-amzn-trace-id".to_owned(), header.trim().to_owned())]);
    let context = XrayPropagator::default().extract(&carrier);
    let found = context.span().span_context().clone();
    if found.trace_id() == TraceId::INVALID {
        return None;
    }
    let parent_id = if found.span_id() == SpanId::INVALID {
        RandomIdGenerator::default().new_span_id()
    } else {
        found.span_id()
    };
    let flags = if found.trace_flags() & XRAY_DEFERRED == XRAY_DEFERRED {
        current_decision()
    } else {
        found.trace_flags() & TraceFlags::SAMPLED
    };
    let parent = SpanContext::new(
        found.trace_id(),
        parent_id,
        flags,
        true,
        found.trace_state().clone(),
    );
    Some(Context::new().with_remote_span_context(parent))
}

/// The flag `XrayPropagator` gives a header that leaves the sampling decision open.
const XRAY_DEFERRED: TraceFlags = TraceFlags::new(0x02);

/// Whether the current trace is sampled; sampled when there is none.
fn current_decision() -> TraceFlags {
    let current = Context::current();
    let span = current.span();
    let found = span.span_context();
    if found.is_valid() {
        found.trace_flags() & TraceFlags::SAMPLED
    } else {
        TraceFlags::SAMPLED
    }
}

/// Records `span`'s trace id in its `trace_id` field, so every log line within it names
/// the trace. Call it once the span's parent is set: it starts the span.
pub fn record_trace_id(span: &tracing::Span) {
    let context = span.context();
    let trace_id = context.span().span_context().trace_id();
    if trace_id != TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

/// The W3C `traceparent` of the current span, for the events it emits; `None` outside
/// any traced span.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let current = span.span_context();
    if !current.is_valid() || current.span_id() == SpanId::INVALID {
        return None;
    }
    let flags = current.trace_flags() & TraceFlags::SAMPLED;
    Some(format!(
        "00-{}-{}-{:02x}",
        current.trace_id(),
        current.span_id(),
        flags.to_u8()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(context: &Context) -> (String, String) {
        let span = context.span();
        let found = span.span_context();
        (found.trace_id().to_string(), found.span_id().to_string())
    }

    const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn remote_parent(traceparent: Option<&str>, xray: Option<&str>) -> Option<Context> {
        request_trace(traceparent, xray).parent
    }

    #[test]
    fn when_a_client_traceparent_arrives_beside_our_xray_trace_should_only_be_linked() {
        // Given our X-Ray trace, unsampled, and a client's sampled traceparent
        let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0";

        // When the request's place is decided
        let trace = request_trace(Some(CLIENT), Some(xray));

        // Then it stays in our trace, with our decision, and links to the client's span
        let parent = trace.parent.expect("our trace");
        assert_eq!(
            ids(&parent),
            (
                "5759e988bd862e3fe1be46a994272793".into(),
                "53995c3f42cd8ad8".into()
            )
        );
        assert!(!parent.span().span_context().is_sampled());
        let link = trace.link.expect("the client's span, linked");
        assert_eq!(
            link.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(link.span_id().to_string(), "00f067aa0ba902b7");
    }

    #[test]
    fn when_a_client_traceparent_arrives_within_the_invocations_trace_should_only_be_linked() {
        // Given the invocation's trace, as Lambda names it, current and unsampled
        let lambda = "Root=1-6759e988-bd862e3fe1be46a994272793;Parent=63995c3f42cd8ad8;Sampled=0";
        let _current = xray_parent(lambda).unwrap().attach();

        // When a request brings a client's sampled traceparent and no X-Ray header
        let trace = request_trace(Some(CLIENT), None);

        // Then the request stays in the current trace and only links to the client's span
        assert!(trace.parent.is_none(), "{:?}", trace.parent);
        assert_eq!(
            trace
                .link
                .map(|link| link.trace_id().to_string())
                .as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }

    #[test]
    fn when_no_trace_of_ours_exists_should_continue_the_clients_sampled_whatever_it_asked() {
        // Given no trace current (a local server) and a client that asks not to sample
        let unsampled = CLIENT.replace("-01", "-00");

        // When the request's place is decided
        let trace = request_trace(Some(&unsampled), None);

        // Then it continues the client's trace, sampled by our rule, with nothing to link
        let parent = trace.parent.expect("the client's trace");
        assert_eq!(
            ids(&parent),
            (
                "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                "00f067aa0ba902b7".into()
            )
        );
        assert!(parent.span().span_context().is_sampled());
        assert!(trace.link.is_none());
    }

    #[test]
    fn when_only_an_xray_header_with_its_parent_arrives_should_continue_it() {
        let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let context = remote_parent(None, Some(xray)).unwrap();
        assert_eq!(
            ids(&context),
            (
                "5759e988bd862e3fe1be46a994272793".into(),
                "53995c3f42cd8ad8".into()
            )
        );
    }

    #[test]
    fn when_api_gateway_names_only_the_root_should_continue_its_trace() {
        // As HTTP APIs send it: a Root, no Parent.
        let context =
            remote_parent(None, Some("Root=1-5759e988-bd862e3fe1be46a994272793")).unwrap();
        let (trace, span) = ids(&context);
        assert_eq!(trace, "5759e988bd862e3fe1be46a994272793");
        assert_ne!(span, SpanId::INVALID.to_string());
        assert!(context.span().span_context().is_sampled());
    }

    #[test]
    fn when_lambda_names_the_trace_should_keep_its_parent_and_sampling() {
        let sampled = "Root=1-6759e988-bd862e3fe1be46a994272793;Parent=63995c3f42cd8ad8;Sampled=1";
        let context = xray_parent(sampled).unwrap();
        assert_eq!(
            ids(&context),
            (
                "6759e988bd862e3fe1be46a994272793".into(),
                "63995c3f42cd8ad8".into()
            )
        );
        assert!(context.span().span_context().is_sampled());
        let unsampled = sampled.replace("Sampled=1", "Sampled=0");
        let context = xray_parent(&unsampled).unwrap();
        assert!(!context.span().span_context().is_sampled());
        assert!(context.span().span_context().is_remote());
    }

    #[test]
    fn when_a_header_leaves_sampling_open_should_take_the_current_traces_decision() {
        let lambda = "Root=1-6759e988-bd862e3fe1be46a994272793;Parent=63995c3f42cd8ad8;Sampled=0";
        let _current = xray_parent(lambda).unwrap().attach();

        for header in [
            "Root=1-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?",
        ] {
            let context = remote_parent(None, Some(header)).unwrap();
            let (trace, _) = ids(&context);
            assert_eq!(trace, "5759e988bd862e3fe1be46a994272793", "{header}");
            assert!(!context.span().span_context().is_sampled(), "{header}");
        }
        let decided = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let context = remote_parent(None, Some(decided)).unwrap();
        assert!(context.span().span_context().is_sampled());
    }

    #[test]
    fn when_nothing_names_a_trace_should_stay_in_the_current_one() {
        assert!(remote_parent(None, None).is_none());
        assert!(remote_parent(Some("garbage"), Some("nonsense")).is_none());
        assert!(remote_parent(
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Some("Root=1-abc"),
        )
        .is_none());
    }

    #[test]
    fn when_outside_any_span_should_name_no_traceparent() {
        assert_eq!(current_traceparent(), None);
    }
}
