//! SDK clients built once per process from one shared AWS configuration.
//! Endpoints come only from the SDK's own `AWS_ENDPOINT_URL*` variables.

use std::time::Duration;

use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use super::tls;
use crate::retry::Backoff;

/// Loads region, credentials and endpoints from the environment, with bounded timeouts,
/// and one HTTPS client for every SDK client built from it.
///
/// Lambda hands a function its role's credentials in the environment; when they are
/// there, they are all that is read, so the rest of the default chain (profile files,
/// web identity, the container and instance metadata endpoints) costs no start-up time.
pub async fn load_config() -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(tls::https_client())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(15))
                .build(),
        );
    let loader = if environment_has_credentials() {
        loader.credentials_provider(EnvironmentVariableCredentialsProvider::new())
    } else {
        loader
    };
    loader.load().await
}

fn environment_has_credentials() -> bool {
    ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        .iter()
        .all(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
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
