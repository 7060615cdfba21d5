//! The training example: a finished task as the classifier learns from it, one per task.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::domain::{ExecutionStrategy, TaskComplexity, TaskStatus, TaskType};
use uuid::Uuid;

/// A finished task as the classifier learns from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingExample {
    pub task_id: Uuid,
    pub task_type: TaskType,
    pub complexity: TaskComplexity,
    pub strategy: ExecutionStrategy,
    /// `Completed` or `Failed`.
    pub outcome: TaskStatus,
    pub tokens_used: u64,
    pub cost_usd: f64,
    pub duration_ms: u64,
    /// Why a failed task failed, from its `TaskFailed` event (absent for completed tasks,
    /// and for failures announced before the event carried it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    pub event_id: Uuid,
    #[serde(with = "shared::time")]
    pub recorded_at: DateTime<Utc>,
}
