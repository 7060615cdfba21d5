//! Logs and traces of every function: JSON log lines (level from `RUST_LOG`; text for a
//! local server that asks, see [`LogFormat`]), and
//! OpenTelemetry spans made from `tracing` spans, exported to X-Ray in Lambda (to the
//! daemon Lambda runs at `AWS_XRAY_DAEMON_ADDRESS`) or as JSON lines to `OTEL_SPANS_FILE`.

mod context;
mod conventions;
mod file_exporter;
mod invocation;
mod log_writer;
mod readable;

use lambda_runtime::layers::{OpenTelemetryFaasTrigger, OpenTelemetryLayer};
use lambda_runtime::tower::layer::util::Stack;
use opentelemetry::global;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_aws::trace::{XrayIdGenerator, XrayPropagator};
use opentelemetry_aws::xray_exporter::daemon_client::XrayDaemonClient;
use opentelemetry_aws::xray_exporter::XrayExporter;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::resource::{EnvResourceDetector, TelemetryResourceDetector};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanExporter, TracerProviderBuilder,
};
use opentelemetry_sdk::Resource;
use tracing::subscriber::Interest;
use tracing::{warn, Level};
use tracing_subscriber::filter::{dynamic_filter_fn, LevelFilter, Targets};
use tracing_subscriber::layer::Context;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

pub use context::{
    context_of, current_traceparent, record_trace_id, request_trace, xray_parent, RequestTrace,
};
pub use conventions::{attributes_of, Conventions};
pub use file_exporter::JsonLinesExporter;
pub use invocation::{LambdaTrace, LambdaTraceLayer};
use log_writer::ServiceStdout;

/// Where spans go locally: a file of JSON lines that `infra/local.sh trace` reads.
pub const SPANS_FILE: &str = "OTEL_SPANS_FILE";
/// Set by Lambda when X-Ray tracing is active: `host:port` of its daemon.
const XRAY_DAEMON: &str = "AWS_XRAY_DAEMON_ADDRESS";

/// The installed tracing; `flush` after each invocation, so no span waits in a frozen
/// environment.
#[derive(Clone)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// The Lambda runtime's layer: a span per invocation (`faas.*` attributes, cold start)
    /// in the trace Lambda names for it, and every span exported when the invocation ends.
    pub fn lambda_layer(
        &self,
        trigger: OpenTelemetryFaasTrigger,
    ) -> Stack<OpenTelemetryLayer<impl Fn() + Clone>, LambdaTraceLayer> {
        let telemetry = self.clone();
        Stack::new(
            OpenTelemetryLayer::new(move || telemetry.flush()).with_trigger(trigger),
            LambdaTraceLayer,
        )
    }

    /// Exports every finished span now.
    pub fn flush(&self) {
        if let Err(err) = self.provider.force_flush() {
            warn!(error = %err, "spans could not be exported");
        }
    }
}

/// Installs logging and tracing for `service`; call once at the top of `main`. Spans go
/// to X-Ray in Lambda, to `OTEL_SPANS_FILE` when set, and nowhere otherwise (trace context
/// still flows into the events).
pub fn init(service: &'static str) -> Telemetry {
    init_with(service, LogFormat::Json)
}

/// How log lines are written: JSON lines, as Lambda's functions write them for CloudWatch
/// Logs, or text for people reading a local server's terminal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            _ => Err(format!("{name:?} is not a log format: text or json")),
        }
    }
}

/// [`init`] with log lines in `format`.
pub fn init_with(service: &'static str, format: LogFormat) -> Telemetry {
    let builder = SdkTracerProvider::builder();
    let builder = match (std::env::var(XRAY_DAEMON), std::env::var(SPANS_FILE)) {
        (Ok(address), _) => match xray(&address) {
            Ok(exporter) => batched(builder, exporter),
            Err(err) => {
                eprintln!("{service}: spans are not exported, the X-Ray daemon at {address} is unusable: {err}");
                builder
            }
        },
        (_, Ok(path)) => match JsonLinesExporter::append_to(&path) {
            Ok(exporter) => batched(builder, exporter),
            Err(err) => {
                eprintln!("{service}: spans are not written, {path} cannot be opened: {err}");
                builder
            }
        },
        _ => builder,
    };
    let telemetry = telemetry(builder, service);
    subscriber(&telemetry, service, format).init();
    telemetry
}

