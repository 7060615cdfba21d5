//! One SQS batch: every record parsed and processed on its own, records of one task in
//! sequence order, different tasks concurrently; the response names only the failures.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;
use tracing::{error, info, warn};

use super::idempotency::{Claim, IdempotencyStore};
use crate::events::EventEnvelope;

/// A failure of a consumer's side effect; the message is retried, then dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl From<crate::ports::StoreError> for HandlerError {
    fn from(err: crate::ports::StoreError) -> Self {
        HandlerError(err.to_string())
    }
}

/// What a consumer does with one event. Events it does not act on are simply `Ok`.
#[async_trait]
pub trait EventHandler: Send + Sync {
    /// The consumer's name, part of its idempotency keys.
    fn name(&self) -> &'static str;

    async fn handle(&self, event: &EventEnvelope) -> Result<(), HandlerError>;
}

/// Delays the next delivery of a failed message (its visibility timeout).
#[async_trait]
pub trait RetryScheduler: Send + Sync {
    async fn delay(
        &self,
        queue_arn: &str,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), String>;
}

/// Visibility timeout of a failed message: `base` × 2^(receives − 1), at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBackoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryBackoff {
    fn default() -> Self {
        RetryBackoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(900),
        }
    }
}

impl RetryBackoff {
    pub fn after(&self, receive_count: u32) -> Duration {
        let exponent = receive_count.saturating_sub(1).min(20);
        self.base.saturating_mul(1 << exponent).min(self.max)
    }
}

/// A consumer wired to its handler and the toolkit's stores.
#[derive(Clone)]
pub struct Consumer {
    handler: Arc<dyn EventHandler>,
    idempotency: Arc<dyn IdempotencyStore>,
    retry: Arc<dyn RetryScheduler>,
    backoff: RetryBackoff,
}

struct Parsed<'a> {
    message: &'a SqsMessage,
    event: EventEnvelope,
}

impl Consumer {
    pub fn new(
        handler: Arc<dyn EventHandler>,
        idempotency: Arc<dyn IdempotencyStore>,
        retry: Arc<dyn RetryScheduler>,
        backoff: RetryBackoff,
    ) -> Self {
        Consumer {
            handler,
            idempotency,
            retry,
            backoff,
        }
    }

    pub fn name(&self) -> &'static str {
        self.handler.name()
    }

    /// Processes a batch and returns the ids of the messages to deliver again.
    pub async fn process(&self, batch: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        let mut failed: Vec<&SqsMessage> = Vec::new();
        let mut by_task: BTreeMap<String, Vec<Parsed>> = BTreeMap::new();
        for message in &batch.records {
            let body = message.body.as_deref().unwrap_or_default();
            match EventEnvelope::from_json(body) {
                Ok(event) => by_task
                    .entry(event.subject.clone())
                    .or_default()
                    .push(Parsed { message, event }),
                Err(err) => {
                    error!(consumer = self.name(), message.id = message_id(message),
                        error = %err, "unparsable message; it will reach the dead-letter queue");
                    failed.push(message);
                }
            }
        }
        let groups = by_task.into_values().map(|mut records| async move {
            records.sort_by_key(|record| record.event.sequence);
            let mut failed = Vec::new();
            for record in records {
                if let Err(err) = self.apply(&record.event).await {
                    error!(consumer = self.name(), message.id = message_id(record.message),
                        event.type = record.event.kind().name(), event.id = %record.event.id,
                        error = %err, "processing failed; the message will be retried");
                    failed.push(record.message);
                }
            }
            failed
        });
        for group in join_all(groups).await {
            failed.extend(group);
        }
        for message in failed {
            self.schedule_retry(message).await;
            response.add_failure(message_id(message));
        }
        response
    }

    async fn apply(&self, event: &EventEnvelope) -> Result<(), HandlerError> {
        let consumer = self.name();
        match self.idempotency.begin(consumer, event.id).await? {
            Claim::AlreadyApplied => {
                info!(consumer, event.id = %event.id, "event already applied; acknowledged");
                return Ok(());
            }
            Claim::InFlight => {
                return Err(HandlerError(
                    "another delivery of this event is in progress".into(),
                ))
            }
            Claim::Acquired => {}
        }
        match self.handler.handle(event).await {
            Ok(()) => {
                if let Err(err) = self.idempotency.complete(consumer, event.id).await {
                    // Applied already: retrying would apply it twice once the lease expires.
                    warn!(consumer, event.id = %event.id, error = %err, "could not record the event as applied");
                }
                info!(consumer, event.type = event.kind().name(), event.id = %event.id, "event applied");
                Ok(())
            }
            Err(err) => {
                if let Err(release) = self.idempotency.release(consumer, event.id).await {
                    warn!(consumer, event.id = %event.id, error = %release, "could not release the lease; it will expire");
                }
                Err(err)
            }
        }
    }

    async fn schedule_retry(&self, message: &SqsMessage) {
        let (Some(queue_arn), Some(receipt)) = (&message.event_source_arn, &message.receipt_handle)
        else {
            return;
        };
        let receives = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|count| count.parse().ok())
            .unwrap_or(1);
        let delay = self.backoff.after(receives);
        if let Err(err) = self.retry.delay(queue_arn, receipt, delay).await {
            // The queue's own visibility timeout still applies; the retry only comes sooner.
            warn!(message.id = message_id(message), error = %err, "could not delay the retry");
        }
    }
}

