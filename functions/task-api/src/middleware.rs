//! Request middleware: each request runs in a span that continues the caller's trace and
//! carries its id, which a 5xx answer names; and what the layers around the routes put
//! into a request for them.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use shared::telemetry::{record_trace_id, request_trace};
use tracing::field::Empty;
use tracing::{info_span, Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::errors::ApiError;
use crate::responses;

/// The path the routes sit under, when not the root: `/dev` on a named stage.
#[derive(Debug, Clone)]
pub struct PathPrefix(pub String);

/// The request's id, for logs, traces and 5xx answers.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Runs a request in a span that continues the caller's trace, and names the request in
/// a 5xx answer.
pub(crate) async fn trace_request(mut request: Request, next: Next) -> Response {
    let request_id = request_id(&request);
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let span = request_span(&request, &request_id);
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
        if let Some(err) = response.extensions_mut().remove::<ApiError>() {
            response = responses::error(&ApiError {
                request_id: Some(request_id),
                ..err
            });
        }
    }
    response
}

/// The request's id: API Gateway's, else Lambda's, else (locally) a new one.
fn request_id(request: &Request) -> String {
    let gateway = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
        _ => None,
    };
    gateway
        .or_else(|| request.lambda_context_ref().map(|c| c.request_id.clone()))
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| Uuid::new_v4().to_string())
}

/// The span of one request: in the X-Ray trace its headers name, else under the current span
/// (in Lambda, the invocation's, in the trace Lambda names), linked to a client's
/// `traceparent`; with no trace of ours, in the client's trace, else in a new one.
fn request_span(request: &Request, request_id: &str) -> Span {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let method = request.method().as_str();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or(request.uri().path(), |matched| matched.as_str());
    let span = info_span!(
        "HTTP request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = route,
        url.path = request.uri().path(),
        http.response.status_code = Empty,
        task.id = Empty,
        trace_id = Empty,
        correlation_id = request_id,
    );
    // A client's traceparent is linked, never followed where a trace of ours exists.
    let trace = request_trace(header("traceparent"), header("x-amzn-trace-id"));
    if let Some(parent) = trace.parent {
        // Only an invalid context is refused, and `request_trace` gives valid ones.
        let _ = span.set_parent(parent);
    }
    if let Some(client) = trace.link {
        span.add_link(client);
    }
    record_trace_id(&span);
    span
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use crate::testing::{call, fixture};

    #[tokio::test]
    async fn when_storage_fails_should_answer_500_with_the_request_id_and_no_detail() {
        let f = fixture();
        f.store.set_down(true);

        let (status, body) = call(&f, Some("alice"), Method::GET, "/tasks", "").await;

        assert_eq!(
            (status, body["error"].as_str()),
            (500, Some("internal_error"))
        );
        let request_id = body["request_id"].as_str().expect("a request id");
        assert!(uuid::Uuid::parse_str(request_id).is_ok(), "{body}");
        assert!(!body.to_string().contains("out of reach"), "{body}");
    }
}
