//! SQS adapter of `Redelivery`: changes a failed message's visibility timeout, so the next
//! delivery comes later the more often it failed, or copies a message that can never
//! succeed to the dead-letter queue named by its source queue's redrive policy.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use aws_sdk_sqs::Client;
use serde::Deserialize;

use crate::consumer::{QueueError, Redelivery};

/// Message attributes a dead letter gets beside the original ones.
pub const REASON_ATTRIBUTE: &str = "dead_letter_reason";
pub const CONSUMER_ATTRIBUTE: &str = "dead_letter_consumer";
/// SQS takes at most ten attributes a message; two are ours.
const MAX_ORIGINAL_ATTRIBUTES: usize = 8;
/// Reasons longer than this are cut; SQS limits the whole message, not an attribute.
const MAX_REASON_CHARS: usize = 1_000;

pub struct SqsRedelivery {
    client: Client,
    /// Queue URLs by ARN, looked up once.
    urls: Mutex<HashMap<String, String>>,
    /// Dead-letter queue URLs by source queue ARN, looked up once.
    dead_letter_urls: Mutex<HashMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RedrivePolicy {
    dead_letter_target_arn: String,
}

fn call(operation: &'static str) -> impl FnOnce(aws_sdk_sqs::Error) -> QueueError {
    move |err| QueueError::Call {
        operation,
        source: Box::new(err),
    }
}

impl SqsRedelivery {
    pub fn new(client: Client) -> Self {
        SqsRedelivery {
            client,
            urls: Mutex::default(),
            dead_letter_urls: Mutex::default(),
        }
    }

    async fn queue_url(&self, queue_arn: &str) -> Result<String, QueueError> {
        if let Some(url) = cached(&self.urls, queue_arn) {
            return Ok(url);
        }
        // arn:aws:sqs:<region>:<account>:<name>
        let parts: Vec<&str> = queue_arn.splitn(6, ':').collect();
        let [_, _, "sqs", _, account, name] = parts.as_slice() else {
            return Err(QueueError::NotAQueueArn(queue_arn.to_owned()));
        };
        let output = self
            .client
            .get_queue_url()
            .queue_name(*name)
            .queue_owner_aws_account_id(*account)
            .send()
            .await
            .map_err(|err| call("GetQueueUrl")(err.into()))?;
        let url = output
            .queue_url
            .ok_or_else(|| QueueError::NotAQueueArn(queue_arn.to_owned()))?;
        remember(&self.urls, queue_arn, &url);
        Ok(url)
    }

    async fn dead_letter_url(&self, queue_arn: &str) -> Result<String, QueueError> {
        if let Some(url) = cached(&self.dead_letter_urls, queue_arn) {
            return Ok(url);
        }
        let source = self.queue_url(queue_arn).await?;
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(source)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|err| call("GetQueueAttributes")(err.into()))?;
        let policy = output
            .attributes()
            .and_then(|attributes| attributes.get(&QueueAttributeName::RedrivePolicy))
            .and_then(|json| serde_json::from_str::<RedrivePolicy>(json).ok())
            .ok_or_else(|| QueueError::NoDeadLetterQueue(queue_arn.to_owned()))?;
        let url = self.queue_url(&policy.dead_letter_target_arn).await?;
        remember(&self.dead_letter_urls, queue_arn, &url);
        Ok(url)
    }
}

fn cached(cache: &Mutex<HashMap<String, String>>, key: &str) -> Option<String> {
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(key)
        .cloned()
}

fn remember(cache: &Mutex<HashMap<String, String>>, key: &str, value: &str) {
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key.to_owned(), value.to_owned());
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data_type is set")
}

/// The attribute as SQS takes it back; `None` for kinds SQS does not take (lists).
fn attribute(value: &SqsMessageAttribute) -> Option<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type(value.data_type.clone()?)
        .set_string_value(value.string_value.clone())
        .set_binary_value(value.binary_value.as_ref().map(|b| Blob::new(b.0.clone())))
        .build()
        .ok()
        .filter(|built| built.string_value.is_some() || built.binary_value.is_some())
}

/// The message's own attributes, then the consumer and the reason.
fn dead_letter_attributes(
    message: &SqsMessage,
    consumer: &str,
    reason: &str,
) -> HashMap<String, MessageAttributeValue> {
    let mut attributes: HashMap<String, MessageAttributeValue> = message
        .message_attributes
        .iter()
        .filter(|(name, _)| *name != REASON_ATTRIBUTE && *name != CONSUMER_ATTRIBUTE)
        .filter_map(|(name, value)| Some((name.clone(), attribute(value)?)))
        .take(MAX_ORIGINAL_ATTRIBUTES)
        .collect();
    let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
    attributes.insert(REASON_ATTRIBUTE.into(), string_attribute(&reason));
    attributes.insert(CONSUMER_ATTRIBUTE.into(), string_attribute(consumer));
    attributes
}

#[async_trait]
impl Redelivery for SqsRedelivery {
    async fn delay(&self, message: &SqsMessage, delay: Duration) -> Result<(), QueueError> {
        let (Some(queue_arn), Some(receipt)) = (&message.event_source_arn, &message.receipt_handle)
        else {
            return Err(QueueError::NoSource);
        };
        let url = self.queue_url(queue_arn).await?;
        // SQS caps a visibility timeout at 12 hours.
        let seconds = delay.as_secs().min(43_200) as i32;
        self.client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|err| call("ChangeMessageVisibility")(err.into()))?;
        Ok(())
    }

    async fn dead_letter(
        &self,
        message: &SqsMessage,
        consumer: &str,
        reason: &str,
    ) -> Result<(), QueueError> {
        let queue_arn = message
            .event_source_arn
            .as_deref()
            .ok_or(QueueError::NoSource)?;
        let url = self.dead_letter_url(queue_arn).await?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(message.body.clone().unwrap_or_default())
            .set_message_attributes(Some(dead_letter_attributes(message, consumer, reason)))
            .send()
            .await
            .map_err(|err| call("SendMessage")(err.into()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_a_message_is_dead_lettered_should_keep_its_attributes_and_add_the_reason() {
        let mut message = SqsMessage::default();
        let mut event_type = SqsMessageAttribute::default();
        event_type.data_type = Some("String".into());
        event_type.string_value = Some("TaskCreated".into());
        message
            .message_attributes
            .insert("event_type".into(), event_type);

        let attributes = dead_letter_attributes(&message, "dashboard", &"x".repeat(5_000));

        assert_eq!(attributes["event_type"].string_value(), Some("TaskCreated"));
        assert_eq!(
            attributes[CONSUMER_ATTRIBUTE].string_value(),
            Some("dashboard")
        );
        assert_eq!(
            attributes[REASON_ATTRIBUTE]
                .string_value()
                .map(|r| r.chars().count()),
            Some(MAX_REASON_CHARS)
        );
    }
}
