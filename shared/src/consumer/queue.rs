//! What the toolkit asks of the queue a failed message came from: a later redelivery, or
//! a move to the queue's dead-letter queue.

use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsMessage;

use super::error::BoxError;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the message names no source queue or receipt handle")]
    NoSource,
    #[error("not an SQS queue ARN: {0}")]
    NotAQueueArn(String),
    #[error("queue {0} has no dead-letter queue (no redrive policy)")]
    NoDeadLetterQueue(String),
    #[error("{operation} failed")]
    Call {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
}

#[async_trait]
pub trait Redelivery: Send + Sync {
    /// Delays the next delivery of a failed message (its visibility timeout).
    async fn delay(&self, message: &SqsMessage, delay: Duration) -> Result<(), QueueError>;

    /// Sends a copy of `message`, with its attributes, `consumer` and `reason` added as
    /// attributes, to the dead-letter queue of the queue it came from.
    async fn dead_letter(
        &self,
        message: &SqsMessage,
        consumer: &str,
        reason: &str,
    ) -> Result<(), QueueError>;
}
