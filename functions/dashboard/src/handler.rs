//! Counts each event once into the statistics.

use std::sync::Arc;

use async_trait::async_trait;
use shared::consumer::{ConsumerError, EventHandler};
use shared::events::EventEnvelope;
use shared::metrics::Measure;
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
        self.handle_batch(&[(event, "")])
            .await
            .pop()
            .unwrap_or(Ok(()))
    }

    /// A batch's events are counted together, in one transaction: each counts once by
    /// itself.
    fn applies_batches(&self) -> bool {
        true
    }

    async fn handle_batch(
        &self,
        events: &[(&EventEnvelope, &str)],
    ) -> Vec<Result<(), ConsumerError>> {
        let envelopes: Vec<&EventEnvelope> = events.iter().map(|(event, _)| *event).collect();
        match self.store.apply_batch(&envelopes).await {
            Ok(counted) => envelopes
                .iter()
                .zip(counted)
                .map(|(event, counted)| {
                    info!(event.type = event.kind().name(), event.id = %event.id, counted, "dashboard updated");
                    if !counted {
                        Measure::DuplicateSkipped(self.name()).emit();
                    }
                    Ok(())
                })
                .collect(),
            // Nothing was counted: every event of the batch is tried again.
            Err(err) => envelopes
                .iter()
                .map(|_| Err(ConsumerError::from(err.clone())))
                .collect(),
        }
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
