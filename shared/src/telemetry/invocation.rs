//! Each invocation's span, in the trace Lambda started for the invocation.

use std::task;

use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::LambdaInvocation;

use super::context::xray_parent;

/// Makes the span the Lambda runtime's OpenTelemetry layer opens for each invocation a
/// child of the trace Lambda names in `Lambda-Runtime-Trace-Id`: under the function's
/// X-Ray segment, sampled or not as X-Ray decided, so an invocation X-Ray did not sample
/// exports nothing. Without a parent the span would start a trace of its own, always
/// sampled: a subsegment of no segment, which the X-Ray exporter cannot translate.
///
/// Goes outside that layer (`Stack::new(its_layer, LambdaTraceLayer)`): the span takes the
/// current OpenTelemetry context as its parent when it is made, before it is entered.
#[derive(Clone, Copy, Debug, Default)]
pub struct LambdaTraceLayer;

impl<S> Layer<S> for LambdaTraceLayer {
    type Service = LambdaTrace<S>;

    fn layer(&self, inner: S) -> LambdaTrace<S> {
        LambdaTrace { inner }
    }
}

/// The service of [`LambdaTraceLayer`].
#[derive(Clone, Debug)]
pub struct LambdaTrace<S> {
    inner: S,
}

impl<S: Service<LambdaInvocation>> Service<LambdaInvocation> for LambdaTrace<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut task::Context<'_>) -> task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> S::Future {
        let parent = invocation
            .context
            .xray_trace_id
            .as_deref()
            .and_then(xray_parent);
        // Current only while the inner layers make (and first enter) the invocation's span.
        let _current = parent.map(opentelemetry::Context::attach);
        self.inner.call(invocation)
    }
}
