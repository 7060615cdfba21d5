//! The CI/CD monitor's settings: `BUILD_REQUESTS_TABLE`, the optional `CICD_WEBHOOK_URL`
//! and `CICD_WEBHOOK_TIMEOUT_SECS` (default 5), and the toolkit's variables.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use shared::adapters::{clients, DynamoRecordStore};
use shared::consumer::{Consumer, ToolkitSettings};
use shared::retry::Backoff;
use shared::settings::{ConfigError, Settings, Variables};

use crate::{BuildNotifier, CicdMonitor, WebhookNotifier};

const BUILD_REQUESTS_TABLE: &str = "BUILD_REQUESTS_TABLE";
const CICD_WEBHOOK_URL: &str = "CICD_WEBHOOK_URL";
const CICD_WEBHOOK_TIMEOUT_SECS: &str = "CICD_WEBHOOK_TIMEOUT_SECS";

#[derive(Clone)]
pub struct CicdSettings {
    pub build_requests_table: String,
    /// Built from the URL at start-up, so a bad URL stops the function there.
    pub webhook: Option<Arc<dyn BuildNotifier>>,
    pub toolkit: ToolkitSettings,
}

impl Settings for CicdSettings {
    fn variables() -> Vec<&'static str> {
        [
            &[
                BUILD_REQUESTS_TABLE,
                CICD_WEBHOOK_URL,
                CICD_WEBHOOK_TIMEOUT_SECS,
            ][..],
            &ToolkitSettings::VARIABLES,
        ]
        .concat()
    }

    fn from_variables(variables: &Variables) -> Result<Self, ConfigError> {
        let timeout = variables.parsed_or(CICD_WEBHOOK_TIMEOUT_SECS, 5u64)?;
        if timeout == 0 {
            return Err(ConfigError::invalid(
                CICD_WEBHOOK_TIMEOUT_SECS,
                "must be at least 1",
            ));
        }
        let webhook = match variables.optional(CICD_WEBHOOK_URL) {
            Some(url) => {
                let notifier =
                    WebhookNotifier::new(&url, Duration::from_secs(timeout), Backoff::default())
                        .map_err(|err| ConfigError::invalid(CICD_WEBHOOK_URL, err.to_string()))?;
                Some(Arc::new(notifier) as Arc<dyn BuildNotifier>)
            }
            None => None,
        };
        Ok(CicdSettings {
            build_requests_table: variables.required(BUILD_REQUESTS_TABLE)?,
            webhook,
            toolkit: ToolkitSettings::from_variables(variables)?,
        })
    }
}

impl CicdSettings {
    pub fn build(&self, aws: &SdkConfig) -> Consumer {
        let requests = DynamoRecordStore::new(clients::dynamodb(aws), &self.build_requests_table);
        let monitor = CicdMonitor::new(Arc::new(requests), self.webhook.clone());
        self.toolkit.build(aws, Arc::new(monitor))
    }
}
