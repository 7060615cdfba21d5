//! What each transition tells the world: the payload of its lifecycle event.
//! A change that is not purely additive gets a new version beside the old one.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::task::{ExecutionStrategy, TaskComplexity, TaskType};

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
