//! The CI/CD monitor consumer: when a code-changing task completes, records a build request
//! and, when a webhook is configured, posts it there.

pub mod handler;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use orchestration::adapters::{clients, DynamoRecordStore};
use orchestration::config::{self, ConfigError};
use orchestration::consumer::{self, Consumer};
use orchestration::retry::Backoff;

pub use handler::CicdMonitor;
pub use webhook::{BuildNotifier, WebhookNotifier};

/// Wires the consumer over AWS from `BUILD_REQUESTS_TABLE`, the optional `CICD_WEBHOOK_URL`
/// and `CICD_WEBHOOK_TIMEOUT_SECS` (default 5), and the toolkit's variables.
pub fn consumer(aws: &SdkConfig) -> Result<Consumer, ConfigError> {
    let table = config::required("BUILD_REQUESTS_TABLE")?;
    let timeout = Duration::from_secs(config::parsed_or("CICD_WEBHOOK_TIMEOUT_SECS", 5)?);
    let notifier = match config::optional("CICD_WEBHOOK_URL") {
        Some(url) => {
            let webhook =
                WebhookNotifier::new(&url, timeout, Backoff::default()).map_err(|_| {
                    ConfigError::Invalid {
                        name: "CICD_WEBHOOK_URL",
                        value: url.clone(),
                    }
                })?;
            Some(Arc::new(webhook) as Arc<dyn BuildNotifier>)
        }
        None => None,
    };
    let requests = DynamoRecordStore::new(clients::dynamodb(aws), table);
    consumer::from_env(
        aws,
        Arc::new(CicdMonitor::new(Arc::new(requests), notifier)),
    )
}
