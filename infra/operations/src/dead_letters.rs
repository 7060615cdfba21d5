//! Dead letters: listed, redriven to their consumer's queue, or discarded.
//!
//! Every operation scans the dead-letter queue the same way: it receives its messages ten
//! at a time, hiding each one it received for as long as the operation may take (so none is
//! seen twice), acts on those its filter admits, and makes every other one visible again at
//! the end, whatever happened. A redrive sends a dead letter to its consumer's queue (its
//! body and message attributes, without the two `dead_letter_*` ones) and deletes it from
//! the DLQ only once sent; a run stopped between the two leaves a copy in the DLQ, which a
//! later redrive delivers again and the consumer's inbox skips. Nothing is deleted without
//! being sent first but by an operator's explicit discard, which is logged.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::adapters::{CONSUMER_ATTRIBUTE, REASON_ATTRIBUTE};
use tracing::{info, warn};

use crate::letter::DeadLetter;
use crate::{Filter, OpsError, Queues, MAX_RECEIVES};

/// How long a listing hides what it received.
const LIST_HOLD: Duration = Duration::from_secs(30);
/// SQS hides a message for at most 12 hours.
const MAX_HOLD: Duration = Duration::from_secs(43_200);
/// How long a receive waits for a message before the scan counts the queue as read.
const RECEIVE_WAIT_SECS: i32 = 1;

impl DeadLetter {
    fn of(message: &Message, queues: &Queues, now: DateTime<Utc>, with_body: bool) -> Self {
        let attribute = |name: &str| {
            message
                .message_attributes()
                .and_then(|a| a.get(name))
                .and_then(|v| v.string_value())
                .map(str::to_owned)
        };
        let system = |name: MessageSystemAttributeName| {
            message
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<i64>().ok())
        };
        let body = message.body().unwrap_or_default();
        let event: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let field = |name: &str| event.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let sent_at = system(MessageSystemAttributeName::SentTimestamp)
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or(now);
        DeadLetter {
            message_id: message.message_id().unwrap_or_default().to_owned(),
            consumer: attribute(CONSUMER_ATTRIBUTE)
                .unwrap_or_else(|| queues.consumer.name().to_owned()),
            event_type: attribute("event_type"),
            event_version: attribute("event_version"),
            cloud_event_type: field("type"),
            event_id: field("id"),
            task_id: field("subject"),
            reason: attribute(REASON_ATTRIBUTE).unwrap_or_else(|| MAX_RECEIVES.to_owned()),
            receive_count: system(MessageSystemAttributeName::ApproximateReceiveCount)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            sent_at,
            age_secs: (now - sent_at).num_seconds().max(0).unsigned_abs(),
            body: with_body.then(|| body.to_owned()),
        }
    }
}

/// A listing: the dead letters `filter` admits, of the first `max` in the queue.
#[derive(Debug, Clone)]
pub struct Scan {
    pub filter: Filter,
    pub max: usize,
    pub with_body: bool,
}

/// What a listing found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Listing {
    /// Dead letters read from the queue.
    pub scanned: usize,
    /// Stopped at `max` with more perhaps left.
    pub truncated: bool,
    /// Those the filter admits, oldest first.
    pub dead_letters: Vec<DeadLetter>,
}

/// A redrive of the dead letters `filter` admits, `rate` a second at most.
#[derive(Debug, Clone)]
pub struct Redrive {
    pub filter: Filter,
    pub max: usize,
    pub rate: u32,
    /// Count what would move; move nothing.
    pub dry_run: bool,
}

/// What a redrive did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RedriveOutcome {
    pub scanned: usize,
    pub truncated: bool,
    /// Admitted by the filter.
    pub matched: usize,
    /// Sent to the consumer's queue and deleted from the DLQ (0 on a dry run).
    pub moved: usize,
    /// Admitted but not sent (left in the DLQ), or sent but not deleted (a copy left).
    pub failed: usize,
    pub dry_run: bool,
}

/// A dead letter an operator discarded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Discarded {
    #[serde(flatten)]
    pub dead_letter: DeadLetter,
    pub discarded_by: String,
    pub discarded_at: DateTime<Utc>,
}

