//! `ops`: each consumer's queue and dead-letter queue and the outbox, counted; dead letters
//! listed, redriven or discarded by consumer, reason, event type and age (see the library).

use std::process::ExitCode;

use clap::Parser;
use operations::OpsError;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,audit=warn".into()),
        )
        .init();
    let cli = ops::Cli::parse();
    match ops::run(cli, &mut std::io::stdout()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(OpsError::Usage(message)) => {
            eprintln!("ops: {message}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("ops: {err}");
            ExitCode::FAILURE
        }
    }
}
