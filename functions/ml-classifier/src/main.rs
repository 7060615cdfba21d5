use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use ml_classifier::Classifier;
use orchestration::adapters::{clients, DynamoRecordStore, DynamoTaskStore};
use orchestration::{config, consumer, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let aws = clients::load_config().await;
    let tasks = config::required("TASKS_TABLE")?;
    let examples = config::required("TRAINING_EXAMPLES_TABLE")?;
    let classifier = Classifier::new(
        Arc::new(DynamoTaskStore::new(clients::dynamodb(&aws), tasks)),
        Arc::new(DynamoRecordStore::new(clients::dynamodb(&aws), examples)),
    );
    let consumer = consumer::from_env(&aws, Arc::new(classifier))?;

    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let consumer = &consumer;
        async move { Ok::<_, Error>(consumer.process(event.payload).await) }
    }))
    .await
}
