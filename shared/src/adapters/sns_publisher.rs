//! SNS adapter of `EventPublisher`: structured CloudEvents as message bodies, with
//! `event_type` and `event_version` attributes for subscription filter policies.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_sns::error::{DisplayErrorContext, SdkError};
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use aws_sdk_sns::Client;
use tracing::{error, info, info_span, Instrument};
use uuid::Uuid;

use crate::events::{Emission, EventEnvelope};
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
    emission: Emission,
}

impl SnsPublisher {
    /// `client` should carry the SDK retry configuration of `retry::sdk_retry_config`, which
    /// retries whole calls on transient failures; failed batch entries are retried here.
    pub fn new(client: Client, topic_arn: impl Into<String>, backoff: Backoff) -> Self {
        SnsPublisher {
            client,
            topic_arn: topic_arn.into(),
            backoff,
            emission: Emission::default(),
        }
    }

    /// Publishes each event as every type `emission` lists of its kind (one message each,
    /// with the same id), rather than in its first version only.
    pub fn emitting(mut self, emission: Emission) -> Self {
        self.emission = emission;
        self
    }

    /// The messages of `event`: one per type emitted of its kind.
    fn messages<'a>(
        &'a self,
        event: &'a EventEnvelope,
    ) -> impl Iterator<Item = EventEnvelope> + 'a {
        self.emission
            .of(event.kind())
            .map(|ty| event.as_type(ty).expect("a type of the event's own kind"))
    }

    fn attributes(event: &EventEnvelope) -> HashMap<String, MessageAttributeValue> {
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .expect("data_type is set")
        };
        event
            .wire_type()
            .message_attributes()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), attribute(value)))
            .collect()
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
                        .id(entry_id(event))
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
            let mut answered: Vec<String> = Vec::new();
            for entry in output.successful() {
                if let Some(event) = find(&remaining, entry.id()) {
                    info!(event.type = event.wire_type().name(), event.id = %event.id,
                        message.id = entry.message_id().unwrap_or_default(), "event published");
                    report.published.push(event.id);
                    answered.push(entry_id(event));
                }
            }
            let mut retry = Vec::new();
            for entry in output.failed() {
                let Some(event) = find(&remaining, Some(entry.id())) else {
                    continue;
                };
                answered.push(entry_id(event));
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
            // An entry SNS reports neither way may or may not be out: it stays in the
            // outbox, and consumers ignore a second copy.
            for event in remaining
                .iter()
                .filter(|event| !answered.contains(&entry_id(event)))
            {
                let reason = "SNS reported no result for this entry".to_owned();
                log_failure(event, &reason);
                report.failed.push(PublishFailure {
                    event_id: event.id,
                    reason,
                });
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

/// The batch entry of one message: the event id and its version (both types of an event
/// may share a batch).
fn entry_id(event: &EventEnvelope) -> String {
    format!("{}-{}", event.id.simple(), event.wire_type().version())
}

fn find<'a>(events: &[&'a EventEnvelope], id: Option<&str>) -> Option<&'a EventEnvelope> {
    let id = id?;
    events.iter().copied().find(|event| entry_id(event) == id)
}

fn log_failure(event: &EventEnvelope, reason: &str) {
    error!(event.type = event.wire_type().name(), event.id = %event.id, reason, "publishing event failed");
}