impl Redrive {
    pub fn check(&self) -> Result<Duration, OpsError> {
        self.filter.check()?;
        check_max(self.max)?;
        if self.rate == 0 {
            return Err(OpsError::usage("rate: must be at least 1 a second"));
        }
        // Everything scanned stays hidden until the run ends: long enough for `max` sent
        // at `rate`, and the scan itself.
        let hold =
            LIST_HOLD + Duration::from_secs((self.max as u64).div_ceil(u64::from(self.rate)));
        if hold > MAX_HOLD {
            return Err(OpsError::usage(format!(
                "rate: {} a second would take over 12 hours for max {}; raise it or lower max",
                self.rate, self.max
            )));
        }
        Ok(hold)
    }
}

fn check_max(max: usize) -> Result<(), OpsError> {
    if max == 0 {
        return Err(OpsError::usage("max: must be at least 1"));
    }
    Ok(())
}

/// Receives a dead-letter queue's messages, each hidden for `hold`, and makes visible
/// again at the end those it was told to keep.
struct Scanner<'a> {
    sqs: &'a aws_sdk_sqs::Client,
    queues: &'a Queues,
    hold: Duration,
    max: usize,
    scanned: usize,
    /// Receipts of messages received and still in the queue, to make visible again.
    kept: Vec<String>,
    exhausted: bool,
}

impl<'a> Scanner<'a> {
    fn new(sqs: &'a aws_sdk_sqs::Client, queues: &'a Queues, hold: Duration, max: usize) -> Self {
        Scanner {
            sqs,
            queues,
            hold,
            max,
            scanned: 0,
            kept: Vec::new(),
            exhausted: false,
        }
    }

    /// The next messages, none once the queue is read or `max` reached.
    async fn page(&mut self) -> Result<Vec<Message>, OpsError> {
        let wanted = self.max.saturating_sub(self.scanned).min(10);
        if wanted == 0 || self.exhausted {
            return Ok(Vec::new());
        }
        let output = self
            .sqs
            .receive_message()
            .queue_url(&self.queues.dlq_url)
            .max_number_of_messages(wanted as i32)
            .visibility_timeout(self.hold.as_secs() as i32)
            .wait_time_seconds(RECEIVE_WAIT_SECS)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|err| OpsError::aws(format!("receiving from {}", self.queues.dlq_url), err))?;
        let messages = output.messages.unwrap_or_default();
        self.exhausted = messages.is_empty();
        self.scanned += messages.len();
        Ok(messages)
    }

    fn truncated(&self) -> bool {
        !self.exhausted && self.scanned >= self.max
    }

    fn keep(&mut self, message: &Message) {
        if let Some(receipt) = message.receipt_handle() {
            self.kept.push(receipt.to_owned());
        }
    }

    /// Makes every kept message visible again.
    async fn release(&mut self) -> Result<(), OpsError> {
        let kept = std::mem::take(&mut self.kept);
        for chunk in kept.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, receipt)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(format!("r{i}"))
                        .receipt_handle(receipt)
                        .visibility_timeout(0)
                        .build()
                        .expect("id and receipt are set")
                })
                .collect();
            let output = self
                .sqs
                .change_message_visibility_batch()
                .queue_url(&self.queues.dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|err| {
                    OpsError::aws(
                        format!("making dead letters of {} visible", self.queues.dlq_url),
                        err,
                    )
                })?;
            if !output.failed().is_empty() {
                // They come back by themselves once their hold ends.
                warn!(dlq = %self.queues.dlq_url, failed = output.failed().len(),
                    "some dead letters stay hidden until their hold ends");
            }
        }
        Ok(())
    }
}

