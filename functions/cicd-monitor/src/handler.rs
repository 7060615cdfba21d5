//! Reacts to TaskCompleted of BugFix, Feature, Refactor and Test tasks: posts a build
//! request to the webhook, then records it, once per task. A request recorded means it
//! was done with, so a later delivery of the event changes nothing; a delivery that fails
//! before the record (or runs beside another) posts again, with the same
//! `Idempotency-Key`, for the webhook to recognise.

use std::sync::Arc;

use async_trait::async_trait;
use shared::consumer::{ConsumerError, EventHandler, Retry};
use shared::events::{EventEnvelope, TaskEventData};
use shared::metrics::Measure;
use shared::records::RecordStore;
use tracing::info;

use crate::webhook::BuildNotifier;
use crate::BuildRequest;

pub struct CicdMonitor {
    requests: Arc<dyn RecordStore<BuildRequest>>,
    notifier: Option<Arc<dyn BuildNotifier>>,
}

impl CicdMonitor {
    pub fn new(
        requests: Arc<dyn RecordStore<BuildRequest>>,
        notifier: Option<Arc<dyn BuildNotifier>>,
    ) -> Self {
        CicdMonitor { requests, notifier }
    }
}

#[async_trait]
impl EventHandler for CicdMonitor {
    fn name(&self) -> &'static str {
        "cicd-monitor"
    }

    async fn handle(&self, event: &EventEnvelope) -> Result<(), ConsumerError> {
        let TaskEventData::Completed(completed) = &event.data else {
            return Ok(());
        };
        if !completed.task_type.changes_code() {
            return Ok(());
        }
        let request = BuildRequest {
            task_id: completed.task_id,
            task_type: completed.task_type,
            requested_at: event.time,
            event_id: event.id,
        };
        if self.requests.get(request.task_id).await?.is_some() {
            info!(task.id = %request.task_id, "build request done with before; left as it is");
            Measure::DuplicateSkipped(self.name()).emit();
            return Ok(());
        }
        let posted = match &self.notifier {
            // A failure fails the message before anything is recorded, so the post is
            // retried with it (or, when the webhook refused it, dead-lettered at once).
            Some(notifier) => notifier.notify(&request).await.map_err(|err| {
                let reason = "posting the build request failed";
                match err.retry() {
                    Retry::Transient => ConsumerError::transient(reason),
                    Retry::Permanent => ConsumerError::permanent(reason),
                }
                .with_source(err)
            })?,
            None => false,
        };
        let new = self.requests.record(request.task_id, &request).await?;
        info!(task.id = %request.task_id, posted, new, "build request recorded");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use reqwest::StatusCode;
    use shared::domain::TaskType;
    use shared::fixtures::Run;
    use shared::memory::MemoryRecords;

    use super::*;
    use crate::WebhookError;

    /// A webhook that answers `failing` when set.
    #[derive(Default)]
    struct Notifications {
        sent: Mutex<Vec<BuildRequest>>,
        failing: Mutex<Option<StatusCode>>,
    }

    #[async_trait]
    impl BuildNotifier for Notifications {
        async fn notify(&self, request: &BuildRequest) -> Result<bool, WebhookError> {
            if let Some(status) = *self.failing.lock().unwrap() {
                return Err(WebhookError::Status {
                    host: "hooks.example.com".into(),
                    status,
                });
            }
            self.sent.lock().unwrap().push(request.clone());
            Ok(true)
        }
    }

    fn completed(task_type: TaskType) -> EventEnvelope {
        let [_, _, completed] = Run {
            task_type,
            ..Run::default()
        }
        .events();
        completed
    }

    #[tokio::test]
    async fn when_code_changing_tasks_complete_should_request_one_build_each() {
        let records = Arc::new(MemoryRecords::default());
        let notifications = Arc::new(Notifications::default());
        let monitor = CicdMonitor::new(records.clone(), Some(notifications.clone()));

        for task_type in [
            TaskType::BugFix,
            TaskType::Feature,
            TaskType::Refactor,
            TaskType::Test,
            TaskType::Documentation,
            TaskType::Deployment,
        ] {
            monitor.handle(&completed(task_type)).await.unwrap();
        }

        let mut types: Vec<_> = records
            .all()
            .iter()
            .map(|r| format!("{:?}", r.task_type))
            .collect();
        types.sort();
        assert_eq!(types, ["BugFix", "Feature", "Refactor", "Test"]);
        assert_eq!(notifications.sent.lock().unwrap().len(), 4);
    }

    #[tokio::test]
    async fn when_an_event_comes_again_should_post_and_record_its_request_once() {
        let records = Arc::new(MemoryRecords::default());
        let notifications = Arc::new(Notifications::default());
        let monitor = CicdMonitor::new(records.clone(), Some(notifications.clone()));
        let event = completed(TaskType::BugFix);

        for _ in 0..3 {
            monitor.handle(&event).await.unwrap();
        }

        assert_eq!(records.all().len(), 1);
        assert_eq!(notifications.sent.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn when_the_webhook_fails_should_fail_the_event_as_its_answer_says_and_post_on_a_retry() {
        for (status, retry) in [
            (StatusCode::SERVICE_UNAVAILABLE, Retry::Transient),
            (StatusCode::UNPROCESSABLE_ENTITY, Retry::Permanent),
        ] {
            // Given a webhook that fails
            let records = Arc::new(MemoryRecords::default());
            let webhook = Arc::new(Notifications {
                failing: Mutex::new(Some(status)),
                ..Notifications::default()
            });
            let monitor = CicdMonitor::new(records.clone(), Some(webhook.clone()));
            let event = completed(TaskType::Feature);

            // When the event is handled, then the failure says whether a retry can help,
            // and nothing is recorded as done
            let err = monitor.handle(&event).await.unwrap_err();
            assert_eq!(err.retry(), retry, "{status}");
            assert!(records.all().is_empty(), "{status}");

            // And once the webhook is well, the retry (or the redrive) posts and records it
            *webhook.failing.lock().unwrap() = None;
            monitor.handle(&event).await.unwrap();
            assert_eq!(webhook.sent.lock().unwrap().len(), 1, "{status}");
            assert_eq!(records.all().len(), 1, "{status}");
        }
    }
}
