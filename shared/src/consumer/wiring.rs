//! The toolkit's part of every consumer's settings (`PROCESSED_EVENTS_TABLE` where the
//! consumer keeps records, and `RETRY_BASE_SECS`, default 10), and the Lambda entry point
//! of a consumer.

use std::sync::Arc;
use std::time::Duration;

use crate::adapters::clients::SdkConfig;

use super::{Consumer, EventHandler, IdempotencyStore, IdempotentEffect, RetryBackoff};
use crate::adapters::{clients, DynamoIdempotencyStore, SqsRedelivery};
use crate::metrics;
use crate::settings::{ConfigError, Variables, STACK_NAME};
use crate::telemetry::Telemetry;
use lambda_runtime::layers::OpenTelemetryFaasTrigger;

const PROCESSED_EVENTS_TABLE: &str = "PROCESSED_EVENTS_TABLE";
const RETRY_BASE_SECS: &str = "RETRY_BASE_SECS";

#[derive(Debug, Clone, PartialEq)]
pub struct ToolkitSettings {
    /// The table of applied events' records; none for a consumer whose effect counts each
    /// event once by itself ([`ToolkitSettings::exactly_once_from_variables`]).
    pub processed_events_table: Option<String>,
    pub backoff: RetryBackoff,
    pub stack: Option<String>,
}

impl ToolkitSettings {
    /// What a consumer with idempotency records reads.
    pub const VARIABLES: [&'static str; 3] = [PROCESSED_EVENTS_TABLE, RETRY_BASE_SECS, STACK_NAME];
    /// What a consumer whose effect counts each event once by itself reads: no table.
    pub const EXACTLY_ONCE_VARIABLES: [&'static str; 2] = [RETRY_BASE_SECS, STACK_NAME];

    /// The settings of a consumer that keeps a record of each event it applied.
    pub fn from_variables(variables: &Variables) -> Result<Self, ConfigError> {
        Ok(ToolkitSettings {
            processed_events_table: Some(variables.required(PROCESSED_EVENTS_TABLE)?),
            ..Self::exactly_once_from_variables(variables)?
        })
    }

    /// The settings of a consumer whose effect counts each event once by itself.
    pub fn exactly_once_from_variables(variables: &Variables) -> Result<Self, ConfigError> {
        let default = RetryBackoff::default();
        let base = variables.parsed_or(RETRY_BASE_SECS, default.base.as_secs())?;
        if base == 0 {
            return Err(ConfigError::invalid(RETRY_BASE_SECS, "must be at least 1"));
        }
        Ok(ToolkitSettings {
            processed_events_table: None,
            backoff: RetryBackoff {
                base: Duration::from_secs(base),
                ..default
            },
            stack: variables.optional(STACK_NAME),
        })
    }

    /// The consumer of `handler` over AWS, with an idempotency record of each event.
    ///
    /// # Panics
    /// If these settings name no records table: those of
    /// [`ToolkitSettings::exactly_once_from_variables`] build with `build_exactly_once`.
    pub fn build(&self, aws: &SdkConfig, handler: Arc<dyn EventHandler>) -> Consumer {
        let table = self
            .processed_events_table
            .as_deref()
            .expect("a consumer with records is configured by ToolkitSettings::from_variables");
        let records = DynamoIdempotencyStore::new(clients::dynamodb(aws), table);
        self.build_with(aws, handler, Arc::new(records))
    }

    /// The same for a handler whose effect counts each event once by itself (a write
    /// conditional on what it records): no idempotency records of its own.
    pub fn build_exactly_once(&self, aws: &SdkConfig, handler: Arc<dyn EventHandler>) -> Consumer {
        self.build_with(aws, handler, Arc::new(IdempotentEffect))
    }

    fn build_with(
        &self,
        aws: &SdkConfig,
        handler: Arc<dyn EventHandler>,
        idempotency: Arc<dyn IdempotencyStore>,
    ) -> Consumer {
        metrics::init(self.stack.clone());
        Consumer::new(
            handler,
            idempotency,
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
