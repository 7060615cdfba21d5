//! SDK clients built once per process from the shared AWS configuration.
//! Endpoints come only from the SDK's own `AWS_ENDPOINT_URL*` variables.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::retry::Backoff;

/// Loads region, credentials and endpoints from the environment, with bounded timeouts.
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(15))
                .build(),
        )
        .load()
        .await
}

pub fn dynamodb(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// An SNS client that retries transient failures of whole calls with `backoff`.
pub fn sns(config: &SdkConfig, backoff: &Backoff) -> aws_sdk_sns::Client {
    let sns_config = aws_sdk_sns::config::Builder::from(config)
        .retry_config(backoff.sdk_retry_config())
        .build();
    aws_sdk_sns::Client::from_conf(sns_config)
}

pub fn sqs(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

/// An SQS client for long polling: each call may wait `wait` for messages, so its
/// timeouts are that much longer than the default ones.
pub fn sqs_long_polling(config: &SdkConfig, wait: Duration) -> aws_sdk_sqs::Client {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(wait + Duration::from_secs(5))
        .operation_timeout(wait + Duration::from_secs(15))
        .build();
    let sqs_config = aws_sdk_sqs::config::Builder::from(config)
        .timeout_config(timeouts)
        .build();
    aws_sdk_sqs::Client::from_conf(sqs_config)
}
