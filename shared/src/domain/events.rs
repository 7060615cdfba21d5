//! What each transition tells the world: the payload of its lifecycle event, holding only
//! what a subscriber reads. A change that is not purely additive gets a new version.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::task::{ExecutionStrategy, TaskComplexity, TaskType};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
    pub fn task_id(&self) -> Uuid {
        match self {
            TaskEventData::Created(data) => data.task_id,
            TaskEventData::Started(data) => data.task_id,
            TaskEventData::Completed(data) => data.task_id,
            TaskEventData::Failed(data) => data.task_id,
        }
    }
}

/// A task was created. The task's content stays in the store: the classifier reads the
/// task there, as it needs its current version to classify it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskCreated {
    pub task_id: Uuid,
}

/// A classified task started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskStarted {
    pub task_id: Uuid,
    pub task_type: TaskType,
    pub complexity: TaskComplexity,
}

/// A task finished successfully.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskCompleted {
    pub task_id: Uuid,
    pub task_type: TaskType,
    pub complexity: TaskComplexity,
    pub strategy: ExecutionStrategy,
    pub tokens_used: u64,
    pub cost_usd: f64,
    /// From start to completion.
    pub duration_ms: u64,
}

/// A task failed. Its error message stays in the store: no subscriber reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskFailed {
    pub task_id: Uuid,
    pub task_type: TaskType,
    pub complexity: TaskComplexity,
    pub strategy: ExecutionStrategy,
    #[serde(default)]
    pub tokens_used: u64,
    #[serde(default)]
    pub cost_usd: f64,
    /// From start to failure.
    pub duration_ms: u64,
}