/// Lists the dead letters `scan` admits; leaves every one in the queue.
pub async fn list(
    sqs: &aws_sdk_sqs::Client,
    queues: &Queues,
    scan: &Scan,
) -> Result<Listing, OpsError> {
    scan.filter.check()?;
    check_max(scan.max)?;
    let mut scanner = Scanner::new(sqs, queues, LIST_HOLD, scan.max);
    let now = Utc::now();
    let mut dead_letters = Vec::new();
    let result = async {
        loop {
            let page = scanner.page().await?;
            if page.is_empty() {
                return Ok::<_, OpsError>(());
            }
            for message in &page {
                scanner.keep(message);
                let letter = DeadLetter::of(message, queues, now, scan.with_body);
                if scan.filter.admits(&letter) {
                    dead_letters.push(letter);
                }
            }
        }
    }
    .await;
    let released = scanner.release().await;
    result?;
    released?;
    dead_letters.sort_by_key(|letter| letter.sent_at);
    Ok(Listing {
        scanned: scanner.scanned,
        truncated: scanner.truncated(),
        dead_letters,
    })
}

/// Spaces sends `rate` messages a second at most.
struct Pace {
    per_message: Duration,
    next: tokio::time::Instant,
}

impl Pace {
    fn new(rate: u32) -> Self {
        Pace {
            per_message: Duration::from_secs(1) / rate,
            next: tokio::time::Instant::now(),
        }
    }

    async fn take(&mut self, messages: usize) {
        tokio::time::sleep_until(self.next).await;
        let now = tokio::time::Instant::now();
        self.next = self.next.max(now) + self.per_message * messages as u32;
    }
}

/// Sends the dead letters `redrive` admits back to their consumer's queue and deletes
/// each one sent from the DLQ; on a dry run counts them and moves nothing.
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    queues: &Queues,
    redrive: &Redrive,
) -> Result<RedriveOutcome, OpsError> {
    let hold = redrive.check()?;
    let mut scanner = Scanner::new(sqs, queues, hold, redrive.max);
    let mut pace = Pace::new(redrive.rate);
    let now = Utc::now();
    let mut outcome = RedriveOutcome {
        dry_run: redrive.dry_run,
        ..RedriveOutcome::default()
    };
    let result = async {
        loop {
            let page = scanner.page().await?;
            if page.is_empty() {
                return Ok::<_, OpsError>(());
            }
            let mut admitted = Vec::new();
            for message in page {
                let letter = DeadLetter::of(&message, queues, now, false);
                if redrive.filter.admits(&letter) {
                    outcome.matched += 1;
                    if !redrive.dry_run {
                        admitted.push(message);
                        continue;
                    }
                }
                scanner.keep(&message);
            }
            if admitted.is_empty() {
                continue;
            }
            pace.take(admitted.len()).await;
            let (sent, unsent) = send(sqs, queues, &admitted).await?;
            for message in &unsent {
                scanner.keep(message);
            }
            outcome.failed += unsent.len();
            let undeleted = delete(sqs, queues, &sent).await?;
            outcome.failed += undeleted;
            outcome.moved += sent.len() - undeleted;
        }
    }
    .await;
    let released = scanner.release().await;
    result?;
    released?;
    outcome.scanned = scanner.scanned;
    outcome.truncated = scanner.truncated();
    info!(consumer = %queues.consumer, scanned = outcome.scanned, matched = outcome.matched,
        moved = outcome.moved, failed = outcome.failed, dry_run = outcome.dry_run, "dead letters redriven");
    Ok(outcome)
}

/// The attributes a dead letter goes back with: its own, without the dead-letter ones.
fn original_attributes(message: &Message) -> Option<HashMap<String, MessageAttributeValue>> {
    let attributes: HashMap<String, MessageAttributeValue> = message
        .message_attributes()
        .into_iter()
        .flatten()
        .filter(|(name, _)| *name != REASON_ATTRIBUTE && *name != CONSUMER_ATTRIBUTE)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    Some(attributes).filter(|a| !a.is_empty())
}

