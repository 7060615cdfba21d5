//! The dashboard consumer: counts every lifecycle event into the live statistics that
//! `GET /dashboard/stats` serves.

use std::sync::Arc;

use async_trait::async_trait;
use aws_config::SdkConfig;
use orchestration::adapters::{clients, DynamoDashboardStore};
use orchestration::config::{self, ConfigError};
use orchestration::consumer::{self as toolkit, Consumer};
use orchestration::consumer::{EventHandler, HandlerError};
use orchestration::dashboard::DashboardStore;
use orchestration::events::EventEnvelope;
use tracing::info;

/// Wires the consumer over AWS from `DASHBOARD_TABLE` and the toolkit's variables.
pub fn consumer(aws: &SdkConfig) -> Result<Consumer, ConfigError> {
    let table = config::required("DASHBOARD_TABLE")?;
    let store = DynamoDashboardStore::new(clients::dynamodb(aws), table);
    toolkit::from_env(aws, Arc::new(Dashboard::new(Arc::new(store))))
}

pub struct Dashboard {
    store: Arc<dyn DashboardStore>,
}

impl Dashboard {
    pub fn new(store: Arc<dyn DashboardStore>) -> Self {
        Dashboard { store }
    }
}

#[async_trait]
impl EventHandler for Dashboard {
    fn name(&self) -> &'static str {
        "dashboard"
    }

    async fn handle(&self, event: &EventEnvelope) -> Result<(), HandlerError> {
        let counted = self.store.apply(event).await?;
        info!(event.type = event.kind().name(), event.id = %event.id, counted, "dashboard updated");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use orchestration::domain::{
        ExecutionStrategy, NewTask, Task, TaskComplexity, TaskType, Usage,
    };
    use orchestration::memory::MemoryDashboard;
    use orchestration::time;

    use super::*;

    #[tokio::test]
    async fn when_a_lifecycle_is_delivered_twice_should_count_it_once() {
        // Given the events of one completed task
        let store = Arc::new(MemoryDashboard::default());
        let dashboard = Dashboard::new(store.clone());
        let input = NewTask {
            user_id: "u".into(),
            title: "t".into(),
            description: String::new(),
        };
        let created = Task::create(input, time::now()).unwrap();
        let classified = created
            .task
            .classify(TaskType::Test, TaskComplexity::Simple, time::now())
            .unwrap();
        let started = classified
            .task
            .start(ExecutionStrategy::SingleShot, time::now())
            .unwrap();
        let usage = Usage {
            tokens_used: 10,
            cost_usd: 0.01,
        };
        let completed = started.task.complete(usage, time::now()).unwrap();
        let events = [
            created.event.unwrap(),
            started.event.unwrap(),
            completed.event.unwrap(),
        ];

        // When every event arrives twice
        for event in events.iter().chain(events.iter()) {
            dashboard.handle(event).await.unwrap();
        }

        // Then each counts once
        let stats = store.stats().await.unwrap();
        assert_eq!(stats.tasks_total, 1);
        assert_eq!(stats.completed, 1);
        assert_eq!(stats.tokens_used_total, 10);
        assert_eq!(stats.by_type["Test"], 1);
        assert_eq!(stats.by_status["Completed"], 1);
        assert_eq!(stats.success_rate, Some(1.0));
    }
}
