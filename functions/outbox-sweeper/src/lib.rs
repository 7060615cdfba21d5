//! The outbox sweeper: publishes events whose outbox has waited longer than a set age,
//! which happens only when the process that committed them could not publish them.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use orchestration::adapters::{clients, DynamoTaskStore, SnsPublisher};
use orchestration::ports::{EventPublisher, Outbox, StoreError};
use orchestration::relay::{sweep, SweepReport};
use orchestration::retry::Backoff;
use orchestration::{config, time};

/// Default age an outbox must reach before the sweeper takes it over.
pub const DEFAULT_MIN_AGE_SECS: u64 = 30;
/// Most tasks one run relays; the rest wait for the next run.
pub const DEFAULT_MAX_TASKS: usize = 500;
/// How long one run starts new tasks: well within the function's 30 s timeout, even
/// when the last task's publish takes its full SDK timeout.
pub const RUN_BUDGET: Duration = Duration::from_secs(12);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweeperConfig {
    pub min_age: Duration,
    pub max_tasks: usize,
}

impl SweeperConfig {
    /// From `OUTBOX_MIN_AGE_SECS` and `OUTBOX_MAX_TASKS`.
    pub fn from_env() -> Result<Self, config::ConfigError> {
        Ok(SweeperConfig {
            min_age: Duration::from_secs(config::parsed_or(
                "OUTBOX_MIN_AGE_SECS",
                DEFAULT_MIN_AGE_SECS,
            )?),
            max_tasks: config::parsed_or("OUTBOX_MAX_TASKS", DEFAULT_MAX_TASKS)?,
        })
    }
}

#[derive(Clone)]
pub struct Sweeper {
    outbox: Arc<dyn Outbox>,
    publisher: Arc<dyn EventPublisher>,
    config: SweeperConfig,
}

impl Sweeper {
    pub fn new(
        outbox: Arc<dyn Outbox>,
        publisher: Arc<dyn EventPublisher>,
        config: SweeperConfig,
    ) -> Self {
        Sweeper {
            outbox,
            publisher,
            config,
        }
    }

    /// Wires the sweeper over AWS from `TASKS_TABLE`, `EVENTS_TOPIC_ARN` and `SweeperConfig`'s variables.
    pub fn from_env(aws: &SdkConfig) -> Result<Self, config::ConfigError> {
        let table = config::required("TASKS_TABLE")?;
        let topic_arn = config::required("EVENTS_TOPIC_ARN")?;
        orchestration::metrics::init_from_env();
        let backoff = Backoff::default();
        Ok(Sweeper::new(
            Arc::new(DynamoTaskStore::new(clients::dynamodb(aws), table)),
            Arc::new(SnsPublisher::new(
                clients::sns(aws, &backoff),
                topic_arn,
                backoff,
            )),
            SweeperConfig::from_env()?,
        ))
    }

    /// One pass over every outbox older than the configured age.
    pub async fn run_once(&self) -> Result<SweepReport, StoreError> {
        let age = chrono::Duration::from_std(self.config.min_age).unwrap_or(chrono::Duration::MAX);
        let cutoff = time::now()
            .checked_sub_signed(age)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        sweep(
            self.outbox.as_ref(),
            self.publisher.as_ref(),
            cutoff,
            self.config.max_tasks,
            std::time::Instant::now() + RUN_BUDGET,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use orchestration::memory::{MemoryStore, RecordingPublisher};
    use orchestration::service::{Caller, TaskService};
    use uuid::Uuid;

    use super::*;

    /// A task whose creation event could not be published, and a publisher that works again.
    async fn unpublished_task() -> (Arc<MemoryStore>, Arc<RecordingPublisher>, Uuid) {
        let store = Arc::new(MemoryStore::new());
        let publisher = Arc::new(RecordingPublisher::new());
        publisher.set_failing(true);
        let service = TaskService::new(store.clone(), store.clone(), publisher.clone());
        let caller = Caller {
            user_id: "user-1".into(),
            traceparent: None,
        };
        let task = service
            .create(&caller, "Title".into(), "Body".into())
            .await
            .unwrap();
        publisher.set_failing(false);
        (store, publisher, task.id)
    }

    fn sweeper(
        store: &Arc<MemoryStore>,
        publisher: &Arc<RecordingPublisher>,
        min_age: Duration,
    ) -> Sweeper {
        let config = SweeperConfig {
            min_age,
            max_tasks: 10,
        };
        Sweeper::new(store.clone(), publisher.clone(), config)
    }

    #[tokio::test]
    async fn when_publishing_failed_should_deliver_on_the_next_sweep_and_only_once() {
        // Given
        let (store, publisher, task_id) = unpublished_task().await;
        assert_eq!(store.outbox(task_id).len(), 1);

        // When the sweeper runs twice
        let sweeper = sweeper(&store, &publisher, Duration::ZERO);
        let first = sweeper.run_once().await.unwrap();
        let second = sweeper.run_once().await.unwrap();

        // Then the event is published exactly once and the outbox is empty
        assert_eq!(first.published, 1);
        assert_eq!(second.published, 0);
        assert_eq!(publisher.published().len(), 1);
        assert!(store.outbox(task_id).is_empty());
    }

    #[tokio::test]
    async fn when_outbox_is_younger_than_the_age_should_leave_it() {
        let (store, publisher, task_id) = unpublished_task().await;

        let report = sweeper(&store, &publisher, Duration::from_secs(3600))
            .run_once()
            .await
            .unwrap();

        assert_eq!(report.tasks, 0);
        assert_eq!(store.outbox(task_id).len(), 1);
    }
}