/// The report of `events` from that of their messages: an event is published once every
/// message of it is, and failed (with its first reason) when any is.
fn by_event(
    events: &[EventEnvelope],
    messages: BatchReport,
    per_event: impl Fn(&EventEnvelope) -> usize,
) -> BatchReport {
    let mut report = BatchReport::default();
    for event in events {
        let per_event = per_event(event);
        if let Some(failure) = messages.failed.iter().find(|f| f.event_id == event.id) {
            report.failed.push(failure.clone());
        } else if messages
            .published
            .iter()
            .filter(|id| **id == event.id)
            .count()
            >= per_event
        {
            report.published.push(event.id);
        } else {
            report.failed.push(PublishFailure {
                event_id: event.id,
                reason: "not every version of the event was published".to_owned(),
            });
        }
    }
    report
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
            for message in self.messages(event) {
                let result = self
                    .client
                    .publish()
                    .topic_arn(&self.topic_arn)
                    .message(message.to_json())
                    .set_message_attributes(Some(Self::attributes(&message)))
                    .send()
                    .await;
                match result {
                    Ok(output) => info!(
                        event.type = message.wire_type().name(),
                        message.id = output.message_id().unwrap_or_default(),
                        "event published"
                    ),
                    Err(err) => {
                        let failure = failure(event.id, &err);
                        log_failure(&message, &failure.reason);
                        metrics::publish_failures(1);
                        return Err(failure);
                    }
                }
            }
            Ok(())
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
            let started = std::time::Instant::now();
            let messages: Vec<EventEnvelope> = events
                .iter()
                .flat_map(|event| self.messages(event))
                .collect();
            let mut sent = BatchReport::default();
            for chunk in messages.chunks(MAX_BATCH_ENTRIES) {
                self.publish_chunk(chunk, &mut sent).await;
            }
            let report = by_event(events, sent, |event| self.emission.of(event.kind()).count());
            let span = tracing::Span::current();
            span.record("event.published_count", report.published.len());
            span.record("event.failed_count", report.failed.len());
            info!(
                published = report.published.len(),
                failed = report.failed.len(),
                "batch publish finished"
            );
            metrics::Measure::PublishLatency(started.elapsed()).emit();
            if !report.failed.is_empty() {
                metrics::publish_failures(report.failed.len());
            }
            report
        }
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use aws_sdk_sns::operation::publish::PublishOutput;
    use aws_sdk_sns::operation::publish_batch::{
        PublishBatchError, PublishBatchInput, PublishBatchOutput,
    };
    use aws_sdk_sns::types::error::NotFoundException;
    use aws_sdk_sns::types::{BatchResultErrorEntry, PublishBatchResultEntry};
    use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};

    use super::*;

    fn events(count: usize) -> Vec<EventEnvelope> {
        (0..count)
            .map(|i| crate::fixtures::created(&format!("task {i}")).1)
            .collect()
    }

    fn fast() -> Backoff {
        Backoff {
            retries: 3,
            initial: Duration::from_millis(1),
            max: Duration::from_millis(4),
        }
    }

    fn success(id: &str) -> PublishBatchResultEntry {
        PublishBatchResultEntry::builder()
            .id(id)
            .message_id(format!("m-{id}"))
            .build()
    }

    fn failure(id: &str, sender_fault: bool) -> BatchResultErrorEntry {
        BatchResultErrorEntry::builder()
            .id(id)
            .code(if sender_fault {
                "InvalidParameter"
            } else {
                "InternalError"
            })
            .sender_fault(sender_fault)
            .build()
            .unwrap()
    }

    /// Answers each call with `decide(call number, entry id)`: None succeeds, Some(fault) fails.
    fn batch_rule(
        sizes: Arc<Mutex<Vec<usize>>>,
        decide: impl Fn(usize, &str) -> Option<bool> + Send + Sync + 'static,
    ) -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_sns::Client::publish_batch).then_compute_output(
            move |input: &PublishBatchInput| {
                let mut sizes = sizes.lock().unwrap();
                let call = sizes.len();
                let entries = input.publish_batch_request_entries();
                sizes.push(entries.len());
                let mut output = PublishBatchOutput::builder();
                for entry in entries {
                    output = match decide(call, entry.id()) {
                        None => output.successful(success(entry.id())),
                        Some(sender_fault) => output.failed(failure(entry.id(), sender_fault)),
                    };
                }
                output.build()
            },
        )
    }

    fn publisher(rule: &aws_smithy_mocks::Rule) -> SnsPublisher {
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [rule]);
        SnsPublisher::new(client, "arn:aws:sns:us-east-1:000000000000:events", fast())
    }

    #[tokio::test]
    async fn when_batch_exceeds_ten_should_send_chunks_of_at_most_ten() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let rule = batch_rule(sizes.clone(), |_, _| None);
        let events = events(25);

        let report = publisher(&rule).publish_batch(&events).await;

        assert_eq!(*sizes.lock().unwrap(), [10, 10, 5]);
        assert_eq!(
            report.published,
            events.iter().map(|e| e.id).collect::<Vec<_>>()
        );
        assert!(report.failed.is_empty());
    }

    #[tokio::test]
    async fn when_one_entry_fails_transiently_should_retry_only_that_entry() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let events = events(3);
        let flaky = entry_id(&events[1]);
        let rule = batch_rule(sizes.clone(), move |call, id| {
            (call == 0 && id == flaky).then_some(false)
        });

        let report = publisher(&rule).publish_batch(&events).await;

        assert_eq!(*sizes.lock().unwrap(), [3, 1]);
        assert_eq!(report.published.len(), 3);
        assert!(report.failed.is_empty());
    }

    #[tokio::test]
    async fn when_an_entry_keeps_failing_should_give_up_after_three_retries_and_keep_the_others() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let events = events(4);
        let broken = entry_id(&events[2]);
        let rule = batch_rule(sizes.clone(), move |_, id| (id == broken).then_some(false));

        let report = publisher(&rule).publish_batch(&events).await;

        assert_eq!(*sizes.lock().unwrap(), [4, 1, 1, 1]);
        assert_eq!(report.published.len(), 3);
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].event_id, events[2].id);
        assert!(report.failed[0].reason.contains("InternalError"));
    }

    #[tokio::test]
    async fn when_an_entry_is_refused_as_invalid_should_not_retry_it() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let events = events(2);
        let invalid = entry_id(&events[0]);
        let rule = batch_rule(sizes.clone(), move |_, id| (id == invalid).then_some(true));

        let report = publisher(&rule).publish_batch(&events).await;

        assert_eq!(*sizes.lock().unwrap(), [2]);
        assert_eq!(report.published, [events[1].id]);
        assert_eq!(report.failed[0].event_id, events[0].id);
    }

    #[tokio::test]
    async fn when_a_whole_call_fails_should_report_its_chunk_and_still_send_the_next() {
        let calls = Arc::new(Mutex::new(0));
        let counter = calls.clone();
        let rule = mock!(aws_sdk_sns::Client::publish_batch).then_compute_response(
            move |input: &PublishBatchInput| {
                let mut calls = counter.lock().unwrap();
                *calls += 1;
                if *calls == 1 {
                    return MockResponse::Error(PublishBatchError::NotFoundException(
                        NotFoundException::builder()
                            .message("Topic does not exist")
                            .build(),
                    ));
                }
                let mut output = PublishBatchOutput::builder();
                for entry in input.publish_batch_request_entries() {
                    output = output.successful(success(entry.id()));
                }
                MockResponse::Output(output.build())
            },
        );
        let events = events(12);

        let report = publisher(&rule).publish_batch(&events).await;

        assert_eq!(*calls.lock().unwrap(), 2);
        assert_eq!(report.failed.len(), 10);
        assert_eq!(report.published, [events[10].id, events[11].id]);
    }

    #[tokio::test]
    async fn when_sns_reports_an_entry_neither_way_should_count_it_as_failed() {
        let events = events(3);
        let silent = entry_id(&events[1]);
        let rule = mock!(aws_sdk_sns::Client::publish_batch).then_compute_output(
            move |input: &PublishBatchInput| {
                let mut output = PublishBatchOutput::builder();
                for entry in input.publish_batch_request_entries() {
                    if entry.id() != silent {
                        output = output.successful(success(entry.id()));
                    }
                }
                output.build()
            },
        );

        let report = publisher(&rule).publish_batch(&events).await;

        assert_eq!(report.published, [events[0].id, events[2].id]);
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].event_id, events[1].id);
    }

    #[tokio::test]
    async fn when_publishing_one_should_set_the_filter_attributes() {
        let event = events(1).remove(0);
        let body = event.to_json();
        let rule = mock!(aws_sdk_sns::Client::publish)
            .match_requests(move |input| {
                let attributes = input.message_attributes().unwrap();
                attributes["event_type"].string_value() == Some("TaskCreated")
                    && attributes["event_version"].string_value() == Some("v1")
                    && input.message() == Some(body.as_str())
            })
            .then_output(|| PublishOutput::builder().message_id("m-1").build());
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&rule]);
        let publisher =
            SnsPublisher::new(client, "arn:aws:sns:us-east-1:000000000000:events", fast());

        publisher.publish(&event).await.unwrap();

        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn when_a_second_version_is_emitted_should_publish_both_with_one_id_and_report_the_event_once(
    ) {
        // Given a publisher emitting task.completed in v1 and v2, a creation and a completion
        let emission = Emission::parse(
            "task.created.v1,task.started.v1,task.completed.v1,task.completed.v2,task.failed.v1",
        )
        .unwrap();
        let created = events(1).remove(0);
        let [_, _, completed] = crate::fixtures::Run::default().events();
        let sent = Arc::new(Mutex::new(Vec::<(String, String, String)>::new()));
        let seen = sent.clone();
        let rule = mock!(aws_sdk_sns::Client::publish_batch).then_compute_output(
            move |input: &PublishBatchInput| {
                let mut output = PublishBatchOutput::builder();
                for entry in input.publish_batch_request_entries() {
                    let attributes = entry.message_attributes().unwrap();
                    seen.lock().unwrap().push((
                        entry.id().to_owned(),
                        attributes["event_version"]
                            .string_value()
                            .unwrap()
                            .to_owned(),
                        entry.message().to_owned(),
                    ));
                    output = output.successful(success(entry.id()));
                }
                output.build()
            },
        );
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&rule]);
        let publisher =
            SnsPublisher::new(client, "arn:aws:sns:us-east-1:000000000000:events", fast())
                .emitting(emission);

        // When both are published
        let report = publisher
            .publish_batch(&[created.clone(), completed.clone()])
            .await;

        // Then three messages went out: the creation once, the completion as v1 and as v2
        let sent = sent.lock().unwrap().clone();
        let versions: Vec<&str> = sent
            .iter()
            .map(|(_, version, _)| version.as_str())
            .collect();
        assert_eq!(versions, ["v1", "v1", "v2"]);
        let v2 = EventEnvelope::from_json(&sent[2].2).unwrap();
        assert_eq!(v2.id, completed.id);
        assert_eq!(v2.wire_type(), crate::events::EventType::TaskCompletedV2);
        assert_eq!(v2.data, completed.data);
        assert!(sent[2].2.contains("\"cost_micro_usd\""), "{}", sent[2].2);
        // And each event is reported once
        assert_eq!(report.published, [created.id, completed.id]);
        assert!(report.failed.is_empty());
    }

    #[tokio::test]
    async fn when_one_version_of_an_event_fails_should_report_the_event_failed() {
        let emission = Emission::parse(
            "task.created.v1,task.started.v1,task.completed.v1,task.completed.v2,task.failed.v1",
        )
        .unwrap();
        let [_, _, completed] = crate::fixtures::Run::default().events();
        let v2 = entry_id(
            &completed
                .as_type(crate::events::EventType::TaskCompletedV2)
                .unwrap(),
        );
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let rule = batch_rule(sizes.clone(), move |_, id| (id == v2).then_some(true));
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&rule]);
        let publisher =
            SnsPublisher::new(client, "arn:aws:sns:us-east-1:000000000000:events", fast())
                .emitting(emission);

        let report = publisher
            .publish_batch(std::slice::from_ref(&completed))
            .await;

        // The event stays in the outbox: a copy of v1 later is skipped by its consumers.
        assert!(report.published.is_empty(), "{report:?}");
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].event_id, completed.id);
    }
}
