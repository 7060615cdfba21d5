//! The event archive consumer: every event of the topic (every type and version), kept as
//! it was published in the archive table, once per event id, for a task's timeline and for
//! replays. The put-if-absent is its own idempotency: a repeat changes nothing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shared::adapters::clients::{self, SdkConfig};
use shared::adapters::dynamo_archive::{DEFAULT_TIME_SHARDS, MAX_TIME_SHARDS};
use shared::adapters::{DynamoEventArchive, SqsRedelivery};
use shared::archive::{ArchivedEvent, EventArchive};
use shared::consumer::{Consumer, ConsumerError, EventHandler, RetryBackoff};
use shared::events::EventEnvelope;
use shared::metrics::{self, Measure};
use shared::settings::{ConfigError, Settings, Variables, STACK_NAME};
use tracing::info;

pub const EVENT_ARCHIVE_TABLE: &str = "EVENT_ARCHIVE_TABLE";
pub const ARCHIVE_RETENTION_DAYS: &str = "ARCHIVE_RETENTION_DAYS";
pub const ARCHIVE_TIME_SHARDS: &str = "ARCHIVE_TIME_SHARDS";
const RETRY_BASE_SECS: &str = "RETRY_BASE_SECS";

/// Days an archived event is kept unless configured.
pub const DEFAULT_RETENTION_DAYS: u64 = 365;

pub struct Archiver {
    archive: Arc<dyn EventArchive>,
}

impl Archiver {
    pub fn new(archive: Arc<dyn EventArchive>) -> Self {
        Archiver { archive }
    }
}

#[async_trait]
impl EventHandler for Archiver {
    fn name(&self) -> &'static str {
        "event-archive"
    }

    /// Without the body there is nothing to keep as published: the body is the event.
    async fn handle(&self, event: &EventEnvelope) -> Result<(), ConsumerError> {
        self.handle_body(event, &event.to_json()).await
    }

    async fn handle_body(&self, event: &EventEnvelope, body: &str) -> Result<(), ConsumerError> {
        let archived = ArchivedEvent::of(event, body);
        let new = self.archive.archive(&archived).await?;
        info!(task.id = %archived.task_id, event.id = %event.id, new, "event archived");
        if !new {
            Measure::DuplicateSkipped(self.name()).emit();
        }
        Ok(())
    }
}

/// `EVENT_ARCHIVE_TABLE`, `ARCHIVE_RETENTION_DAYS` (365), `ARCHIVE_TIME_SHARDS` (16),
/// `RETRY_BASE_SECS` (10) and `STACK_NAME`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveSettings {
    pub table: String,
    pub retention: Duration,
    pub time_shards: u32,
    pub backoff: RetryBackoff,
    pub stack: Option<String>,
}

impl Settings for ArchiveSettings {
    fn variables() -> Vec<&'static str> {
        vec![
            EVENT_ARCHIVE_TABLE,
            ARCHIVE_RETENTION_DAYS,
            ARCHIVE_TIME_SHARDS,
            RETRY_BASE_SECS,
            STACK_NAME,
        ]
    }

    fn from_variables(variables: &Variables) -> Result<Self, ConfigError> {
        let days: u64 = variables.parsed_or(ARCHIVE_RETENTION_DAYS, DEFAULT_RETENTION_DAYS)?;
        if !(1..=36_500).contains(&days) {
            return Err(ConfigError::invalid(
                ARCHIVE_RETENTION_DAYS,
                "must be from 1 to 36500",
            ));
        }
        let shards: u32 = variables.parsed_or(ARCHIVE_TIME_SHARDS, DEFAULT_TIME_SHARDS)?;
        if !(1..=MAX_TIME_SHARDS).contains(&shards) {
            return Err(ConfigError::invalid(
                ARCHIVE_TIME_SHARDS,
                format!("must be from 1 to {MAX_TIME_SHARDS}"),
            ));
        }
        let default = RetryBackoff::default();
        let base = variables.parsed_or(RETRY_BASE_SECS, default.base.as_secs())?;
        if base == 0 {
            return Err(ConfigError::invalid(RETRY_BASE_SECS, "must be at least 1"));
        }
        Ok(ArchiveSettings {
            table: variables.required(EVENT_ARCHIVE_TABLE)?,
            retention: Duration::from_secs(days * 86_400),
            time_shards: shards,
            backoff: RetryBackoff {
                base: Duration::from_secs(base),
                ..default
            },
            stack: variables.optional(STACK_NAME),
        })
    }
}

impl ArchiveSettings {
    pub fn archive(&self, aws: &SdkConfig) -> DynamoEventArchive {
        DynamoEventArchive::new(
            clients::dynamodb(aws),
            &self.table,
            self.time_shards,
            self.retention,
        )
    }

    pub fn build(&self, aws: &SdkConfig) -> Consumer {
        metrics::init(self.stack.clone());
        Consumer::new(
            Arc::new(Archiver::new(Arc::new(self.archive(aws)))),
            Arc::new(SqsRedelivery::new(clients::sqs(aws))),
            self.backoff,
        )
    }
}

#[cfg(test)]
mod tests {
    use shared::fixtures::Run;
    use shared::memory::MemoryArchive;

    use super::*;

    #[tokio::test]
    async fn when_an_event_arrives_twice_should_keep_it_once_as_it_was_published() {
        let archive = Arc::new(MemoryArchive::default());
        let archiver = Archiver::new(archive.clone());
        let [created, started, completed] = Run::default().events();
        for event in [&created, &started, &completed, &started] {
            let body = format!("{} ", event.to_json());
            archiver.handle_body(event, &body).await.unwrap();
        }

        let kept = archive.all();
        assert_eq!(kept.len(), 3);
        let types: Vec<&str> = kept.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types,
            ["task.created.v1", "task.started.v1", "task.completed.v1"]
        );
        // The body as it came, not as this process would write it.
        assert_eq!(kept[1].body, format!("{} ", started.to_json()));
    }

    #[test]
    fn settings_should_refuse_what_cannot_be_kept_and_name_it() {
        let variables = |extra: &[(&str, &str)]| {
            let mut all = vec![(EVENT_ARCHIVE_TABLE, "archive")];
            all.extend_from_slice(extra);
            Variables::new(all)
        };
        let settings = ArchiveSettings::from_variables(&variables(&[])).unwrap();
        assert_eq!(settings.retention, Duration::from_secs(365 * 86_400));
        assert_eq!(settings.time_shards, DEFAULT_TIME_SHARDS);
        for (name, value) in [
            (ARCHIVE_RETENTION_DAYS, "0"),
            (ARCHIVE_TIME_SHARDS, "0"),
            (ARCHIVE_TIME_SHARDS, "101"),
            (ARCHIVE_RETENTION_DAYS, "a year"),
        ] {
            match ArchiveSettings::from_variables(&variables(&[(name, value)])) {
                Err(ConfigError::Invalid { name: named, .. }) => assert_eq!(named, name),
                other => panic!("{name}={value}: {other:?}"),
            }
        }
    }
}
