//! JSON responses: the task as the API shows it, pages of tasks, and errors.

use chrono::{DateTime, Utc};
use lambda_http::http::header::{ALLOW, CONTENT_TYPE};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;
use serde_json::json;
use shared::domain::{ExecutionStrategy, Task, TaskComplexity, TaskStatus, TaskType};
use uuid::Uuid;

use crate::errors::ApiError;

/// A task in responses: the contract's fields, `null` where unset.
#[derive(Debug, Serialize)]
pub struct TaskView<'a> {
    id: Uuid,
    user_id: &'a str,
    title: &'a str,
    description: &'a str,
    status: TaskStatus,
    task_type: Option<TaskType>,
    complexity: Option<TaskComplexity>,
    strategy: Option<ExecutionStrategy>,
    version: u64,
    #[serde(with = "shared::time")]
    created_at: DateTime<Utc>,
    #[serde(with = "shared::time")]
    updated_at: DateTime<Utc>,
    #[serde(with = "shared::time::option")]
    started_at: Option<DateTime<Utc>>,
    #[serde(with = "shared::time::option")]
    completed_at: Option<DateTime<Utc>>,
    tokens_used: Option<u64>,
    cost_usd: Option<f64>,
    error_message: Option<&'a str>,
}

impl<'a> From<&'a Task> for TaskView<'a> {
    fn from(task: &'a Task) -> Self {
        TaskView {
            id: task.id,
            user_id: &task.user_id,
            title: &task.title,
            description: &task.description,
            status: task.status,
            task_type: task.task_type,
            complexity: task.complexity,
            strategy: task.strategy,
            version: task.version,
            created_at: task.created_at,
            updated_at: task.updated_at,
            started_at: task.started_at,
            completed_at: task.completed_at,
            tokens_used: task.tokens_used,
            cost_usd: task.cost_usd,
            error_message: task.error_message.as_deref(),
        }
    }
}

pub fn json(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    let text = serde_json::to_string(body).expect("response bodies always serialise");
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Body::Text(text))
        .expect("status and header are valid")
}

pub fn error(err: &ApiError) -> Response<Body> {
    let mut body = json!({"error": err.code, "message": err.message});
    if let Some(field) = &err.field {
        body["field"] = json!(field);
    }
    if let Some(request_id) = &err.request_id {
        body["request_id"] = json!(request_id);
    }
    let mut response = json(
        StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &body,
    );
    if !err.allow.is_empty() {
        let allow = err
            .allow
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(value) = allow.parse() {
            response.headers_mut().insert(ALLOW, value);
        }
    }
    response
}
