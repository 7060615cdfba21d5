use orchestration::adapters::clients;
use orchestration::{consumer, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let aws = clients::load_config().await;
    consumer::run_lambda(ml_classifier::consumer(&aws)?).await
}
