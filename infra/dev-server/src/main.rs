//! Runs the functions on one machine against the emulators: the task API behind an HTTP
//! server on loopback (with `X-User-Id` standing in for the JWT authorizer), the outbox
//! sweeper on a timer, and every consumer fed by its queue as Lambda would. Configuration
//! comes from the same variables as in Lambda, plus `PORT`, `SWEEP_INTERVAL_SECS` and
//! `EVENT_SOURCES` (the consumers' queues, as `infra/provision.py` prints them).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use aws_config::SdkConfig;
use dev_server::event_source::EventSourceMapping;
use dev_server::http;
use orchestration::adapters::clients;
use orchestration::consumer::Consumer;
use orchestration::{config, telemetry};
use outbox_sweeper::Sweeper;
use serde::Deserialize;
use task_api::Deps;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::{error, info};

/// One consumer's queue, from the template's SQS event of the function at `code_uri`.
#[derive(Debug, Deserialize)]
struct EventSource {
    code_uri: String,
    queue_url: String,
    batch_size: i32,
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("dev-server: {message}");
            ExitCode::FAILURE
        }
    }
}

fn consumer_at(code_uri: &str, aws: &SdkConfig) -> Result<Consumer, String> {
    let wired = match code_uri.trim_end_matches('/').rsplit('/').next() {
        Some("ml-classifier") => ml_classifier::consumer(aws),
        Some("dashboard") => dashboard::consumer(aws),
        Some("cicd-monitor") => cicd_monitor::consumer(aws),
        _ => return Err(format!("no consumer is built from {code_uri}")),
    };
    wired.map_err(|err| err.to_string())
}

async fn run() -> Result<(), String> {
    let port: u16 = config::parsed_or("PORT", 3000).map_err(|e| e.to_string())?;
    let sweep_every: u64 =
        config::parsed_or("SWEEP_INTERVAL_SECS", 5).map_err(|e| e.to_string())?;
    let sources: Vec<EventSource> = match std::env::var("EVENT_SOURCES") {
        Ok(json) => serde_json::from_str(&json)
            .map_err(|err| format!("EVENT_SOURCES is not valid: {err}"))?,
        Err(_) => Vec::new(),
    };

    let aws = clients::load_config().await;
    let deps = Deps::from_env(&aws).map_err(|e| e.to_string())?;
    let sweeper = Sweeper::from_env(&aws).map_err(|e| e.to_string())?;
    let mut background = JoinSet::new();
    for source in sources {
        let consumer = consumer_at(&source.code_uri, &aws)?;
        let mapping =
            EventSourceMapping::new(&aws, &source.queue_url, source.batch_size, consumer).await?;
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
    let served = axum::serve(listener, http::router(deps))
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
    served.map_err(|err| format!("server failed: {err}"))
}
