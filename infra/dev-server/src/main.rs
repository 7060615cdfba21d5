//! Runs the functions on one machine against the emulators: the task API's handler behind
//! an HTTP server on loopback (with `X-User-Id` standing in for the JWT authorizer) and the
//! outbox sweeper on a timer. Configuration comes from the same variables as in Lambda.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use orchestration::adapters::{clients, DynamoTaskStore, SnsPublisher};
use orchestration::retry::Backoff;
use orchestration::service::TaskService;
use orchestration::{config, telemetry};
use outbox_sweeper::{Sweeper, SweeperConfig};
use task_api::Deps;
use tokio::net::TcpListener;
use tracing::{error, info};

mod http;

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

async fn run() -> Result<(), String> {
    let table = config::required("TASKS_TABLE").map_err(|e| e.to_string())?;
    let topic_arn = config::required("EVENTS_TOPIC_ARN").map_err(|e| e.to_string())?;
    let port: u16 = config::parsed_or("PORT", 3000).map_err(|e| e.to_string())?;
    let sweep_every: u64 =
        config::parsed_or("SWEEP_INTERVAL_SECS", 5).map_err(|e| e.to_string())?;
    let sweeper_config = SweeperConfig::from_env().map_err(|e| e.to_string())?;

    let aws = clients::load_config().await;
    let backoff = Backoff::default();
    let store = Arc::new(DynamoTaskStore::new(clients::dynamodb(&aws), table));
    let publisher = Arc::new(SnsPublisher::new(
        clients::sns(&aws, &backoff),
        topic_arn,
        backoff,
    ));
    let deps = Deps {
        tasks: TaskService::new(store.clone(), store.clone(), publisher.clone()),
    };
    let sweeper = Sweeper::new(store, publisher, sweeper_config);

    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = TcpListener::bind(address).await.map_err(|err| {
        format!("cannot listen on {address}: {err} (is another server using port {port}? set PORT to choose another)")
    })?;
    info!(%address, "serving the task API; X-User-Id names the caller");

    let sweeping = tokio::spawn(async move {
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
            let _ = tokio::signal::ctrl_c().await;
            info!("stopping");
        })
        .await;
    sweeping.abort();
    served.map_err(|err| format!("server failed: {err}"))
}
