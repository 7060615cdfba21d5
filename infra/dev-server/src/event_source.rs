//! A local stand-in for Lambda's SQS event source mapping: long-polls a queue, hands
//! batches to a consumer, deletes what succeeded and leaves the failures to reappear after
//! their visibility timeout, so redrive to the dead-letter queue happens for real.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName,
};
use aws_sdk_sqs::Client;
use operations::LocalMeasures;
use shared::adapters::clients;
use shared::adapters::clients::SdkConfig;
use shared::consumer::Consumer;
use tracing::{error, info};

/// A message attribute as Lambda hands it to a function.
fn lambda_attribute(value: &MessageAttributeValue) -> SqsMessageAttribute {
    let mut attribute = SqsMessageAttribute::default();
    attribute.data_type = Some(value.data_type().to_owned());
    attribute.string_value = value.string_value().map(str::to_owned);
    attribute.binary_value = value.binary_value().map(|blob| {
        let mut data = Base64Data::default();
        data.extend_from_slice(blob.as_ref());
        data
    });
    attribute
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    pub received: usize,
    pub deleted: usize,
    pub failed: usize,
}

/// How long one receive waits for messages, as Lambda's long polling does.
pub const POLL_WAIT: Duration = Duration::from_secs(10);

pub struct EventSourceMapping {
    sqs: Client,
    queue_url: String,
    queue_arn: String,
    batch_size: i32,
    consumer: Consumer,
    /// Told of each message received and deleted, for the operations view's oldest age.
    measures: Option<Arc<LocalMeasures>>,
}

impl EventSourceMapping {
    /// Maps `queue_url` to `consumer`, delivering batches of at most `batch_size` (1 to 10).
    pub async fn new(
        aws: &SdkConfig,
        queue_url: &str,
        batch_size: i32,
        consumer: Consumer,
    ) -> Result<Self, String> {
        let sqs = clients::sqs_long_polling(aws, POLL_WAIT);
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|err| {
                format!(
                    "cannot read queue {queue_url}: {}",
                    DisplayErrorContext(err)
                )
            })?;
        let queue_arn = attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| format!("queue {queue_url} has no ARN"))?;
        Ok(EventSourceMapping {
            sqs,
            queue_url: queue_url.to_owned(),
            queue_arn,
            batch_size: batch_size.clamp(1, 10),
            consumer,
            measures: None,
        })
    }

    /// Tells `measures` which messages wait in the queue: received and not yet deleted.
    pub fn measured(self, measures: Arc<LocalMeasures>) -> Self {
        EventSourceMapping {
            measures: Some(measures),
            ..self
        }
    }

    /// Receives one batch (waiting up to `wait`, at most `POLL_WAIT`, for it) and processes it.
    pub async fn poll_once(&self, wait: Duration) -> Result<PollReport, String> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size)
            .wait_time_seconds(wait.min(POLL_WAIT).as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|err| DisplayErrorContext(err).to_string())?;
        let messages = output.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(PollReport::default());
        }
        if let Some(measures) = &self.measures {
            for message in &messages {
                let sent_at = message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|millis| millis.parse().ok())
                    .and_then(chrono::DateTime::from_timestamp_millis);
                if let (Some(id), Some(sent_at)) = (message.message_id(), sent_at) {
                    measures.received(&self.queue_url, id, sent_at);
                }
            }
        }
        let records: Vec<SqsMessage> = messages
            .iter()
            .map(|message| {
                let mut record = SqsMessage::default();
                record.message_id = message.message_id.clone();
                record.receipt_handle = message.receipt_handle.clone();
                record.body = message.body.clone();
                record.md5_of_body = message.md5_of_body.clone();
                record.attributes = message
                    .attributes()
                    .map(|attributes| {
                        attributes
                            .iter()
                            .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                record.message_attributes = message
                    .message_attributes()
                    .map(|attributes| {
                        attributes
                            .iter()
                            .map(|(name, value)| (name.clone(), lambda_attribute(value)))
                            .collect()
                    })
                    .unwrap_or_default();
                record.event_source = Some("aws:sqs".into());
                record.event_source_arn = Some(self.queue_arn.clone());
                record
            })
            .collect();
        let mut batch = SqsEvent::default();
        batch.records = records;
        let response = self.consumer.process(batch).await;

        let failed: HashSet<&str> = response
            .batch_item_failures
            .iter()
            .map(|failure| failure.item_identifier.as_str())
            .collect();
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !failed.contains(m.message_id().unwrap_or_default()))
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect();
        let mut deleted = 0;
        if !entries.is_empty() {
            let output = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|err| DisplayErrorContext(err).to_string())?;
            deleted = output.successful().len();
            if let Some(measures) = &self.measures {
                for entry in output.successful() {
                    let index: Option<usize> = entry.id().parse().ok();
                    if let Some(id) = index.and_then(|i| messages.get(i)?.message_id()) {
                        measures.deleted(&self.queue_url, id);
                    }
                }
            }
            for failure in output.failed() {
                error!(queue = %self.queue_url, entry = failure.id(), code = failure.code(), "deleting a processed message failed");
            }
        }
        Ok(PollReport {
            received: messages.len(),
            deleted,
            failed: failed.len(),
        })
    }

    /// Polls until the task is aborted.
    pub async fn run(self) {
        info!(consumer = self.consumer.name(), queue = %self.queue_url, "polling");
        loop {
            if let Err(err) = self.poll_once(POLL_WAIT).await {
                error!(consumer = self.consumer.name(), error = %err, "polling failed; retrying shortly");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}
