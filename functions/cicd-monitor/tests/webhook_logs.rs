//! The webhook URL may carry a credential in its path or query: when the webhook cannot be
//! reached or does not answer, every log line of the consumer names its host and no more.
//! A binary of its own, since it installs the process's global subscriber.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use cicd_monitor::{CicdMonitor, WebhookNotifier};
use shared::consumer::{Consumer, QueueError, Redelivery, RetryBackoff};
use shared::domain::TaskType;
use shared::fixtures::Run;
use shared::memory::MemoryRecords;
use shared::retry::Backoff;

const PATH_TOKEN: &str = "path-token-7d1f9c";
const QUERY_TOKEN: &str = "query-token-41b2e8";

/// Every log line written, in the format the functions log in.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A queue that keeps the delays and dead-letter reasons it was given.
#[derive(Default)]
struct Queue {
    said: Mutex<Vec<String>>,
}

#[async_trait]
impl Redelivery for Queue {
    async fn delay(&self, _: &SqsMessage, delay: Duration) -> Result<(), QueueError> {
        self.said.lock().unwrap().push(format!("{delay:?}"));
        Ok(())
    }

    async fn dead_letter(&self, _: &SqsMessage, _: &str, reason: &str) -> Result<(), QueueError> {
        self.said.lock().unwrap().push(reason.to_owned());
        Ok(())
    }
}

fn completed_feature() -> SqsEvent {
    let [_, _, completed] = Run {
        task_type: TaskType::Feature,
        ..Run::default()
    }
    .events();
    let mut message = SqsMessage::default();
    message.message_id = Some("m-1".into());
    message.receipt_handle = Some("r-1".into());
    message.body = Some(completed.to_json());
    message.event_source_arn = Some("arn:aws:sqs:us-east-1:000000000000:cicd".into());
    message.attributes = HashMap::from([("ApproximateReceiveCount".into(), "1".into())]);
    let mut batch = SqsEvent::default();
    batch.records = vec![message];
    batch
}

/// Runs one batch against the webhook at `port` (on `localhost`, its URL holding both
/// tokens); returns the answer and what the queue was told.
async fn deliver(port: u16) -> (SqsBatchResponse, Vec<String>) {
    let url = format!("http://localhost:{port}/hooks/{PATH_TOKEN}/builds?token={QUERY_TOKEN}");
    let backoff = Backoff {
        retries: 1,
        initial: Duration::from_millis(10),
        max: Duration::from_millis(10),
    };
    let notifier = WebhookNotifier::new(&url, Duration::from_millis(500), backoff).unwrap();
    let monitor = CicdMonitor::new(Arc::new(MemoryRecords::default()), Some(Arc::new(notifier)));
    let queue = Arc::new(Queue::default());
    let consumer = Consumer::new(Arc::new(monitor), queue.clone(), RetryBackoff::default());
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        consumer.process(completed_feature()),
    )
    .await
    .expect("the batch ends within the webhook's timeouts");
    let said = queue.said.lock().unwrap().clone();
    (response, said)
}

fn assert_host_only(logs: &str, said: &[String], cause: &str) {
    for line in logs.lines().chain(said.iter().map(String::as_str)) {
        assert!(
            !line.contains(PATH_TOKEN) && !line.contains(QUERY_TOKEN),
            "a line names the URL: {line}"
        );
    }
    let failure = logs
        .lines()
        .find(|line| line.contains("processing failed; the message will be retried"))
        .unwrap_or_else(|| panic!("no line says the message will be retried:\n{logs}"));
    assert!(
        failure.contains("the webhook at localhost") && failure.contains(cause),
        "the failure names neither the host nor the cause ({cause}): {failure}"
    );
    assert!(
        logs.lines()
            .any(|line| line.contains("webhook call failed; retrying")
                && line.contains("the webhook at localhost")),
        "no retry line names the host:\n{logs}"
    );
}

#[tokio::test]
async fn when_the_webhook_refuses_or_never_answers_should_log_its_host_but_never_its_url() {
    // Given every log line of every level, as JSON lines with their spans, captured
    let logs = Logs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("the only subscriber of this binary");

    // When the webhook's port refuses connections
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (response, said) = deliver(port).await;

    // Then the message is retried, and the lines name the host and the cause only
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_host_only(&logs.take(), &said, "refused");

    // When the webhook accepts the connection but never answers
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let (response, said) = deliver(port).await;
    held.abort();

    // Then the calls time out, and again only the host and the cause are named
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_host_only(&logs.take(), &said, "timed out");
}