/// Installs tracing into `exporter` for the current thread only, as a test wants it;
/// spans are exported as they end. Dropping the guard uninstalls it.
pub fn init_for_test<E: SpanExporter + 'static>(
    exporter: E,
) -> (Telemetry, tracing::subscriber::DefaultGuard) {
    let telemetry = telemetry(
        SdkTracerProvider::builder().with_simple_exporter(Conventions(exporter)),
        "test",
    );
    let guard = tracing::subscriber::set_default(subscriber(&telemetry, "test", LogFormat::Json));
    (telemetry, guard)
}

/// Spans queue for a thread of their own that exports them. An invocation makes a few
/// dozen spans at most and they are flushed when it ends, so the queue holds 256: the
/// SDK's default of 2048 spans is allocated, and its memory touched, on every cold start.
const SPAN_QUEUE: usize = 256;

fn batched<E: SpanExporter + 'static>(
    builder: TracerProviderBuilder,
    exporter: E,
) -> TracerProviderBuilder {
    let processor = BatchSpanProcessor::builder(Conventions(exporter))
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(SPAN_QUEUE)
                .build(),
        )
        .build();
    builder.with_span_processor(processor)
}

fn xray(address: &str) -> Result<XrayExporter<XrayDaemonClient>, Box<dyn std::error::Error>> {
    let address = address.parse()?;
    Ok(XrayExporter::new(XrayDaemonClient::new(address)?))
}

/// X-Ray's trace ids (they start with the time), W3C and X-Ray headers both understood.
fn telemetry(builder: TracerProviderBuilder, service: &'static str) -> Telemetry {
    global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(XrayPropagator::default()),
    ]));
    let provider = builder
        .with_id_generator(XrayIdGenerator::default())
        .with_resource(resource(service))
        .build();
    Telemetry { provider }
}

/// The service, the SDK's own attributes and `OTEL_RESOURCE_ATTRIBUTES`; not the default
/// detectors' guess at a service name, which `service` replaces anyway.
fn resource(service: &'static str) -> Resource {
    Resource::builder_empty()
        .with_detectors(&[
            Box::new(TelemetryResourceDetector),
            Box::new(EnvResourceDetector::new()),
        ])
        .with_service_name(service)
        .build()
}

/// What becomes a span: our own spans and events at `info` and above, and the AWS SDK's
/// span of each call (at `debug`) made within one of ours, not its inner steps, its debug
/// logs or the calls of idle polling.
fn exported<S>(metadata: &tracing::Metadata<'_>, within: &Context<'_, S>) -> bool
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    if metadata.target().starts_with("aws_sdk_") {
        metadata.is_span() && within.lookup_current().is_some()
    } else {
        *metadata.level() <= Level::INFO
    }
}

/// [`exported`] for what a callsite's metadata alone decides, once per callsite: the AWS
/// SDK's events and inner spans, and our own debug and trace, are never asked about again
/// (the SDK makes dozens a call); only the SDK's spans depend on where they are made.
fn exported_callsite(metadata: &'static tracing::Metadata<'static>) -> Interest {
    if metadata.target().starts_with("aws_sdk_") {
        if metadata.is_span() {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    } else if *metadata.level() <= Level::INFO {
        Interest::always()
    } else {
        Interest::never()
    }
}

/// The log level: `RUST_LOG` when set, else Lambda's `AWS_LAMBDA_LOG_LEVEL` (which the
/// template's logging configuration sets), else `info`; never `trace` for the runtime's
/// own crates (see `RUNTIME_TARGETS`).
///
/// `RUST_LOG` takes a level and `target=level` directives, comma-separated
/// (`debug`, `info,shared=debug`). The filter is `tracing-subscriber`'s `Targets`, not
/// its `EnvFilter`, whose span and field directives would bring a regex engine into
/// every function.
fn log_filter(rust_log: Option<&str>, lambda_level: Option<&str>) -> Targets {
    cap_runtime(requested_filter(rust_log, lambda_level))
}

/// The Lambda runtime's crates log each invocation's raw event at `trace`: an API request
/// with its `Authorization` header, a queue message with its body. They log at `debug`
/// at most, whatever was asked.
const RUNTIME_TARGETS: [&str; 3] = ["lambda_runtime", "lambda_runtime_api_client", "lambda_http"];

fn cap_runtime(filter: Targets) -> Targets {
    RUNTIME_TARGETS.into_iter().fold(filter, |filter, target| {
        let most_verbose = [
            Level::TRACE,
            Level::DEBUG,
            Level::INFO,
            Level::WARN,
            Level::ERROR,
        ]
        .into_iter()
        .find(|level| filter.would_enable(target, level));
        let capped = match most_verbose {
            Some(Level::TRACE) => LevelFilter::DEBUG,
            Some(level) => LevelFilter::from_level(level),
            None => LevelFilter::OFF,
        };
        filter.with_target(target, capped)
    })
}

fn requested_filter(rust_log: Option<&str>, lambda_level: Option<&str>) -> Targets {
    if let Some(directives) = rust_log.filter(|directives| !directives.trim().is_empty()) {
        match directives.parse::<Targets>() {
            Ok(filter) => return filter,
            Err(err) => {
                eprintln!(
                    "RUST_LOG={directives} is not understood ({err}): logging at the default level"
                )
            }
        }
    }
    let level = match lambda_level
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "trace" => LevelFilter::TRACE,
        "debug" => LevelFilter::DEBUG,
        "warn" => LevelFilter::WARN,
        "error" | "fatal" => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    };
    Targets::new().with_default(level)
}

