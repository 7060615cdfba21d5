//! The outbox sweeper: publishes events whose outbox has waited longer than a set age,
//! which happens only when the process that committed them could not publish them.

use std::sync::Arc;
use std::time::Duration;

use shared::adapters::clients::SdkConfig;
use shared::adapters::{clients, DynamoTaskStore, SnsPublisher};
use shared::events::{Emission, EMITTED_EVENT_TYPES};
use shared::ports::{EventPublisher, Outbox, StoreError};
use shared::relay::{sweep, SweepLimits, SweepReport};
use shared::retry::Backoff;
use shared::settings::{
    outbox_shards, ConfigError, Settings, Variables, OUTBOX_SHARDS, STACK_NAME,
};
use shared::time;

/// Default age an outbox must reach before the sweeper takes it over.
pub const DEFAULT_MIN_AGE_SECS: u64 = 30;
/// Most tasks one run relays; the rest wait for the next run.
pub const DEFAULT_MAX_TASKS: usize = 500;
/// How long one run may take, retries included: well within the function's 30 s timeout.
pub const RUN_BUDGET: Duration = Duration::from_secs(20);
/// Outboxes relayed at once.
pub const CONCURRENCY: usize = 16;
/// Failed relays after which an outbox is parked (each run tries it once).
pub const MAX_FAILURES: u32 = 5;

const TASKS_TABLE: &str = "TASKS_TABLE";
const EVENTS_TOPIC_ARN: &str = "EVENTS_TOPIC_ARN";
const OUTBOX_MIN_AGE_SECS: &str = "OUTBOX_MIN_AGE_SECS";
const OUTBOX_MAX_TASKS: &str = "OUTBOX_MAX_TASKS";

/// What one run takes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweeperConfig {
    pub min_age: Duration,
    pub max_tasks: usize,
}

/// The sweeper's settings: `TASKS_TABLE`, `EVENTS_TOPIC_ARN`, `OUTBOX_SHARDS` (default
/// 32), `OUTBOX_MIN_AGE_SECS` (default 30) and `OUTBOX_MAX_TASKS` (default 500, at least 1).
#[derive(Debug, Clone, PartialEq)]
pub struct SweeperSettings {
    pub tasks_table: String,
    pub topic_arn: String,
    pub outbox_shards: u32,
    /// The types events are published as (`EMITTED_EVENT_TYPES`).
    pub emission: Emission,
    pub config: SweeperConfig,
    /// Retries of publishing; not a variable.
    pub backoff: Backoff,
    pub stack: Option<String>,
}

impl Settings for SweeperSettings {
    fn variables() -> Vec<&'static str> {
        vec![
            TASKS_TABLE,
            EVENTS_TOPIC_ARN,
            OUTBOX_SHARDS,
            EMITTED_EVENT_TYPES,
            OUTBOX_MIN_AGE_SECS,
            OUTBOX_MAX_TASKS,
            STACK_NAME,
        ]
    }

    fn from_variables(variables: &Variables) -> Result<Self, ConfigError> {
        let max_tasks = variables.parsed_or(OUTBOX_MAX_TASKS, DEFAULT_MAX_TASKS)?;
        if max_tasks == 0 {
            return Err(ConfigError::invalid(OUTBOX_MAX_TASKS, "must be at least 1"));
        }
        Ok(SweeperSettings {
            tasks_table: variables.required(TASKS_TABLE)?,
            topic_arn: variables.required(EVENTS_TOPIC_ARN)?,
            outbox_shards: outbox_shards(variables)?,
            emission: Emission::from_variables(variables)?,
            config: SweeperConfig {
                min_age: Duration::from_secs(
                    variables.parsed_or(OUTBOX_MIN_AGE_SECS, DEFAULT_MIN_AGE_SECS)?,
                ),
                max_tasks,
            },
            backoff: Backoff::default(),
            stack: variables.optional(STACK_NAME),
        })
    }
}

impl SweeperSettings {
    /// The sweeper over AWS.
    pub fn build(&self, aws: &SdkConfig) -> Sweeper {
        shared::metrics::init(self.stack.clone());
        Sweeper::new(
            Arc::new(DynamoTaskStore::new(
                clients::dynamodb(aws),
                &self.tasks_table,
            )),
            Arc::new(
                SnsPublisher::new(
                    clients::sns(aws, &self.backoff),
                    &self.topic_arn,
                    self.backoff,
                )
                .emitting(self.emission.clone()),
            ),
            self.config,
        )
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

    /// One pass over every outbox older than the configured age.
    pub async fn run_once(&self) -> Result<SweepReport, StoreError> {
        let age = chrono::Duration::from_std(self.config.min_age).unwrap_or(chrono::Duration::MAX);
        let cutoff = time::now()
            .checked_sub_signed(age)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let limits = SweepLimits {
            max_tasks: self.config.max_tasks,
            concurrency: CONCURRENCY,
            max_failures: MAX_FAILURES,
            deadline: std::time::Instant::now() + RUN_BUDGET,
        };
        sweep(
            self.outbox.as_ref(),
            self.publisher.as_ref(),
            cutoff,
            limits,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use shared::memory::{MemoryStore, RecordingPublisher};
    use shared::service::{Caller, TaskService};
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
            request_id: None,
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

    #[test]
    fn when_no_task_may_be_taken_on_should_refuse_to_start_naming_the_variable() {
        let variables = Variables::new([
            (TASKS_TABLE, "t"),
            (EVENTS_TOPIC_ARN, "arn"),
            (OUTBOX_MAX_TASKS, "0"),
        ]);

        let err = SweeperSettings::from_variables(&variables).unwrap_err();

        assert!(err.to_string().contains(OUTBOX_MAX_TASKS), "{err}");
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
