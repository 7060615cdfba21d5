//! The toolkit's part of every consumer's settings (`RETRY_BASE_SECS`, default 10, and
//! `STACK_NAME`), and the Lambda entry point of a consumer.

use std::sync::Arc;
use std::time::Duration;

use crate::adapters::clients::SdkConfig;

use super::{Consumer, EventHandler, RetryBackoff};
use crate::adapters::{clients, SqsRedelivery};
use crate::metrics;
use crate::settings::{ConfigError, Variables, STACK_NAME};
use crate::telemetry::Telemetry;
use lambda_runtime::layers::OpenTelemetryFaasTrigger;

const RETRY_BASE_SECS: &str = "RETRY_BASE_SECS";

#[derive(Debug, Clone, PartialEq)]
pub struct ToolkitSettings {
    pub backoff: RetryBackoff,
    pub stack: Option<String>,
}

impl ToolkitSettings {
    /// What every consumer reads.
    pub const VARIABLES: [&'static str; 2] = [RETRY_BASE_SECS, STACK_NAME];

    pub fn from_variables(variables: &Variables) -> Result<Self, ConfigError> {
        let default = RetryBackoff::default();
        let base = variables.parsed_or(RETRY_BASE_SECS, default.base.as_secs())?;
        if base == 0 {
            return Err(ConfigError::invalid(RETRY_BASE_SECS, "must be at least 1"));
        }
        Ok(ToolkitSettings {
            backoff: RetryBackoff {
                base: Duration::from_secs(base),
                ..default
            },
            stack: variables.optional(STACK_NAME),
        })
    }

    /// The consumer of `handler` over AWS: its failed messages delayed or dead-lettered
    /// through SQS.
    pub fn build(&self, aws: &SdkConfig, handler: Arc<dyn EventHandler>) -> Consumer {
        metrics::init(self.stack.clone());
        Consumer::new(
            handler,
            Arc::new(SqsRedelivery::new(clients::sqs(aws))),
            self.backoff,
        )
    }
}

/// Serves `consumer` as an SQS-triggered Lambda until the runtime stops, exporting its
/// spans at the end of each invocation.
pub async fn run_lambda(
    consumer: Consumer,
    telemetry: &Telemetry,
) -> Result<(), lambda_runtime::Error> {
    let consumer = &consumer;
    let handler = lambda_runtime::service_fn(
        |event: lambda_runtime::LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| async move {
            Ok::<_, lambda_runtime::Error>(consumer.process(event.payload).await)
        },
    );
    lambda_runtime::Runtime::new(handler)
        .layer(telemetry.lambda_layer(OpenTelemetryFaasTrigger::PubSub))
        .run()
        .await
}