fn subscriber(
    telemetry: &Telemetry,
    service: &'static str,
    format: LogFormat,
) -> impl tracing::Subscriber + Send + Sync {
    let filter = || {
        log_filter(
            std::env::var("RUST_LOG").ok().as_deref(),
            std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        )
    };
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(ServiceStdout { service })
            .with_current_span(true)
            .with_target(false)
            .with_filter(filter())
    });
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .event_format(readable::Readable)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_filter(filter())
    });
    let spans = tracing_opentelemetry::layer()
        .with_tracer(telemetry.provider.tracer(service))
        .with_filter(
            dynamic_filter_fn(exported)
                .with_max_level_hint(LevelFilter::DEBUG)
                .with_callsite_filter(exported_callsite),
        );
    Registry::default().with(json).with(text).with(spans)
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::log_filter;

    #[test]
    fn when_a_log_format_is_named_should_read_text_or_json_and_refuse_others() {
        use super::LogFormat;
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!(" Text".parse(), Ok(LogFormat::Text));
        assert!("pretty"
            .parse::<LogFormat>()
            .unwrap_err()
            .contains("text or json"));
    }

    #[test]
    fn rust_log_directives_should_set_the_level_per_target() {
        let filter = log_filter(Some("warn,shared=debug"), Some("ERROR"));
        assert!(filter.would_enable("shared::adapters", &Level::DEBUG));
        assert!(!filter.would_enable("shared::adapters", &Level::TRACE));
        assert!(filter.would_enable("aws_smithy_runtime", &Level::WARN));
        assert!(!filter.would_enable("aws_smithy_runtime", &Level::INFO));
    }

    #[test]
    fn without_rust_log_lambdas_log_level_should_apply() {
        let filter = log_filter(None, Some("DEBUG"));
        assert!(filter.would_enable("task_api", &Level::DEBUG));
        assert!(!filter.would_enable("task_api", &Level::TRACE));
        let fatal = log_filter(Some(" "), Some("FATAL"));
        assert!(fatal.would_enable("task_api", &Level::ERROR));
        assert!(!fatal.would_enable("task_api", &Level::WARN));
    }

    #[test]
    fn when_trace_is_asked_for_the_runtime_should_log_at_debug_at_most() {
        // Given the levels that would have the runtime log raw events
        for filter in [
            log_filter(Some("trace"), None),
            log_filter(Some("info,lambda_runtime=trace,lambda_http=trace"), None),
            log_filter(None, Some("TRACE")),
        ] {
            // Then its crates log at debug, the raw event's trace line not at all
            for target in [
                "lambda_runtime::layers::api_response",
                "lambda_runtime_api_client",
                "lambda_http::request",
            ] {
                assert!(!filter.would_enable(target, &Level::TRACE), "{target}");
                assert!(filter.would_enable(target, &Level::DEBUG), "{target}");
            }
        }
        // And the other crates at what was asked
        assert!(log_filter(Some("trace"), None).would_enable("shared", &Level::TRACE));
    }

    #[test]
    fn when_less_than_trace_is_asked_for_the_runtime_should_log_no_more_than_that() {
        let info = log_filter(None, Some("INFO"));
        assert!(info.would_enable("lambda_runtime", &Level::INFO));
        assert!(!info.would_enable("lambda_runtime", &Level::DEBUG));
        let errors = log_filter(Some("error"), None);
        assert!(!errors.would_enable("lambda_runtime", &Level::WARN));
    }

    #[test]
    fn an_unreadable_rust_log_or_no_level_should_log_at_info() {
        for filter in [
            log_filter(Some("shared=loud"), None),
            log_filter(None, None),
        ] {
            assert!(filter.would_enable("shared", &Level::INFO));
            assert!(!filter.would_enable("shared", &Level::DEBUG));
        }
    }
}