/// Sends up to ten messages to the consumer's queue; the ones sent, and the ones not.
async fn send(
    sqs: &aws_sdk_sqs::Client,
    queues: &Queues,
    messages: &[Message],
) -> Result<(Vec<Message>, Vec<Message>), OpsError> {
    let entries = messages
        .iter()
        .enumerate()
        .map(|(i, message)| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .message_body(message.body().unwrap_or_default())
                .set_message_attributes(original_attributes(message))
                .build()
                .expect("id and body are set")
        })
        .collect();
    let output = sqs
        .send_message_batch()
        .queue_url(&queues.queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|err| OpsError::aws(format!("sending to {}", queues.queue_url), err))?;
    let failed: Vec<usize> = output
        .failed()
        .iter()
        .filter_map(|entry| entry.id().strip_prefix('m')?.parse().ok())
        .collect();
    for entry in output.failed() {
        warn!(consumer = %queues.consumer, code = entry.code(), message = entry.message(),
            "a dead letter could not be sent back; it stays in the DLQ");
    }
    let (mut sent, mut unsent) = (Vec::new(), Vec::new());
    for (i, message) in messages.iter().enumerate() {
        if failed.contains(&i) {
            unsent.push(message.clone());
        } else {
            sent.push(message.clone());
        }
    }
    Ok((sent, unsent))
}

/// Deletes up to ten messages from the DLQ; how many it could not.
async fn delete(
    sqs: &aws_sdk_sqs::Client,
    queues: &Queues,
    messages: &[Message],
) -> Result<usize, OpsError> {
    if messages.is_empty() {
        return Ok(0);
    }
    let entries = messages
        .iter()
        .enumerate()
        .map(|(i, message)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(format!("d{i}"))
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .build()
                .expect("id and receipt are set")
        })
        .collect();
    let output = sqs
        .delete_message_batch()
        .queue_url(&queues.dlq_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|err| OpsError::aws(format!("deleting from {}", queues.dlq_url), err))?;
    for entry in output.failed() {
        warn!(consumer = %queues.consumer, code = entry.code(), message = entry.message(),
            "a dead letter was sent back but stays in the DLQ; its consumer will skip the copy");
    }
    Ok(output.failed().len())
}

