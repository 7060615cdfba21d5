//! One SQS batch: every record parsed and processed on its own and concurrently; the
//! response names only the messages to deliver again. Every consumer tolerates any order.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;
use tracing::{error, info, warn};

use super::error::{Chain, ConsumerError};
use super::idempotency::{Claim, IdempotencyStore};
use super::queue::Redelivery;
use crate::events::EventEnvelope;
use crate::metrics;

/// What a consumer does with one event. Events it does not act on are simply `Ok`.
#[async_trait]
pub trait EventHandler: Send + Sync {
    /// The consumer's name, part of its idempotency keys.
    fn name(&self) -> &'static str;

    async fn handle(&self, event: &EventEnvelope) -> Result<(), ConsumerError>;
}

/// Visibility timeout of a transiently failed message: `base` × 2^(receives − 1), at
/// most `max`.
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
    queue: Arc<dyn Redelivery>,
    backoff: RetryBackoff,
}

impl Consumer {
    pub fn new(
        handler: Arc<dyn EventHandler>,
        idempotency: Arc<dyn IdempotencyStore>,
        queue: Arc<dyn Redelivery>,
        backoff: RetryBackoff,
    ) -> Self {
        Consumer {
            handler,
            idempotency,
            queue,
            backoff,
        }
    }

    pub fn name(&self) -> &'static str {
        self.handler.name()
    }

    /// The same consumer with its handler replaced by `wrap(handler)`, a decorator.
    pub fn map_handler(
        mut self,
        wrap: impl FnOnce(Arc<dyn EventHandler>) -> Arc<dyn EventHandler>,
    ) -> Self {
        self.handler = wrap(self.handler);
        self
    }

    /// Processes a batch and returns the ids of the messages to deliver again.
    pub async fn process(&self, batch: SqsEvent) -> SqsBatchResponse {
        let outcomes = join_all(batch.records.iter().map(|message| async move {
            match self.record(message).await {
                Ok(()) => true,
                Err(err) => self.settle(message, &err).await,
            }
        }))
        .await;
        let mut response = SqsBatchResponse::default();
        for (message, done) in batch.records.iter().zip(outcomes) {
            if !done {
                response.add_failure(message_id(message));
            }
        }
        response
    }

    async fn record(&self, message: &SqsMessage) -> Result<(), ConsumerError> {
        let event = EventEnvelope::from_json(message.body.as_deref().unwrap_or_default())?;
        self.apply(&event).await
    }

    async fn apply(&self, event: &EventEnvelope) -> Result<(), ConsumerError> {
        let consumer = self.name();
        match self.idempotency.begin(consumer, event.id).await? {
            Claim::AlreadyApplied => {
                info!(consumer, event.id = %event.id, "event already applied; acknowledged");
                return Ok(());
            }
            Claim::InFlight => {
                return Err(ConsumerError::transient(
                    "another delivery of this event is in progress",
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

    /// Deals with a failed message; `true` when it is done with (dead-lettered), `false`
    /// when it must be delivered again.
    async fn settle(&self, message: &SqsMessage, err: &ConsumerError) -> bool {
        let consumer = self.name();
        let reason = Chain(err).to_string();
        if err.is_permanent() {
            match self.queue.dead_letter(message, consumer, &reason).await {
                Ok(()) => {
                    error!(
                        consumer,
                        message.id = message_id(message),
                        reason,
                        "no retry can succeed; the message was moved to the dead-letter queue"
                    );
                    metrics::dead_lettered(consumer);
                    return true;
                }
                Err(send) => {
                    // Retried instead, the message still reaches the dead-letter queue
                    // after its receives.
                    error!(consumer, message.id = message_id(message), reason, error = %Chain(&send),
                        "no retry can succeed, but the dead-letter queue refused the message; it will be retried");
                }
            }
        } else {
            warn!(
                consumer,
                message.id = message_id(message),
                reason,
                "processing failed; the message will be retried"
            );
        }
        let receives = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|count| count.parse().ok())
            .unwrap_or(1);
        if let Err(err) = self
            .queue
            .delay(message, self.backoff.after(receives))
            .await
        {
            // The queue's own visibility timeout still applies; the retry only comes sooner.
            warn!(consumer, message.id = message_id(message), error = %Chain(&err), "could not delay the retry");
        }
        false
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
    use crate::consumer::QueueError;
    use crate::events::TaskEventData;
    use crate::fixtures;
    use crate::memory::MemoryIdempotency;

    /// Fails events whose task title is "transient" or "permanent" that way; records
    /// what it applied.
    #[derive(Default)]
    struct Recorder {
        applied: Mutex<Vec<Uuid>>,
    }

    #[async_trait]
    impl EventHandler for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }

        async fn handle(&self, event: &EventEnvelope) -> Result<(), ConsumerError> {
            if let TaskEventData::Created(created) = &event.data {
                match created.title.as_str() {
                    "transient" => return Err(ConsumerError::transient("told to fail")),
                    "permanent" => return Err(ConsumerError::permanent("told to give up")),
                    _ => {}
                }
            }
            self.applied.lock().unwrap().push(event.id);
            Ok(())
        }
    }

    /// A queue that records delays and dead letters; refuses dead letters when told to.
    #[derive(Default)]
    struct Queue {
        delays: Mutex<Vec<(String, Duration)>>,
        dead: Mutex<Vec<(String, String)>>,
        refuse_dead_letters: bool,
    }

    #[async_trait]
    impl Redelivery for Queue {
        async fn delay(&self, message: &SqsMessage, delay: Duration) -> Result<(), QueueError> {
            let id = message_id(message).to_owned();
            self.delays.lock().unwrap().push((id, delay));
            Ok(())
        }

        async fn dead_letter(
            &self,
            message: &SqsMessage,
            _: &str,
            reason: &str,
        ) -> Result<(), QueueError> {
            if self.refuse_dead_letters {
                return Err(QueueError::NoDeadLetterQueue("q".into()));
            }
            let id = message_id(message).to_owned();
            self.dead.lock().unwrap().push((id, reason.to_owned()));
            Ok(())
        }
    }

    fn event(title: &str) -> EventEnvelope {
        fixtures::created(title).1
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
        queue: Arc<Queue>,
    }

    fn fixture_with(queue: Queue) -> Fixture {
        let recorder = Arc::new(Recorder::default());
        let queue = Arc::new(queue);
        let consumer = Consumer::new(
            recorder.clone(),
            Arc::new(MemoryIdempotency::default()),
            queue.clone(),
            RetryBackoff {
                base: Duration::from_secs(2),
                max: Duration::from_secs(60),
            },
        );
        Fixture {
            consumer,
            recorder,
            queue,
        }
    }

    fn fixture() -> Fixture {
        fixture_with(Queue::default())
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
    async fn when_batch_mixes_good_poison_and_failing_records_should_retry_only_the_transient_ones()
    {
        // Given a good event, two bodies that are no event, a transient and a permanent failure
        let f = fixture();
        let good = event("good");
        let records = vec![
            message("m1", &good.to_json(), 1),
            message("m2", "this is not json", 1),
            message("m3", &event("transient").to_json(), 3),
            message("m4", r#"{"specversion":"1.0"}"#, 1),
            message("m5", &event("permanent").to_json(), 1),
        ];

        // When the batch is processed
        let response = f.consumer.process(batch(records)).await;

        // Then only the transient failure is delivered again, later the more it failed
        assert_eq!(failures(&response), ["m3"]);
        assert_eq!(*f.recorder.applied.lock().unwrap(), [good.id]);
        assert_eq!(
            *f.queue.delays.lock().unwrap(),
            [("m3".to_owned(), Duration::from_secs(8))]
        );
        // And the permanent ones went to the dead-letter queue at once, with their reason
        let mut dead = f.queue.dead.lock().unwrap().clone();
        dead.sort();
        let ids: Vec<&str> = dead.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["m2", "m4", "m5"]);
        assert!(dead[0].1.contains("not a task event"), "{dead:?}");
        assert!(dead[2].1.contains("told to give up"), "{dead:?}");
    }

    #[tokio::test]
    async fn when_the_dead_letter_queue_refuses_a_poison_message_should_retry_it_instead() {
        let f = fixture_with(Queue {
            refuse_dead_letters: true,
            ..Queue::default()
        });

        let response = f
            .consumer
            .process(batch(vec![message("m1", "not an event", 2)]))
            .await;

        assert_eq!(failures(&response), ["m1"]);
        assert_eq!(
            *f.queue.delays.lock().unwrap(),
            [("m1".to_owned(), Duration::from_secs(4))]
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
        let flaky = event("transient");
        let response = f
            .consumer
            .process(batch(vec![message("a", &flaky.to_json(), 1)]))
            .await;
        assert_eq!(failures(&response), ["a"]);

        // When it is delivered again and now succeeds
        let mut fixed = flaky.clone();
        if let TaskEventData::Created(created) = &mut fixed.data {
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
