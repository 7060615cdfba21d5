//! What each transition tells the world: the payload of its lifecycle event, holding only
//! what a subscriber reads. A change that is not purely additive gets a new version.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::kinds::{ExecutionStrategy, TaskComplexity, TaskType};

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

// Fields added to a `.v1` payload after its first release are optional to readers (an
// event published before them lacks them); this producer always writes them.

/// A task was created. Its description stays in the store, where the classifier reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskCreated {
    pub task_id: Uuid,
    /// The task's owner, the `sub` of its creator. Added to `.v1` later: may be absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", length(min = 1, max = 256))]
    pub user_id: Option<String>,
    /// The task's title. Added to `.v1` later: may be absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", length(min = 1, max = 200))]
    pub title: Option<String>,
}

/// A classified task started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskStarted {
    pub task_id: Uuid,
    pub task_type: TaskType,
    pub complexity: TaskComplexity,
    /// How it is being executed. Added to `.v1` later: may be absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "ExecutionStrategy")]
    pub strategy: Option<ExecutionStrategy>,
    /// The task's owner. Added to `.v1` later: may be absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", length(min = 1, max = 256))]
    pub user_id: Option<String>,
}

/// A task finished successfully.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskCompleted {
    pub task_id: Uuid,
    /// The task's owner. Added to `.v1` later: may be absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", length(min = 1, max = 256))]
    pub user_id: Option<String>,
    pub task_type: TaskType,
    pub complexity: TaskComplexity,
    pub strategy: ExecutionStrategy,
    pub tokens_used: u64,
    pub cost_usd: f64,
    /// From start to completion.
    pub duration_ms: u64,
}

/// A task failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskFailed {
    pub task_id: Uuid,
    pub task_type: TaskType,
    pub complexity: TaskComplexity,
    pub strategy: ExecutionStrategy,
    /// Why it failed, as its runner said. Added to `.v1` later: may be absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", length(min = 1, max = 4000))]
    pub error_message: Option<String>,
    #[serde(default)]
    pub tokens_used: u64,
    #[serde(default)]
    pub cost_usd: f64,
    /// From start to failure.
    pub duration_ms: u64,
}
