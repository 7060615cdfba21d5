//! JSON responses: the task as the API shows it, pages of tasks and events, and errors
//! (every `ApiError` answers through [`error`]).

use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::domain::{ExecutionStrategy, Task, TaskComplexity, TaskStatus, TaskType};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::errors::ApiError;

/// A task: the contract's fields, `null` where unset.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Task)]
pub struct TaskView<'a> {
    id: Uuid,
    /// The caller who created it (the token's `sub`).
    user_id: &'a str,
    title: &'a str,
    description: &'a str,
    status: TaskStatus,
    task_type: Option<TaskType>,
    complexity: Option<TaskComplexity>,
    strategy: Option<ExecutionStrategy>,
    /// Starts at 1 and grows by one with every change.
    #[schema(minimum = 1)]
    version: u64,
    #[serde(with = "shared::time")]
    #[schema(value_type = String, format = DateTime)]
    created_at: DateTime<Utc>,
    #[serde(with = "shared::time")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: DateTime<Utc>,
    #[serde(with = "shared::time::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    started_at: Option<DateTime<Utc>>,
    #[serde(with = "shared::time::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
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

/// A page of the caller's tasks, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskPage<'a> {
    pub items: Vec<TaskView<'a>>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A page of a task's events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// CloudEvents 1.0 documents as they were published (`asyncapi.yaml`, `schemas/`).
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<serde_json::Value>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    /// A stable code, such as `validation_error` or `not_found`.
    pub error: &'a str,
    /// A sentence for people.
    pub message: &'a str,
    /// The input at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
    /// The request's id, on a 5xx answer, to quote when asking about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
}

pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    let text = serde_json::to_string(body).expect("response bodies always serialise");
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        text,
    )
        .into_response()
}

pub fn error(err: &ApiError) -> Response {
    let body = ErrorBody {
        error: err.code,
        message: &err.message,
        field: err.field.as_deref(),
        request_id: err.request_id.as_deref(),
    };
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

impl IntoResponse for ApiError {
    /// The JSON error body; the error also rides along in the response's extensions, so
    /// the request's middleware can name the request in a 5xx answer.
    fn into_response(self) -> Response {
        let mut response = error(&self);
        response.extensions_mut().insert(self);
        response
    }
}
