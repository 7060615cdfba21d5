//! The data of each lifecycle event, and the names under which it travels.
//! A change that is not purely additive gets a new version beside the old one.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{ExecutionStrategy, TaskComplexity, TaskType};

/// The event types, as named in SNS message attributes and filter policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    TaskCreated,
    TaskStarted,
    TaskCompleted,
    TaskFailed,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::TaskCreated,
        EventKind::TaskStarted,
        EventKind::TaskCompleted,
        EventKind::TaskFailed,
    ];

    /// Value of the `event_type` message attribute.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::TaskCreated => "TaskCreated",
            EventKind::TaskStarted => "TaskStarted",
            EventKind::TaskCompleted => "TaskCompleted",
            EventKind::TaskFailed => "TaskFailed",
        }
    }

    /// Value of the CloudEvents `type` attribute.
    pub fn cloud_event_type(self) -> &'static str {
        match self {
            EventKind::TaskCreated => "task.created.v1",
            EventKind::TaskStarted => "task.started.v1",
            EventKind::TaskCompleted => "task.completed.v1",
            EventKind::TaskFailed => "task.failed.v1",
        }
    }

    /// Value of the `event_version` message attribute.
    pub fn version(self) -> &'static str {
        "v1"
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum TaskEventData {
    #[serde(rename = "task.created.v1")]
    Created(TaskCreated),
    #[serde(rename = "task.started.v1")]
    Started(TaskStarted),
    #[serde(rename = "task.completed.v1")]
    Completed(TaskCompleted),
    #[serde(rename = "task.failed.v1")]
    Failed(TaskFailed),
}

impl TaskEventData {
    pub fn kind(&self) -> EventKind {
        match self {
            TaskEventData::Created(_) => EventKind::TaskCreated,
            TaskEventData::Started(_) => EventKind::TaskStarted,
            TaskEventData::Completed(_) => EventKind::TaskCompleted,
            TaskEventData::Failed(_) => EventKind::TaskFailed,
        }
    }

    pub fn task_id(&self) -> Uuid {
        match self {
            TaskEventData::Created(data) => data.task_id,
            TaskEventData::Started(data) => data.task_id,
            TaskEventData::Completed(data) => data.task_id,
            TaskEventData::Failed(data) => data.task_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCreated {
    pub task_id: Uuid,
    pub user_id: String,
    pub title: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStarted {
    pub task_id: Uuid,
    pub task_type: TaskType,
    pub complexity: TaskComplexity,
    pub strategy: ExecutionStrategy,
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCompleted {
    pub task_id: Uuid,
    pub task_type: TaskType,
    pub complexity: TaskComplexity,
    pub strategy: ExecutionStrategy,
    pub tokens_used: u64,
    pub cost_usd: f64,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskFailed {
    pub task_id: Uuid,
    pub task_type: TaskType,
    pub complexity: TaskComplexity,
    pub strategy: ExecutionStrategy,
    pub error_message: String,
    #[serde(default)]
    pub tokens_used: u64,
    #[serde(default)]
    pub cost_usd: f64,
    pub duration_ms: u64,
}
