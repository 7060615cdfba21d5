//! Ports: what the use cases need from storage and messaging, as traits.
//! Adapters implement them over AWS; tests implement them in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::Task;
use crate::events::EventEnvelope;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The stored task is no longer the one the transition was computed from.
    #[error("the task was changed by a concurrent request")]
    Conflict,
    #[error("the cursor is not one this service issued")]
    InvalidCursor,
    #[error("storage failed: {0}")]
    Backend(String),
}

/// Events written with a task but not yet published, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PendingEvents {
    pub task_id: Uuid,
    /// Version of the task item the events were read at.
    pub version: u64,
    pub events: Vec<EventEnvelope>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskPage {
    pub items: Vec<Task>,
    pub next_cursor: Option<String>,
}

#[async_trait]
pub trait TaskStore: Send + Sync {
    /// Stores a new task with its creation event in the outbox.
    async fn create(&self, task: &Task, event: &EventEnvelope)
        -> Result<PendingEvents, StoreError>;

    async fn get(&self, id: Uuid) -> Result<Option<Task>, StoreError>;

    /// A user's tasks, newest first.
    async fn list_by_user(
        &self,
        user_id: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<TaskPage, StoreError>;

    /// Writes `next` only if the stored task still has the version and status of
    /// `previous`, appending `event` to the outbox in the same write.
    /// Returns everything pending in the outbox after the write.
    async fn apply(
        &self,
        previous: &Task,
        next: &Task,
        event: Option<&EventEnvelope>,
    ) -> Result<PendingEvents, StoreError>;
}

#[async_trait]
pub trait Outbox: Send + Sync {
    async fn pending(&self, task_id: Uuid) -> Result<PendingEvents, StoreError>;

    /// Removes published events from the outbox; clears the pending marker once it is empty.
    async fn acknowledge(
        &self,
        pending: &PendingEvents,
        published: &[Uuid],
    ) -> Result<(), StoreError>;

    /// Tasks whose oldest pending event was written at or before `older_than`, oldest
    /// first, at most `limit`; parked outboxes are left out.
    async fn stale(&self, older_than: DateTime<Utc>, limit: usize)
        -> Result<Vec<Uuid>, StoreError>;

    /// Counts a failed relay of a task's outbox; returns its failures so far (0 when the
    /// outbox was emptied meanwhile).
    async fn record_failure(&self, task_id: Uuid) -> Result<u32, StoreError>;

    /// Takes a task's outbox out of the sweeper's way until the task's next event.
    async fn park(&self, task_id: Uuid) -> Result<(), StoreError>;

    /// How many outboxes are parked.
    async fn parked(&self) -> Result<usize, StoreError>;
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("publishing event {event_id} failed: {reason}")]
pub struct PublishFailure {
    pub event_id: Uuid,
    pub reason: String,
}

/// What a batch publish achieved: every event is in exactly one of the two lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchReport {
    pub published: Vec<Uuid>,
    pub failed: Vec<PublishFailure>,
}

#[async_trait]
pub trait EventPublisher: Send + Sync {
    async fn publish(&self, event: &EventEnvelope) -> Result<(), PublishFailure>;

    /// Publishes every event; one failure never stops the others.
    async fn publish_batch(&self, events: &[EventEnvelope]) -> BatchReport;
}
