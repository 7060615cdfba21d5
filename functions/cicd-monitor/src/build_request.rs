//! The build request: what a finished code change asks of CI/CD, one per task.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::domain::TaskType;
use uuid::Uuid;

/// A request to build and test what a finished task changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildRequest {
    pub task_id: Uuid,
    pub task_type: TaskType,
    /// When the task completed.
    #[serde(with = "shared::time")]
    pub requested_at: DateTime<Utc>,
    pub event_id: Uuid,
}
