//! SNS adapter of `EventPublisher`: structured CloudEvents as message bodies, with
//! `event_type` and `event_version` attributes for subscription filter policies.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_sns::error::{DisplayErrorContext, SdkError};
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use aws_sdk_sns::Client;
use tracing::{error, info, info_span, Instrument};
use uuid::Uuid;

use crate::events::EventEnvelope;
use crate::metrics;
use crate::ports::{BatchReport, EventPublisher, PublishFailure};
use crate::retry::Backoff;

/// Most entries SNS accepts in one PublishBatch call.
pub const MAX_BATCH_ENTRIES: usize = 10;

#[derive(Clone)]
pub struct SnsPublisher {
    client: Client,
    topic_arn: String,
    backoff: Backoff,
}

impl SnsPublisher {
    /// `client` should carry the SDK retry configuration of `retry::sdk_retry_config`, which
    /// retries whole calls on transient failures; failed batch entries are retried here.
    pub fn new(client: Client, topic_arn: impl Into<String>, backoff: Backoff) -> Self {
        SnsPublisher {
            client,
            topic_arn: topic_arn.into(),
            backoff,
        }
    }

    fn attributes(event: &EventEnvelope) -> HashMap<String, MessageAttributeValue> {
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .expect("data_type is set")
        };
        HashMap::from([
            ("event_type".to_owned(), attribute(event.kind().name())),
            (
                "event_version".to_owned(),
                attribute(event.kind().version()),
            ),
        ])
    }

    /// Publishes one chunk of at most ten events, retrying entries SNS failed on its side.
    async fn publish_chunk(&self, chunk: &[EventEnvelope], report: &mut BatchReport) {
        let mut remaining: Vec<&EventEnvelope> = chunk.iter().collect();
        let mut attempt = 0;
        loop {
            let entries = remaining
                .iter()
                .map(|event| {
                    PublishBatchRequestEntry::builder()
                        .id(event.id.simple().to_string())
                        .message(event.to_json())
                        .set_message_attributes(Some(Self::attributes(event)))
                        .build()
                        .expect("id and message are set")
                })
                .collect::<Vec<_>>();
            let output = match self
                .client
                .publish_batch()
                .topic_arn(&self.topic_arn)
                .set_publish_batch_request_entries(Some(entries))
                .send()
                .await
            {
                Ok(output) => output,
                Err(err) => {
                    // The SDK has already retried the call if the failure was transient.
                    let reason = DisplayErrorContext(&err).to_string();
                    for event in remaining {
                        log_failure(event, &reason);
                        report.failed.push(PublishFailure {
                            event_id: event.id,
                            reason: reason.clone(),
                        });
                    }
                    return;
                }
            };
            for entry in output.successful() {
                if let Some(event) = find(&remaining, entry.id()) {
                    info!(event.type = event.kind().name(), event.id = %event.id,
                        message.id = entry.message_id().unwrap_or_default(), "event published");
                    report.published.push(event.id);
                }
            }
            let mut retry = Vec::new();
            for entry in output.failed() {
                let Some(event) = find(&remaining, Some(entry.id())) else {
                    continue;
                };
                let reason = format!(
                    "{}: {}",
                    entry.code(),
                    entry.message().unwrap_or("no message")
                );
                if !entry.sender_fault() && attempt < self.backoff.retries {
                    retry.push(event);
                } else {
                    log_failure(event, &reason);
                    report.failed.push(PublishFailure {
                        event_id: event.id,
                        reason,
                    });
                }
            }
            if retry.is_empty() {
                return;
            }
            tokio::time::sleep(self.backoff.delay(attempt)).await;
            attempt += 1;
            remaining = retry;
        }
    }
}

fn find<'a>(events: &[&'a EventEnvelope], entry_id: Option<&str>) -> Option<&'a EventEnvelope> {
    let entry_id = entry_id?;
    events
        .iter()
        .copied()
        .find(|event| event.id.simple().to_string() == entry_id)
}

fn log_failure(event: &EventEnvelope, reason: &str) {
    error!(event.type = event.kind().name(), event.id = %event.id, reason, "publishing event failed");
}

fn failure<E, R>(event_id: Uuid, err: &SdkError<E, R>) -> PublishFailure
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    PublishFailure {
        event_id,
        reason: DisplayErrorContext(err).to_string(),
    }
}

#[async_trait]
impl EventPublisher for SnsPublisher {
    async fn publish(&self, event: &EventEnvelope) -> Result<(), PublishFailure> {
        let span =
            info_span!("PublishEvent", event.type = event.kind().name(), event.id = %event.id);
        async {
            info!("publishing event");
            let result = self
                .client
                .publish()
                .topic_arn(&self.topic_arn)
                .message(event.to_json())
                .set_message_attributes(Some(Self::attributes(event)))
                .send()
                .await;
            match result {
                Ok(output) => {
                    info!(
                        message.id = output.message_id().unwrap_or_default(),
                        "event published"
                    );
                    Ok(())
                }
                Err(err) => {
                    let failure = failure(event.id, &err);
                    log_failure(event, &failure.reason);
                    metrics::publish_failures(1);
                    Err(failure)
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn publish_batch(&self, events: &[EventEnvelope]) -> BatchReport {
        let span = info_span!(
            "PublishBatchEvents",
            event.count = events.len(),
            event.published_count = tracing::field::Empty,
            event.failed_count = tracing::field::Empty,
        );
        async {
            info!("publishing events");
            let mut report = BatchReport::default();
            for chunk in events.chunks(MAX_BATCH_ENTRIES) {
                self.publish_chunk(chunk, &mut report).await;
            }
            let span = tracing::Span::current();
            span.record("event.published_count", report.published.len());
            span.record("event.failed_count", report.failed.len());
            info!(
                published = report.published.len(),
                failed = report.failed.len(),
                "batch publish finished"
            );
            if !report.failed.is_empty() {
                metrics::publish_failures(report.failed.len());
            }
            report
        }
        .instrument(span)
        .await
    }
}
