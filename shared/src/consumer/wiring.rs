//! Builds a consumer over AWS from the variables `template.yaml` sets:
//! `PROCESSED_EVENTS_TABLE` and, optionally, `RETRY_BASE_SECS` (default 10).

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;

use super::{Consumer, EventHandler, RetryBackoff};
use crate::adapters::{clients, DynamoIdempotencyStore, SqsRetryScheduler};
use crate::config::{self, ConfigError};

pub fn from_env(aws: &SdkConfig, handler: Arc<dyn EventHandler>) -> Result<Consumer, ConfigError> {
    let table = config::required("PROCESSED_EVENTS_TABLE")?;
    let base = config::parsed_or("RETRY_BASE_SECS", RetryBackoff::default().base.as_secs())?;
    Ok(Consumer::new(
        handler,
        Arc::new(DynamoIdempotencyStore::new(clients::dynamodb(aws), table)),
        Arc::new(SqsRetryScheduler::new(clients::sqs(aws))),
        RetryBackoff {
            base: Duration::from_secs(base.max(1)),
            ..RetryBackoff::default()
        },
    ))
}

/// Serves `consumer` as an SQS-triggered Lambda until the runtime stops.
pub async fn run_lambda(consumer: Consumer) -> Result<(), lambda_runtime::Error> {
    let consumer = &consumer;
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: lambda_runtime::LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| async move {
            Ok::<_, lambda_runtime::Error>(consumer.process(event.payload).await)
        },
    ))
    .await
}
