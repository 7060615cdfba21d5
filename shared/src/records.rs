//! Records consumers keep, one per task: training examples of finished tasks and build
//! requests of finished code changes. Recording twice keeps the first.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{ExecutionStrategy, TaskComplexity, TaskStatus, TaskType};
use crate::ports::StoreError;

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
    pub event_id: Uuid,
    #[serde(with = "crate::time")]
    pub recorded_at: DateTime<Utc>,
}

/// A request to build and test what a finished task changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildRequest {
    pub task_id: Uuid,
    pub task_type: TaskType,
    /// When the task completed.
    #[serde(with = "crate::time")]
    pub requested_at: DateTime<Utc>,
    pub event_id: Uuid,
}

/// Keeps one record per task id.
#[async_trait]
pub trait RecordStore<T>: Send + Sync {
    /// Stores `record` unless one exists for its task; `false` when one did.
    async fn record(&self, task_id: Uuid, record: &T) -> Result<bool, StoreError>;

    async fn get(&self, task_id: Uuid) -> Result<Option<T>, StoreError>;
}
