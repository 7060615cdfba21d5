//! One SQS batch: every record parsed and processed on its own and concurrently; the
//! response names only the messages to deliver again. Every consumer tolerates any order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;
use opentelemetry::trace::TraceContextExt;
use tracing::field::Empty;
use tracing::{error, info, info_span, warn, Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use super::error::{Chain, ConsumerError};
use super::queue::Redelivery;
use crate::events::EventEnvelope;
use crate::metrics::Measure;
use crate::telemetry::{context_of, record_trace_id};
use crate::time;

/// What a consumer does with one event. Events it does not act on are simply `Ok`.
#[async_trait]
pub trait EventHandler: Send + Sync {
    /// The consumer's name, in its logs, spans and metrics.
    fn name(&self) -> &'static str;

    /// Applies the event once: a delivery of an event applied before (SNS and SQS deliver
    /// at least once) leaves the consumer's state as it was, since each effect is a write
    /// conditional on what it records.
    async fn handle(&self, event: &EventEnvelope) -> Result<(), ConsumerError>;

    /// The same, with the message's body as it arrived, for a consumer that keeps it; by
    /// default the body is not needed. A decorator forwards both.
    async fn handle_body(&self, event: &EventEnvelope, body: &str) -> Result<(), ConsumerError> {
        let _ = body;
        self.handle(event).await
    }

    /// Whether the toolkit hands this handler a batch's events together (`handle_batch`)
    /// rather than each on its own. A decorator forwards it.
    fn applies_batches(&self) -> bool {
        false
    }

    /// The events of one batch (with their bodies) at once, for a handler that applies
    /// them in fewer calls together than one by one: one outcome per event, in order. By
    /// default each on its own, concurrently.
    async fn handle_batch(
        &self,
        events: &[(&EventEnvelope, &str)],
    ) -> Vec<Result<(), ConsumerError>> {
        join_all(
            events
                .iter()
                .map(|(event, body)| self.handle_body(event, body)),
        )
        .await
    }
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

/// A consumer wired to its handler and the queue its failed messages go back to.
#[derive(Clone)]
pub struct Consumer {
    handler: Arc<dyn EventHandler>,
    queue: Arc<dyn Redelivery>,
    backoff: RetryBackoff,
}

impl Consumer {
    pub fn new(
        handler: Arc<dyn EventHandler>,
        queue: Arc<dyn Redelivery>,
        backoff: RetryBackoff,
    ) -> Self {
        Consumer {
            handler,
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

    /// Processes a batch and returns the ids of the messages to deliver again. The batch
    /// has a span linked to every event's trace; each record a span continuing its event's
    /// trace (or, without one, the batch's).
    pub async fn process(&self, batch: SqsEvent) -> SqsBatchResponse {
        let queue = batch
            .records
            .first()
            .and_then(|message| message.event_source_arn.as_deref())
            .map(|arn| arn.rsplit(':').next().unwrap_or(arn).to_owned())
            .unwrap_or_default();
        let parsed: Vec<(&SqsMessage, Result<EventEnvelope, ConsumerError>)> = batch
            .records
            .iter()
            .map(|message| {
                let body = message.body.as_deref().unwrap_or_default();
                (
                    message,
                    EventEnvelope::from_json(body).map_err(ConsumerError::from),
                )
            })
            .collect();
        // Copies of one event in one batch (SNS and SQS deliver at least once) are applied
        // once: the first copy leads, the others share its outcome.
        let mut leaders: HashMap<Uuid, usize> = HashMap::new();
        let mut copies: Vec<(&SqsMessage, usize)> = Vec::new();
        let mut unique = Vec::with_capacity(parsed.len());
        for (message, event) in parsed {
            if let Ok(event) = &event {
                if let Some(&leader) = leaders.get(&event.id) {
                    copies.push((message, leader));
                    continue;
                }
                leaders.insert(event.id, unique.len());
            }
            unique.push((message, event));
        }
        let parsed = unique;
        let batch_span = info_span!(
            "SQS batch",
            otel.name = %format!("{queue} process"),
            otel.kind = "consumer",
            consumer = self.name(),
            messaging.system = "aws_sqs",
            messaging.operation = "process",
            messaging.destination.name = %queue,
            messaging.batch.message_count = batch.records.len(),
        );
        for event in parsed.iter().filter_map(|(_, event)| event.as_ref().ok()) {
            if let Some(parent) = event.traceparent.as_deref().and_then(context_of) {
                batch_span.add_link(parent.span().span_context().clone());
            }
        }
        let outcomes = if self.handler.applies_batches() {
            self.process_together(parsed, &queue, &batch_span).await
        } else {
            self.process_each(parsed, &queue, &batch_span).await
        };
        let mut response = SqsBatchResponse::default();
        for (message, done) in &outcomes {
            if !done {
                response.add_failure(message_id(message));
            }
        }
        for (message, leader) in copies {
            let (first, done) = outcomes[leader];
            info!(
                consumer = self.name(),
                message.id = message_id(message),
                copy_of = message_id(first),
                done,
                "a copy of an event earlier in the batch; shares its outcome"
            );
            if !done {
                response.add_failure(message_id(message));
            }
        }
        response
    }

    /// Each record on its own and concurrently: the handler, then the settling.
    async fn process_each<'m>(
        &self,
        parsed: Vec<(&'m SqsMessage, Result<EventEnvelope, ConsumerError>)>,
        queue: &str,
        batch_span: &Span,
    ) -> Vec<(&'m SqsMessage, bool)> {
        let records = parsed.into_iter().map(|(message, event)| {
            let span =
                batch_span.in_scope(|| self.record_span(message, queue, event.as_ref().ok()));
            async move {
                if receives(message) > 1 {
                    Measure::Retried(self.name()).emit();
                }
                let outcome = match event {
                    Ok(event) => {
                        self.apply(&event, message.body.as_deref().unwrap_or_default())
                            .await
                    }
                    Err(err) => Err(err),
                };
                (message, self.settled(message, outcome).await)
            }
            .instrument(span)
        });
        join_all(records).instrument(batch_span.clone()).await
    }

    /// The records together: the handler once over every event of the batch, then each
    /// record settled in its own span.
    async fn process_together<'m>(
        &self,
        parsed: Vec<(&'m SqsMessage, Result<EventEnvelope, ConsumerError>)>,
        queue: &str,
        batch_span: &Span,
    ) -> Vec<(&'m SqsMessage, bool)> {
        let records: Vec<_> = parsed
            .into_iter()
            .map(|(message, event)| {
                let span =
                    batch_span.in_scope(|| self.record_span(message, queue, event.as_ref().ok()));
                if receives(message) > 1 {
                    Measure::Retried(self.name()).emit();
                }
                (message, event, span)
            })
            .collect();
        let to_apply: Vec<(&EventEnvelope, &str)> = records
            .iter()
            .filter_map(|(message, event, _)| {
                let event = event.as_ref().ok()?;
                Some((event, message.body.as_deref().unwrap_or_default()))
            })
            .collect();
        let started = Instant::now();
        let mut applied = self
            .handler
            .handle_batch(&to_apply)
            .instrument(batch_span.clone())
            .await
            .into_iter();
        let elapsed = started.elapsed();
        let settled = records.into_iter().map(|(message, event, span)| {
            let outcome = event.map(|event| {
                let outcome = applied.next().unwrap_or_else(|| {
                    Err(ConsumerError::transient(
                        "the handler gave no outcome for the event",
                    ))
                });
                (event, outcome)
            });
            async move {
                let outcome = match outcome {
                    Ok((event, outcome)) => self.finish(&event, elapsed, outcome),
                    Err(err) => Err(err),
                };
                (message, self.settled(message, outcome).await)
            }
            .instrument(span)
        });
        join_all(settled).await
    }

    /// The span of one record: a child of its event's trace when the event names one.
    fn record_span(
        &self,
        message: &SqsMessage,
        queue: &str,
        event: Option<&EventEnvelope>,
    ) -> Span {
        let span = info_span!(
            "SQS message",
            otel.name = %format!("{} process", self.name()),
            otel.kind = "consumer",
            otel.status_code = Empty,
            otel.status_message = Empty,
            consumer = self.name(),
            messaging.system = "aws_sqs",
            messaging.operation = "process",
            messaging.destination.name = %queue,
            messaging.message.id = message_id(message),
            cloudevents.event_id = event.map(|e| tracing::field::display(e.id)),
            cloudevents.event_type = event.map(|e| e.wire_type().name()),
            event.type = event.map(|e| e.kind().name()),
            event.id = event.map(|e| tracing::field::display(e.id)),
            task.id = event.map(|e| e.subject.as_str()),
            correlation_id = event.and_then(|e| e.correlationid.as_deref()),
            trace_id = Empty,
        );
        if let Some(parent) = event
            .and_then(|e| e.traceparent.as_deref())
            .and_then(context_of)
        {
            // Only an invalid context is refused, and `context_of` gives valid ones.
            let _ = span.set_parent(parent);
        }
        record_trace_id(&span);
        span
    }

    async fn apply(&self, event: &EventEnvelope, body: &str) -> Result<(), ConsumerError> {
        let started = Instant::now();
        let outcome = self.handler.handle_body(event, body).await;
        self.finish(event, started.elapsed(), outcome)
    }

    /// After the handler: an applied event measured and logged.
    fn finish(
        &self,
        event: &EventEnvelope,
        took: Duration,
        outcome: Result<(), ConsumerError>,
    ) -> Result<(), ConsumerError> {
        let consumer = self.name();
        outcome?;
        Measure::ProcessingTime(consumer, took).emit();
        let age = (time::now() - event.time).to_std().unwrap_or_default();
        Measure::EventAge(consumer, age).emit();
        info!(consumer, event.type = event.kind().name(), event.id = %event.id, "event applied");
        Ok(())
    }

    /// Whether the message is done with: applied, or failed and settled (`failed`).
    async fn settled(&self, message: &SqsMessage, outcome: Result<(), ConsumerError>) -> bool {
        match outcome {
            Ok(()) => true,
            Err(err) => self.failed(message, &err).await,
        }
    }

    /// A failed record: its span marked, the message settled (`settle`).
    async fn failed(&self, message: &SqsMessage, err: &ConsumerError) -> bool {
        let span = Span::current();
        span.record("otel.status_code", "ERROR");
        span.record("otel.status_message", tracing::field::display(Chain(err)));
        self.settle(message, err).await
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
                    Measure::DeadLettered(consumer).emit();
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
        let delay = self
            .backoff
            .after(receives(message))
            .max(err.earliest_retry().unwrap_or_default());
        if let Err(err) = self.queue.delay(message, delay).await {
            // The queue's own visibility timeout still applies; the retry only comes sooner.
            warn!(consumer, message.id = message_id(message), error = %Chain(&err), "could not delay the retry");
        }
        false
    }
}

/// How often SQS delivered the message, this delivery included.
fn receives(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
        .unwrap_or(1)
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
    use crate::fixtures;

    /// Fails events whose correlation id is "transient" or "permanent" that way; records
    /// what it applied, each event once (as the consumers' conditional writes do).
    #[derive(Default)]
    struct Recorder {
        applied: Mutex<Vec<Uuid>>,
        calls: Mutex<Vec<Uuid>>,
    }

    #[async_trait]
    impl EventHandler for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }

        async fn handle(&self, event: &EventEnvelope) -> Result<(), ConsumerError> {
            self.calls.lock().unwrap().push(event.id);
            // As a real store call would: the other records of the batch go on meanwhile.
            tokio::task::yield_now().await;
            match event.correlationid.as_deref() {
                Some("transient") => return Err(ConsumerError::transient("told to fail")),
                Some("permanent") => return Err(ConsumerError::permanent("told to give up")),
                _ => {}
            }
            let mut applied = self.applied.lock().unwrap();
            if !applied.contains(&event.id) {
                applied.push(event.id);
            }
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

    fn event(behaviour: &str) -> EventEnvelope {
        let mut event = fixtures::created("a task").1;
        event.correlationid = Some(behaviour.to_owned());
        event
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

    /// A handler that applies batches: records each call's events, fails those the
    /// recorder would.
    #[derive(Default)]
    struct Together {
        calls: Mutex<Vec<Vec<Uuid>>>,
        inner: Recorder,
    }

    #[async_trait]
    impl EventHandler for Together {
        fn name(&self) -> &'static str {
            "together"
        }

        async fn handle(&self, event: &EventEnvelope) -> Result<(), ConsumerError> {
            self.inner.handle(event).await
        }

        fn applies_batches(&self) -> bool {
            true
        }

        async fn handle_batch(
            &self,
            events: &[(&EventEnvelope, &str)],
        ) -> Vec<Result<(), ConsumerError>> {
            self.calls
                .lock()
                .unwrap()
                .push(events.iter().map(|(event, _)| event.id).collect());
            let mut outcomes = Vec::new();
            for (event, _) in events {
                outcomes.push(self.inner.handle(event).await);
            }
            outcomes
        }
    }

    #[tokio::test]
    async fn when_the_handler_applies_batches_should_hand_it_the_events_together_and_settle_each() {
        // Given a handler that applies batches, and a batch of two good events, one that
        // fails transiently and a body that is no event
        let handler = Arc::new(Together::default());
        let queue = Arc::new(Queue::default());
        let consumer = Consumer::new(handler.clone(), queue.clone(), RetryBackoff::default());
        let (first, second, failing) = (event("good"), event("good"), event("transient"));
        let records = vec![
            message("m1", &first.to_json(), 1),
            message("m2", &failing.to_json(), 1),
            message("m3", "this is not json", 1),
            message("m4", &second.to_json(), 1),
        ];

        // When the batch is processed
        let response = consumer.process(batch(records)).await;

        // Then the handler got the three events in one call, in order; only the failed
        // one is delivered again and the body that is no event is dead-lettered
        assert_eq!(
            *handler.calls.lock().unwrap(),
            [vec![first.id, failing.id, second.id]]
        );
        assert_eq!(failures(&response), ["m2"]);
        assert_eq!(
            *handler.inner.applied.lock().unwrap(),
            [first.id, second.id]
        );
        let dead: Vec<String> = queue
            .dead
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(dead, ["m3"]);
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
    async fn when_copies_of_an_event_share_a_batch_should_apply_it_once_and_settle_all_alike() {
        // Given one batch with three copies of an event and two of one that fails for now
        let f = fixture();
        let once = event("once").to_json();
        let failing = event("transient").to_json();
        let messages = vec![
            message("a1", &once, 1),
            message("t1", &failing, 1),
            message("a2", &once, 1),
            message("a3", &once, 1),
            message("t2", &failing, 1),
        ];

        // When it is processed
        let response = f.consumer.process(batch(messages)).await;

        // Then the handler was given the event once and every copy acknowledged; the
        // failing one's copies are all retried
        assert_eq!(f.recorder.applied.lock().unwrap().len(), 1);
        assert_eq!(f.recorder.calls.lock().unwrap().len(), 2);
        assert_eq!(failures(&response), ["t1", "t2"]);
    }

    #[tokio::test]
    async fn when_a_failed_event_is_redelivered_should_apply_it_then() {
        // Given an event that failed once
        let f = fixture();
        let flaky = event("transient");
        let response = f
            .consumer
            .process(batch(vec![message("a", &flaky.to_json(), 1)]))
            .await;
        assert_eq!(failures(&response), ["a"]);

        // When it is delivered again and now succeeds
        let mut fixed = flaky.clone();
        fixed.correlationid = Some("fixed".into());
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