fn message_id(message: &SqsMessage) -> &str {
    message.message_id.as_deref().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use uuid::Uuid;

    use super::*;
    use crate::domain::{NewTask, Task};
    use crate::memory::MemoryIdempotency;

    /// Fails events whose task title is "fail"; records what it applied.
    #[derive(Default)]
    struct Recorder {
        applied: Mutex<Vec<Uuid>>,
    }

    #[async_trait]
    impl EventHandler for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }

        async fn handle(&self, event: &EventEnvelope) -> Result<(), HandlerError> {
            if let crate::events::TaskEventData::Created(created) = &event.data {
                if created.title == "fail" {
                    return Err(HandlerError("told to fail".into()));
                }
            }
            self.applied.lock().unwrap().push(event.id);
            Ok(())
        }
    }

    #[derive(Default)]
    struct Delays(Mutex<Vec<(String, Duration)>>);

    #[async_trait]
    impl RetryScheduler for Delays {
        async fn delay(&self, _: &str, receipt: &str, delay: Duration) -> Result<(), String> {
            self.0.lock().unwrap().push((receipt.to_owned(), delay));
            Ok(())
        }
    }

    fn event(title: &str) -> EventEnvelope {
        let input = NewTask {
            user_id: "u".into(),
            title: title.into(),
            description: String::new(),
        };
        Task::create(input, crate::time::now())
            .unwrap()
            .event
            .unwrap()
    }

    fn message(id: &str, body: &str, receives: u32) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.into());
        message.receipt_handle = Some(format!("receipt-{id}"));
        message.body = Some(body.into());
        message.event_source_arn = Some("arn:aws:sqs:us-east-1:000000000000:q".into());
        message.attributes =
            HashMap::from([("ApproximateReceiveCount".into(), receives.to_string())]);
        message
    }

    fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = messages;
        event
    }

    struct Fixture {
        consumer: Consumer,
        recorder: Arc<Recorder>,
        delays: Arc<Delays>,
    }

    fn fixture() -> Fixture {
        let recorder = Arc::new(Recorder::default());
        let delays = Arc::new(Delays::default());
        let consumer = Consumer::new(
            recorder.clone(),
            Arc::new(MemoryIdempotency::default()),
            delays.clone(),
            RetryBackoff {
                base: Duration::from_secs(2),
                max: Duration::from_secs(60),
            },
        );
        Fixture {
            consumer,
            recorder,
            delays,
        }
    }

    fn failures(response: &SqsBatchResponse) -> Vec<&str> {
        let mut ids: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn when_batch_mixes_good_unparsable_and_failing_records_should_fail_only_the_bad_ones() {
        // Given
        let f = fixture();
        let good = event("good");
        let failing = event("fail");
        let records = vec![
            message("m1", &good.to_json(), 1),
            message("m2", "this is not json", 1),
            message("m3", &failing.to_json(), 3),
            message("m4", r#"{"specversion":"1.0"}"#, 1),
        ];

        // When
        let response = f.consumer.process(batch(records)).await;

        // Then
        assert_eq!(failures(&response), ["m2", "m3", "m4"]);
        assert_eq!(*f.recorder.applied.lock().unwrap(), [good.id]);
        let delays = f.delays.0.lock().unwrap().clone();
        assert!(
            delays.contains(&("receipt-m3".into(), Duration::from_secs(8))),
            "{delays:?}"
        );
        assert!(
            delays.contains(&("receipt-m2".into(), Duration::from_secs(2))),
            "{delays:?}"
        );
    }

    #[tokio::test]
    async fn when_the_same_event_arrives_twice_should_apply_it_once_and_acknowledge_both() {
        let f = fixture();
        let once = event("once");

        let first = f
            .consumer
            .process(batch(vec![message("a", &once.to_json(), 1)]))
            .await;
        let second = f
            .consumer
            .process(batch(vec![message("b", &once.to_json(), 1)]))
            .await;

        assert!(first.batch_item_failures.is_empty());
        assert!(second.batch_item_failures.is_empty());
        assert_eq!(f.recorder.applied.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn when_a_failed_event_is_redelivered_should_apply_it_then() {
        // Given an event that failed once (its lease was released)
        let f = fixture();
        let flaky = event("fail");
        let response = f
            .consumer
            .process(batch(vec![message("a", &flaky.to_json(), 1)]))
            .await;
        assert_eq!(failures(&response), ["a"]);

        // When it is delivered again and now succeeds
        let mut fixed = flaky.clone();
        if let crate::events::TaskEventData::Created(created) = &mut fixed.data {
            created.title = "fixed".into();
        }
        let response = f
            .consumer
            .process(batch(vec![message("a", &fixed.to_json(), 2)]))
            .await;

        // Then it is applied
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(*f.recorder.applied.lock().unwrap(), [flaky.id]);
    }

    #[test]
    fn when_receives_grow_should_double_the_delay_up_to_the_cap() {
        let backoff = RetryBackoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        let delays: Vec<u64> = (1..=5).map(|r| backoff.after(r).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 60, 60]);
    }
}
