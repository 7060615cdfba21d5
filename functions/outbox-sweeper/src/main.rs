use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use orchestration::adapters::{clients, DynamoTaskStore, SnsPublisher};
use orchestration::retry::Backoff;
use orchestration::{config, telemetry};
use outbox_sweeper::{Sweeper, SweeperConfig};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let table = config::required("TASKS_TABLE")?;
    let topic_arn = config::required("EVENTS_TOPIC_ARN")?;
    let sweeper_config = SweeperConfig::from_env()?;

    let aws = clients::load_config().await;
    let backoff = Backoff::default();
    let store = Arc::new(DynamoTaskStore::new(clients::dynamodb(&aws), table));
    let publisher = Arc::new(SnsPublisher::new(
        clients::sns(&aws, &backoff),
        topic_arn,
        backoff,
    ));
    let sweeper = Sweeper::new(store, publisher, sweeper_config);

    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| {
        let sweeper = &sweeper;
        async move {
            let report = sweeper.run_once().await?;
            Ok::<_, Error>(json!({
                "tasks": report.tasks,
                "published": report.published,
                "failed": report.failed,
                "errors": report.errors,
            }))
        }
    }))
    .await
}
