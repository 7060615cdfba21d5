//! Reacts to TaskCompleted of BugFix, Feature, Refactor and Test tasks.

use std::sync::Arc;

use async_trait::async_trait;
use orchestration::consumer::{EventHandler, HandlerError};
use orchestration::events::{EventEnvelope, TaskEventData};
use orchestration::records::{BuildRequest, RecordStore};
use tracing::info;

use crate::webhook::BuildNotifier;

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

    async fn handle(&self, event: &EventEnvelope) -> Result<(), HandlerError> {
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
            // A failure fails the message, so the post is retried with it.
            notifier.notify(&request).await.map_err(HandlerError)?;
            info!(task.id = %request.task_id, "build request posted to the webhook");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use orchestration::domain::{
        ExecutionStrategy, NewTask, Task, TaskComplexity, TaskType, Usage,
    };
    use orchestration::memory::MemoryRecords;
    use orchestration::time;

    use super::*;

    #[derive(Default)]
    struct Notifications {
        sent: Mutex<Vec<BuildRequest>>,
        failing: bool,
    }

    #[async_trait]
    impl BuildNotifier for Notifications {
        async fn notify(&self, request: &BuildRequest) -> Result<(), String> {
            if self.failing {
                return Err("webhook answered 503".into());
            }
            self.sent.lock().unwrap().push(request.clone());
            Ok(())
        }
    }

    fn completed(task_type: TaskType) -> EventEnvelope {
        let input = NewTask {
            user_id: "u".into(),
            title: "t".into(),
            description: String::new(),
        };
        let task = Task::create(input, time::now()).unwrap().task;
        let task = task
            .classify(task_type, TaskComplexity::Simple, time::now())
            .unwrap()
            .task;
        let task = task
            .start(ExecutionStrategy::SingleShot, time::now())
            .unwrap()
            .task;
        let usage = Usage {
            tokens_used: 1,
            cost_usd: 0.0,
        };
        task.complete(usage, time::now()).unwrap().event.unwrap()
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
    async fn when_the_webhook_fails_should_fail_the_event_but_keep_the_record() {
        let records = Arc::new(MemoryRecords::default());
        let failing = Arc::new(Notifications {
            failing: true,
            ..Notifications::default()
        });
        let monitor = CicdMonitor::new(records.clone(), Some(failing));

        let result = monitor.handle(&completed(TaskType::Feature)).await;

        assert_eq!(
            result.unwrap_err(),
            HandlerError("webhook answered 503".into())
        );
        assert_eq!(records.all().len(), 1);
    }
}
