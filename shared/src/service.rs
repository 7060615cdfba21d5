//! Use cases of the task API: each loads, transitions, wraps the change's payload in its
//! event envelope (in the trace of the current span), stores both atomically, then relays
//! the outbox. Ownership is checked here: another user's task does not exist.

use std::sync::Arc;

use tracing::{error, info};
use uuid::Uuid;

use crate::domain::{
    DomainError, ExecutionStrategy, NewTask, Task, TaskComplexity, TaskType, Transition, Usage,
};
use crate::events::EventEnvelope;
use crate::ports::{EventPublisher, Outbox, PendingEvents, StoreError, TaskPage, TaskStore};
use crate::relay::relay;
use crate::telemetry::current_traceparent;
use crate::time;

/// Largest page of a task listing.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Page size when the caller names none.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Longest a request waits for its events to be published after its write committed.
pub const RELAY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("task not found")]
    NotFound,
    #[error("the task was changed by a concurrent request; read it again and retry")]
    Conflict,
    #[error("cursor is not valid")]
    InvalidCursor,
    #[error("storage unavailable")]
    Store(#[source] StoreError),
}

impl From<StoreError> for TaskError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict => TaskError::Conflict,
            StoreError::InvalidCursor => TaskError::InvalidCursor,
            other => TaskError::Store(other),
        }
    }
}

/// Who asks, and the id of the request, which the events it causes carry.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub request_id: Option<String>,
}

/// A change a caller asks of an existing task.
#[derive(Debug, Clone)]
pub enum Command {
    Classify {
        task_type: TaskType,
        complexity: TaskComplexity,
    },
    Start {
        strategy: ExecutionStrategy,
    },
    Complete(Usage),
    Fail {
        error_message: String,
        usage: Usage,
    },
}

impl Command {
    fn apply(&self, task: &Task) -> Result<Transition, DomainError> {
        let now = time::now();
        match self {
            Command::Classify {
                task_type,
                complexity,
            } => task.classify(*task_type, *complexity, now),
            Command::Start { strategy } => task.start(*strategy, now),
            Command::Complete(usage) => task.complete(*usage, now),
            Command::Fail {
                error_message,
                usage,
            } => task.fail(error_message.clone(), *usage, now),
        }
    }
}

#[derive(Clone)]
pub struct TaskService {
    store: Arc<dyn TaskStore>,
    outbox: Arc<dyn Outbox>,
    publisher: Arc<dyn EventPublisher>,
}

/// A page's size as asked for: `DEFAULT_PAGE_SIZE` when not, else 1 to `MAX_PAGE_SIZE`.
pub fn page_size(limit: Option<u32>) -> Result<u32, TaskError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(
            DomainError::validation("limit", format!("must be from 1 to {MAX_PAGE_SIZE}")).into(),
        );
    }
    Ok(limit)
}

impl TaskService {
    pub fn new(
        store: Arc<dyn TaskStore>,
        outbox: Arc<dyn Outbox>,
        publisher: Arc<dyn EventPublisher>,
    ) -> Self {
        TaskService {
            store,
            outbox,
            publisher,
        }
    }

    pub async fn create(
        &self,
        caller: &Caller,
        title: String,
        description: String,
    ) -> Result<Task, TaskError> {
        let Transition { task, event } = Task::create(
            NewTask {
                user_id: caller.user_id.clone(),
                title,
                description,
            },
            time::now(),
        )?;
        let data = event.expect("creation always emits TaskCreated");
        let mut event = EventEnvelope::emitted(&task, data, current_traceparent());
        event.correlationid = caller.request_id.clone();
        let pending = self.store.create(&task, &event).await?;
        info!(task.id = %task.id, user.id = %task.user_id, "task created");
        self.relay(pending).await;
        Ok(task)
    }

    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Task, TaskError> {
        match self.store.get(id).await? {
            Some(task) if task.user_id == caller.user_id => Ok(task),
            _ => Err(TaskError::NotFound),
        }
    }

    pub async fn list(
        &self,
        caller: &Caller,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<TaskPage, TaskError> {
        Ok(self
            .store
            .list_by_user(&caller.user_id, page_size(limit)?, cursor)
            .await?)
    }

    /// Runs one transition; a concurrent change makes it fail with `Conflict`, writing nothing.
    pub async fn execute(
        &self,
        caller: &Caller,
        id: Uuid,
        command: Command,
    ) -> Result<Task, TaskError> {
        let current = self.get(caller, id).await?;
        let Transition { task, event } = command.apply(&current)?;
        let event = event.map(|data| {
            let mut event = EventEnvelope::emitted(&task, data, current_traceparent());
            event.correlationid = caller.request_id.clone();
            event
        });
        let pending = self.store.apply(&current, &task, event.as_ref()).await?;
        info!(task.id = %id, status = task.status.as_str(), version = task.version, "task transitioned");
        self.relay(pending).await;
        Ok(task)
    }

    /// The transition is committed with its events; a failure here only delays them
    /// until the sweeper runs, so it is logged and not returned to the caller.
    async fn relay(&self, pending: PendingEvents) {
        let task_id = pending.task_id;
        let relayed = relay(self.outbox.as_ref(), self.publisher.as_ref(), pending);
        // A slow SNS must not hold the answer past the API's own limits.
        match tokio::time::timeout(RELAY_TIMEOUT, relayed).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                error!(task.id = %task_id, error = %err, "relaying the outbox failed; the sweeper will retry");
            }
            Err(_) => {
                error!(task.id = %task_id, "relaying the outbox timed out; the sweeper will retry");
            }
        }
    }
}
