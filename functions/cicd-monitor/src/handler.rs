//! Reacts to TaskCompleted of BugFix, Feature, Refactor and Test tasks.

use std::sync::Arc;

use async_trait::async_trait;
use shared::consumer::{ConsumerError, EventHandler, Retry};
use shared::events::{EventEnvelope, TaskEventData};
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
        let new = self.requests.record(request.task_id, &request).await?;
        info!(task.id = %request.task_id, new, "build request recorded");
        if let Some(notifier) = &self.notifier {
            // A failure fails the message, so the post is retried with it (or, when the
            // webhook refused it, dead-lettered at once).
            notifier.notify(&request).await.map_err(|err| {
                let reason = "posting the build request failed";
                match err.retry() {
                    Retry::Transient => ConsumerError::transient(reason),
                    Retry::Permanent => ConsumerError::permanent(reason),
                }
                .with_source(err)
            })?;
            info!(task.id = %request.task_id, "build request posted to the webhook");
        }
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
        failing: Option<StatusCode>,
    }

    #[async_trait]
    impl BuildNotifier for Notifications {
        async fn notify(&self, request: &BuildRequest) -> Result<(), WebhookError> {
            if let Some(status) = self.failing {
                return Err(WebhookError::Status {
                    host: "hooks.example.com".into(),
                    status,
                });
            }
            self.sent.lock().unwrap().push(request.clone());
            Ok(())
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
    async fn when_the_webhook_fails_should_fail_the_event_as_its_answer_says_but_keep_the_record() {
        for (status, retry) in [
            (StatusCode::SERVICE_UNAVAILABLE, Retry::Transient),
            (StatusCode::UNPROCESSABLE_ENTITY, Retry::Permanent),
        ] {
            let records = Arc::new(MemoryRecords::default());
            let failing = Arc::new(Notifications {
                failing: Some(status),
                ..Notifications::default()
            });
            let monitor = CicdMonitor::new(records.clone(), Some(failing));

            let err = monitor
                .handle(&completed(TaskType::Feature))
                .await
                .unwrap_err();

            assert_eq!(err.retry(), retry, "{status}");
            assert_eq!(records.all().len(), 1);
        }
    }
}