/// Deletes the dead letters `filter` admits, for good: only one message by its id, unless
/// `all_matching` says every one the filter admits. Each is logged with `by`, who asked.
pub async fn discard(
    sqs: &aws_sdk_sqs::Client,
    queues: &Queues,
    filter: &Filter,
    all_matching: bool,
    by: &str,
) -> Result<Vec<Discarded>, OpsError> {
    filter.check()?;
    if by.trim().is_empty() {
        return Err(OpsError::usage("by: name who discards the dead letters"));
    }
    if filter.message_id.is_none() && !all_matching {
        return Err(OpsError::usage(
            "message_id: name the dead letter to discard (or ask for every one the filter admits)",
        ));
    }
    let max = 1_000;
    let mut scanner = Scanner::new(sqs, queues, LIST_HOLD, max);
    let now = Utc::now();
    let mut discarded = Vec::new();
    let result = async {
        loop {
            let page = scanner.page().await?;
            if page.is_empty() {
                return Ok::<_, OpsError>(());
            }
            let mut doomed = Vec::new();
            for message in page {
                let letter = DeadLetter::of(&message, queues, now, false);
                if filter.admits(&letter) {
                    doomed.push((message, letter));
                } else {
                    scanner.keep(&message);
                }
            }
            for (message, letter) in doomed {
                sqs.delete_message()
                    .queue_url(&queues.dlq_url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .map_err(|err| {
                        OpsError::aws(format!("deleting from {}", queues.dlq_url), err)
                    })?;
                warn!(
                    target: "audit",
                    consumer = %queues.consumer,
                    message.id = letter.message_id,
                    event.id = letter.event_id.as_deref().unwrap_or(""),
                    event.type = letter.event_type.as_deref().unwrap_or(""),
                    task.id = letter.task_id.as_deref().unwrap_or(""),
                    reason = letter.reason,
                    by,
                    "dead letter discarded"
                );
                discarded.push(Discarded {
                    dead_letter: letter,
                    discarded_by: by.to_owned(),
                    discarded_at: Utc::now(),
                });
            }
        }
    }
    .await;
    let released = scanner.release().await;
    result?;
    released?;
    Ok(discarded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Consumer;

    fn queues() -> Queues {
        Queues {
            consumer: Consumer::Dashboard,
            queue_url: "q".into(),
            dlq_url: "dlq".into(),
        }
    }

    fn string(value: &str) -> MessageAttributeValue {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .unwrap()
    }

    #[test]
    fn when_a_dead_letter_is_read_should_show_its_event_task_reason_and_age_without_the_body() {
        // Given a dead letter the dashboard sent, ten minutes ago
        let now = Utc::now();
        let sent = now - chrono::Duration::minutes(10);
        let message = Message::builder()
            .message_id("m-1")
            .body(r#"{"type":"task.created.v1","id":"e-1","subject":"t-1"}"#)
            .message_attributes("event_type", string("TaskCreated"))
            .message_attributes("event_version", string("v1"))
            .message_attributes(REASON_ATTRIBUTE, string("refused"))
            .attributes(
                MessageSystemAttributeName::SentTimestamp,
                sent.timestamp_millis().to_string(),
            )
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .build();

        // When it is read without its body
        let letter = DeadLetter::of(&message, &queues(), now, false);

        // Then it names its event, task, reason, receives and age, and holds no body
        assert_eq!(letter.event_type.as_deref(), Some("TaskCreated"));
        assert_eq!(letter.cloud_event_type.as_deref(), Some("task.created.v1"));
        assert_eq!(letter.task_id.as_deref(), Some("t-1"));
        assert_eq!(letter.event_id.as_deref(), Some("e-1"));
        assert_eq!(letter.reason, "refused");
        assert_eq!(letter.consumer, "dashboard");
        assert_eq!(letter.receive_count, 2);
        assert_eq!(letter.age_secs, 600);
        assert_eq!(letter.body, None);
        assert!(!serde_json::to_string(&letter).unwrap().contains("\"body\""));
    }

    #[test]
    fn when_sqs_moved_a_message_after_its_receives_should_say_so_and_send_back_its_own_attributes()
    {
        // Given a message with no reason of ours, and one the toolkit dead-lettered
        let moved = Message::builder()
            .body("{}")
            .message_attributes("event_type", string("TaskStarted"))
            .build();
        let refused = Message::builder()
            .body("{}")
            .message_attributes("event_type", string("TaskStarted"))
            .message_attributes(REASON_ATTRIBUTE, string("refused"))
            .message_attributes(CONSUMER_ATTRIBUTE, string("dashboard"))
            .build();

        // When they are read and made ready to send back
        let letter = DeadLetter::of(&moved, &queues(), Utc::now(), true);
        let attributes = original_attributes(&refused).unwrap();

        // Then the first's reason is the receives, and the second goes back as it came
        assert_eq!(letter.reason, MAX_RECEIVES);
        assert_eq!(letter.body.as_deref(), Some("{}"));
        assert_eq!(
            attributes.keys().collect::<Vec<_>>(),
            vec!["event_type"],
            "{attributes:?}"
        );
    }

    #[test]
    fn when_a_redrive_is_asked_for_should_refuse_bad_input_by_field_and_hold_long_enough() {
        // Given redrives at no rate, of nothing, and of 1000 at 10 a second
        let redrive = |max: usize, rate: u32| Redrive {
            filter: Filter::default(),
            max,
            rate,
            dry_run: false,
        };
        // When each is checked
        // Then the bad ones name their field, and the good one holds its scan 30 s + 100 s
        assert!(redrive(10, 0)
            .check()
            .unwrap_err()
            .to_string()
            .starts_with("rate: "));
        assert!(redrive(0, 10)
            .check()
            .unwrap_err()
            .to_string()
            .starts_with("max: "));
        assert!(redrive(1_000_000, 1)
            .check()
            .unwrap_err()
            .to_string()
            .starts_with("rate: "));
        assert_eq!(
            redrive(1_000, 10).check().unwrap(),
            Duration::from_secs(130)
        );
    }

    #[tokio::test]
    async fn when_sends_are_paced_should_keep_to_the_rate() {
        // Given a pace of 100 a second
        let mut pace = Pace::new(100);
        let start = std::time::Instant::now();

        // When three batches of ten are taken
        for _ in 0..3 {
            pace.take(10).await;
        }

        // Then the first went at once and each next one 100 ms after the last
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(200) && elapsed < Duration::from_millis(1_000),
            "{elapsed:?}"
        );
    }
}
