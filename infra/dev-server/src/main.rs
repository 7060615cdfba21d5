//! Runs the functions on one machine against the emulators: the task API behind an HTTP
//! server on loopback (with `X-User-Id` standing in for the JWT authorizer), the outbox
//! sweeper on a timer, and every consumer fed by its queue as Lambda would. Configuration
//! comes from the same variables as in Lambda, plus `PORT` (3000), `SWEEP_INTERVAL_SECS`
//! (5), `EVENT_SOURCES` (the consumers' queues, as `infra/provision.py` prints them) and,
//! for fault runs, `CONSUMER_FAILURE_SHARE` (0: each consumer fails that share of events
//! transiently once). `DYNAMODB_CAPACITY_FILE` collects what each DynamoDB call consumed,
//! by function (see `shared::adapters::capacity`). `LOG_FORMAT` (`json`, or `text` for
//! people) sets how it logs, and `METRICS_FILE` names a file for the functions' metric
//! lines, which otherwise go to standard output among the logs, as in Lambda.

use std::error::Error;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use dev_server::event_source::EventSourceMapping;
use dev_server::{failures, functions, http};
use operations::LocalMeasures;
use outbox_sweeper::SweeperSettings;
use serde::Deserialize;
use shared::adapters::clients;
use shared::metrics;
use shared::settings::{ConfigError, Settings, Variables};
use shared::telemetry::{self, LogFormat};
use task_api::{ApiSettings, OpsSettings};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::{error, info};

const EVENT_SOURCES: &str = "EVENT_SOURCES";
const LOG_FORMAT: &str = "LOG_FORMAT";
const METRICS_FILE: &str = "METRICS_FILE";
/// A message the pollers received and neither deleted nor saw again for this long (the
/// queues' visibility timeout is 180 s) was moved to its dead-letter queue.
const FORGET_UNSEEN: Duration = Duration::from_secs(200);

/// One consumer's queue, from the template's SQS event of the function at `code_uri`.
#[derive(Debug, Deserialize)]
struct EventSource {
    code_uri: String,
    queue_url: String,
    batch_size: i32,
}

#[tokio::main]
async fn main() -> ExitCode {
    let format = match std::env::var(LOG_FORMAT).map(|name| name.parse::<LogFormat>()) {
        Err(_) => LogFormat::Json,
        Ok(Ok(format)) => format,
        Ok(Err(err)) => {
            eprintln!("dev-server: {LOG_FORMAT}: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Ok(path) = std::env::var(METRICS_FILE) {
        if let Err(err) = metrics::write_to(Path::new(&path)) {
            eprintln!("dev-server: {METRICS_FILE}: cannot open {path}: {err}");
            return ExitCode::FAILURE;
        }
    }
    let telemetry = telemetry::init_with("dev-server", format);
    let code = match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("dev-server: {err}");
            ExitCode::FAILURE
        }
    };
    telemetry.flush();
    code
}

async fn run() -> Result<(), Box<dyn Error>> {
    let variables = Variables::from_env();
    let port: u16 = variables.parsed_or("PORT", 3000)?;
    let sweep_every: u64 = variables.parsed_or("SWEEP_INTERVAL_SECS", 5)?;
    let sources: Vec<EventSource> = serde_json::from_str(&variables.required(EVENT_SOURCES)?)
        .map_err(|err| ConfigError::invalid(EVENT_SOURCES, err.to_string()))?;
    let api = ApiSettings::from_variables(&variables)?;
    let sweeper = SweeperSettings::from_variables(&variables)?;
    let failure_share = failures::share(&variables)?;
    let ops = OpsSettings::from_variables(&variables)?;

    let aws = clients::load_config().await?;
    // What CloudWatch measures in AWS, this process measures itself: the consumers'
    // event ages, and the messages its pollers hold.
    let measures = Arc::new(LocalMeasures::new(FORGET_UNSEEN));
    {
        let measures = measures.clone();
        metrics::observe(move |measure| {
            if let metrics::Measure::EventAge(consumer, age) = measure {
                measures.applied(consumer, *age);
            }
        });
    }
    let ops = ops.build(&clients::for_function(&aws, "ops-api"), measures.clone());
    // Each function's DynamoDB calls are recorded under its own name (its crate's).
    let deps = api.build(&clients::for_function(&aws, "task-api"));
    let sweeper = sweeper.build(&clients::for_function(&aws, "outbox-sweeper"));
    let mut background = JoinSet::new();
    for source in sources {
        let consumer = failures::inject(
            functions::consumer(
                &source.code_uri,
                &variables,
                &clients::for_function(&aws, functions::crate_name(&source.code_uri)),
            )
            .await?,
            failure_share,
        );
        let mapping = EventSourceMapping::new(&aws, &source.queue_url, source.batch_size, consumer)
            .await?
            .measured(measures.clone());
        background.spawn(mapping.run());
    }

    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = TcpListener::bind(address).await.map_err(|err| {
        format!("cannot listen on {address}: {err} (is another server using port {port}? set PORT to choose another)")
    })?;
    info!(%address, "serving the task API; X-User-Id names the caller");

    background.spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(sweep_every.max(1)));
        loop {
            ticks.tick().await;
            if let Err(err) = sweeper.run_once().await {
                error!(error = %err, "outbox sweep failed");
            }
        }
    });
    let served = axum::serve(listener, http::router_with_ops(deps, ops))
        .with_graceful_shutdown(async {
            match tokio::signal::ctrl_c().await {
                Ok(()) => info!("stopping"),
                Err(err) => {
                    // Without a handler Ctrl-C still ends the process; serve until then.
                    error!(error = %err, "cannot listen for Ctrl-C");
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
    background.shutdown().await;
    served.map_err(|err| format!("server failed: {err}").into())
}
