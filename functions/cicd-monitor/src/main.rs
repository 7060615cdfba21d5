use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use cicd_monitor::{BuildNotifier, CicdMonitor, WebhookNotifier};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use orchestration::adapters::{clients, DynamoRecordStore};
use orchestration::retry::Backoff;
use orchestration::{config, consumer, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let aws = clients::load_config().await;
    let table = config::required("BUILD_REQUESTS_TABLE")?;
    let timeout = Duration::from_secs(config::parsed_or("CICD_WEBHOOK_TIMEOUT_SECS", 5)?);
    let notifier = match config::required("CICD_WEBHOOK_URL") {
        Ok(url) => Some(
            Arc::new(WebhookNotifier::new(&url, timeout, Backoff::default())?)
                as Arc<dyn BuildNotifier>,
        ),
        Err(_) => None,
    };
    let monitor = CicdMonitor::new(
        Arc::new(DynamoRecordStore::new(clients::dynamodb(&aws), table)),
        notifier,
    );
    let consumer = consumer::from_env(&aws, Arc::new(monitor))?;

    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let consumer = &consumer;
        async move { Ok::<_, Error>(consumer.process(event.payload).await) }
    }))
    .await
}
