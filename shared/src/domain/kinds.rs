//! The domain's vocabulary: a task's status, type, complexity and execution strategy, and
//! the actions a caller may ask of it. The task, its errors and its events all speak it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum TaskStatus {
    Pending,
    Classified,
    InProgress,
    Completed,
    Failed,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Pending,
        TaskStatus::Classified,
        TaskStatus::InProgress,
        TaskStatus::Completed,
        TaskStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "Pending",
            TaskStatus::Classified => "Classified",
            TaskStatus::InProgress => "InProgress",
            TaskStatus::Completed => "Completed",
            TaskStatus::Failed => "Failed",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
pub enum TaskType {
    BugFix,
    Feature,
    Refactor,
    Test,
    Documentation,
    Deployment,
}

impl TaskType {
    /// Types whose completion changes code and so asks for a build.
    pub fn changes_code(self) -> bool {
        matches!(
            self,
            TaskType::BugFix | TaskType::Feature | TaskType::Refactor | TaskType::Test
        )
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
pub enum TaskComplexity {
    Simple,
    Medium,
    Complex,
    Epic,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
pub enum ExecutionStrategy {
    SingleShot,
    Iterative,
    MultiAgent,
    HybridExecution,
}

/// What a caller may ask of a task; named in invalid-transition errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Classify,
    Start,
    Complete,
    Fail,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Classify => "classify",
            Action::Start => "start",
            Action::Complete => "complete",
            Action::Fail => "fail",
        }
    }
}
