//! Counts each event once into the statistics.

use std::sync::Arc;

use async_trait::async_trait;
use shared::consumer::{ConsumerError, EventHandler};
use shared::events::EventEnvelope;
use tracing::info;

use crate::stats::DashboardStore;

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

    async fn handle(&self, event: &EventEnvelope) -> Result<(), ConsumerError> {
        let counted = self.store.apply(event).await?;
        info!(event.type = event.kind().name(), event.id = %event.id, counted, "dashboard updated");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use shared::domain::TaskType;
    use shared::fixtures::Run;

    use super::*;
    use crate::memory::MemoryDashboard;

    #[tokio::test]
    async fn when_a_lifecycle_is_delivered_twice_should_count_it_once() {
        // Given the events of one completed task
        let store = Arc::new(MemoryDashboard::default());
        let dashboard = Dashboard::new(store.clone());
        let events = Run {
            task_type: TaskType::Test,
            ..Run::default()
        }
        .events();

        // When every event arrives twice
        for event in events.iter().chain(events.iter()) {
            dashboard.handle(event).await.unwrap();
        }

        // Then each counts once
        let stats = store.stats().await.unwrap();
        assert_eq!(stats.tasks_total, 1);
        assert_eq!(stats.completed, 1);
        assert_eq!(stats.tokens_used_total, 100);
        assert_eq!(stats.by_type["Test"], 1);
        assert_eq!(stats.by_status["Completed"], 1);
        assert_eq!(stats.success_rate, Some(1.0));
    }
}
