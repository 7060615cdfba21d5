//! The task API's routes: the task lifecycle, a task's events, and the operators'
//! statistics and timeline; each handler documents itself for the OpenAPI document.

use axum::extract::{Path, RawQuery, State};
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use dashboard::DashboardStats;
use shared::ports::StoreError;
use shared::service::{page_size, Caller, Command, TaskError};
use tracing::Span;
use utoipa::openapi::OpenApi as Document;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::deps::Deps;
use crate::errors::ApiError;
use crate::identity::Authenticated;
use crate::middleware::PathPrefix;
use crate::requests::{self, Classify, Complete, CreateTask, Fail, JsonBody, Start};
use crate::responses::{self, ErrorBody, EventPage, TaskPage, TaskView};

/// Every route, each documented by its `utoipa::path`, into `document`.
pub(crate) fn routes(document: Document) -> OpenApiRouter<Deps> {
    OpenApiRouter::with_openapi(document)
        .routes(routes!(create_task, list_tasks))
        .routes(routes!(get_task))
        .routes(routes!(classify_task))
        .routes(routes!(start_task))
        .routes(routes!(complete_task))
        .routes(routes!(fail_task))
        .routes(routes!(task_events))
        .routes(routes!(dashboard_stats))
        .routes(routes!(dashboard_task_events))
}

fn task_id(segment: &str) -> Result<Uuid, ApiError> {
    let id = Uuid::parse_str(segment)
        .map_err(|_| ApiError::bad_request("invalid_id", "id", "must be a UUID"))?;
    Span::current().record("task.id", tracing::field::display(id));
    Ok(id)
}

/// Create a task.
///
/// The task starts `Pending`; `TaskCreated` is published and the classifier classifies
/// it within seconds.
#[utoipa::path(
    post,
    path = "/tasks",
    tag = "tasks",
    operation_id = "createTask",
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "Makes the request safe to retry: a repeat with the same key and body within 24 hours gets the first answer and changes nothing (1 to 255 visible ASCII characters)"),
    ),
    request_body = CreateTask,
    responses(
        (status = 201, description = "Created", body = TaskView,
            headers(("Location" = String, description = "The new task's path"))),
        (status = 400, description = "Malformed or invalid body, naming the field", body = ErrorBody),
        (status = 401, description = "No caller identity", body = ErrorBody),
        (status = 409, description = "`request_in_progress`: a request with this `Idempotency-Key` still runs", body = ErrorBody),
        (status = 413, description = "Body over 65,536 bytes", body = ErrorBody),
        (status = 422, description = "The `Idempotency-Key` was used for another request", body = ErrorBody),
        (status = 415, description = "A content type other than JSON", body = ErrorBody),
        (status = 500, description = "Storage failed; quote `request_id`", body = ErrorBody),
    )
)]
async fn create_task(
    State(deps): State<Deps>,
    Authenticated(_, caller): Authenticated,
    prefix: Option<Extension<PathPrefix>>,
    JsonBody(CreateTask { title, description }): JsonBody<CreateTask>,
) -> Result<Response, ApiError> {
    let task = deps.tasks.create(&caller, title, description).await?;
    Span::current().record("task.id", tracing::field::display(task.id));
    let mut response = responses::json(StatusCode::CREATED, &TaskView::from(&task));
    let prefix = prefix
        .as_ref()
        .map_or("", |Extension(PathPrefix(p))| p.as_str());
    let location = format!("{prefix}/tasks/{}", task.id)
        .parse()
        .expect("a path is a valid header");
    response.headers_mut().insert(LOCATION, location);
    Ok(response)
}

/// List the caller's tasks, newest first.
#[utoipa::path(
    get,
    path = "/tasks",
    tag = "tasks",
    operation_id = "listTasks",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Tasks per page (default 20)"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of tasks", body = TaskPage),
        (status = 400, description = "Bad `limit` or `cursor`", body = ErrorBody),
        (status = 401, description = "No caller identity", body = ErrorBody),
        (status = 500, description = "Storage failed; quote `request_id`", body = ErrorBody),
    )
)]
async fn list_tasks(
    State(deps): State<Deps>,
    Authenticated(_, caller): Authenticated,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (limit, cursor) = requests::page(query.as_deref())?;
    let page = deps.tasks.list(&caller, limit, cursor.as_deref()).await?;
    let body = TaskPage {
        items: page.items.iter().map(TaskView::from).collect(),
        next_cursor: page.next_cursor,
    };
    Ok(responses::json(StatusCode::OK, &body))
}

/// Read a task.
#[utoipa::path(
    get,
    path = "/tasks/{id}",
    tag = "tasks",
    operation_id = "getTask",
    params(("id" = Uuid, Path, description = "The task's id")),
    responses(
        (status = 200, description = "The task", body = TaskView),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "No caller identity", body = ErrorBody),
        (status = 404, description = "No such task of the caller's", body = ErrorBody),
        (status = 500, description = "Storage failed; quote `request_id`", body = ErrorBody),
    )
)]
async fn get_task(
    State(deps): State<Deps>,
    Authenticated(_, caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let task = deps.tasks.get(&caller, task_id(&id)?).await?;
    Ok(responses::json(StatusCode::OK, &TaskView::from(&task)))
}

async fn transition(
    deps: &Deps,
    caller: &Caller,
    id: &str,
    command: Command,
) -> Result<Response, ApiError> {
    let task = deps.tasks.execute(caller, task_id(id)?, command).await?;
    Ok(responses::json(StatusCode::OK, &TaskView::from(&task)))
}

/// Classify a task (no event); allowed while `Pending` or `Classified`.
#[utoipa::path(
    post,
    path = "/tasks/{id}/classify",
    tag = "tasks",
    operation_id = "classifyTask",
    params(
        ("id" = Uuid, Path, description = "The task's id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "Makes the request safe to retry: a repeat with the same key and body within 24 hours gets the first answer and changes nothing (1 to 255 visible ASCII characters)"),
    ),
    request_body = Classify,
    responses(
        (status = 200, description = "The classified task", body = TaskView),
        (status = 400, description = "Bad id or body, naming the field", body = ErrorBody),
        (status = 401, description = "No caller identity", body = ErrorBody),
        (status = 404, description = "No such task of the caller's", body = ErrorBody),
        (status = 409, description = "`invalid_transition`, `version_conflict`, or `request_in_progress` (a request with this `Idempotency-Key` still runs)", body = ErrorBody),
        (status = 413, description = "Body over 65,536 bytes", body = ErrorBody),
        (status = 422, description = "The `Idempotency-Key` was used for another request", body = ErrorBody),
        (status = 415, description = "A content type other than JSON", body = ErrorBody),
        (status = 500, description = "Storage failed; quote `request_id`", body = ErrorBody),
    )
)]
async fn classify_task(
    State(deps): State<Deps>,
    Authenticated(_, caller): Authenticated,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Classify>,
) -> Result<Response, ApiError> {
    transition(&deps, &caller, &id, body.into()).await
}

/// Start a `Classified` task; publishes `TaskStarted`.
#[utoipa::path(
    post,
    path = "/tasks/{id}/start",
    tag = "tasks",
    operation_id = "startTask",
    params(
        ("id" = Uuid, Path, description = "The task's id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "Makes the request safe to retry: a repeat with the same key and body within 24 hours gets the first answer and changes nothing (1 to 255 visible ASCII characters)"),
    ),
    request_body = Start,
    responses(
        (status = 200, description = "The started task", body = TaskView),
        (status = 400, description = "Bad id or body, naming the field", body = ErrorBody),
        (status = 401, description = "No caller identity", body = ErrorBody),
        (status = 404, description = "No such task of the caller's", body = ErrorBody),
        (status = 409, description = "`invalid_transition`, `version_conflict`, or `request_in_progress` (a request with this `Idempotency-Key` still runs)", body = ErrorBody),
        (status = 413, description = "Body over 65,536 bytes", body = ErrorBody),
        (status = 422, description = "The `Idempotency-Key` was used for another request", body = ErrorBody),
        (status = 415, description = "A content type other than JSON", body = ErrorBody),
        (status = 500, description = "Storage failed; quote `request_id`", body = ErrorBody),
    )
)]
async fn start_task(
    State(deps): State<Deps>,
    Authenticated(_, caller): Authenticated,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Start>,
) -> Result<Response, ApiError> {
    transition(&deps, &caller, &id, body.into()).await
}

/// Complete an `InProgress` task; publishes `TaskCompleted`.
#[utoipa::path(
    post,
    path = "/tasks/{id}/complete",
    tag = "tasks",
    operation_id = "completeTask",
    params(
        ("id" = Uuid, Path, description = "The task's id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "Makes the request safe to retry: a repeat with the same key and body within 24 hours gets the first answer and changes nothing (1 to 255 visible ASCII characters)"),
    ),
    request_body = Complete,
    responses(
        (status = 200, description = "The completed task", body = TaskView),
        (status = 400, description = "Bad id or body, naming the field", body = ErrorBody),
        (status = 401, description = "No caller identity", body = ErrorBody),
        (status = 404, description = "No such task of the caller's", body = ErrorBody),
        (status = 409, description = "`invalid_transition`, `version_conflict`, or `request_in_progress` (a request with this `Idempotency-Key` still runs)", body = ErrorBody),
        (status = 413, description = "Body over 65,536 bytes", body = ErrorBody),
        (status = 422, description = "The `Idempotency-Key` was used for another request", body = ErrorBody),
        (status = 415, description = "A content type other than JSON", body = ErrorBody),
        (status = 500, description = "Storage failed; quote `request_id`", body = ErrorBody),
    )
)]
async fn complete_task(
    State(deps): State<Deps>,
    Authenticated(_, caller): Authenticated,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Complete>,
) -> Result<Response, ApiError> {
    transition(&deps, &caller, &id, body.into()).await
}

/// Fail an `InProgress` task; publishes `TaskFailed`.
#[utoipa::path(
    post,
    path = "/tasks/{id}/fail",
    tag = "tasks",
    operation_id = "failTask",
    params(
        ("id" = Uuid, Path, description = "The task's id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "Makes the request safe to retry: a repeat with the same key and body within 24 hours gets the first answer and changes nothing (1 to 255 visible ASCII characters)"),
    ),
    request_body = Fail,
    responses(
        (status = 200, description = "The failed task", body = TaskView),
        (status = 400, description = "Bad id or body, naming the field", body = ErrorBody),
        (status = 401, description = "No caller identity", body = ErrorBody),
        (status = 404, description = "No such task of the caller's", body = ErrorBody),
        (status = 409, description = "`invalid_transition`, `version_conflict`, or `request_in_progress` (a request with this `Idempotency-Key` still runs)", body = ErrorBody),
        (status = 413, description = "Body over 65,536 bytes", body = ErrorBody),
        (status = 422, description = "The `Idempotency-Key` was used for another request", body = ErrorBody),
        (status = 415, description = "A content type other than JSON", body = ErrorBody),
        (status = 500, description = "Storage failed; quote `request_id`", body = ErrorBody),
    )
)]
async fn fail_task(
    State(deps): State<Deps>,
    Authenticated(_, caller): Authenticated,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Fail>,
) -> Result<Response, ApiError> {
    transition(&deps, &caller, &id, body.into()).await
}

/// Statistics of all tasks, for operators.
///
/// Needs the operator scope (`orchestration/operator` unless the stack names another):
/// the figures cover every user's tasks, so other callers get 403.
#[utoipa::path(
    get,
    path = "/dashboard/stats",
    tag = "dashboard",
    operation_id = "dashboardStats",
    responses(
        (status = 200, description = "The statistics", body = DashboardStats),
        (status = 401, description = "No caller identity", body = ErrorBody),
        (status = 403, description = "The caller lacks the operator scope", body = ErrorBody),
        (status = 500, description = "Storage failed; quote `request_id`", body = ErrorBody),
    )
)]
async fn dashboard_stats(
    State(deps): State<Deps>,
    Authenticated(identity, _): Authenticated,
) -> Result<Response, ApiError> {
    if !identity.has_scope(&deps.operator_scope) {
        return Err(ApiError::forbidden(&deps.operator_scope));
    }
    let stats = deps.dashboard.stats().await.map_err(TaskError::from)?;
    Ok(responses::json(StatusCode::OK, &stats))
}

/// The events of `id`, oldest first, a page at a time.
async fn events_page(deps: &Deps, id: Uuid, query: Option<&str>) -> Result<Response, ApiError> {
    let (limit, cursor) = requests::page(query)?;
    let limit = page_size(limit)?;
    let page = deps
        .archive
        .timeline(id, limit as usize, cursor.as_deref())
        .await
        .map_err(TaskError::from)?;
    let items = page
        .items
        .iter()
        .map(|event| {
            serde_json::from_str(&event.body).map_err(|err| {
                TaskError::from(StoreError::Backend(format!(
                    "archived event {} is not JSON: {err}",
                    event.event_id
                )))
            })
        })
        .collect::<Result<Vec<serde_json::Value>, _>>()?;
    let body = EventPage {
        items,
        next_cursor: page.next_cursor,
    };
    Ok(responses::json(StatusCode::OK, &body))
}

/// A task's events, oldest first: each CloudEvent as it was published (see asyncapi.yaml).
///
/// Only its owner sees them; they appear once the event archive has stored them, within
/// seconds of each change.
#[utoipa::path(
    get,
    path = "/tasks/{id}/events",
    tag = "tasks",
    operation_id = "listTaskEvents",
    params(
        ("id" = Uuid, Path, description = "The task's id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Events per page (default 20)"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of the task's events", body = EventPage),
        (status = 400, description = "Bad id, `limit` or `cursor`", body = ErrorBody),
        (status = 401, description = "No caller identity", body = ErrorBody),
        (status = 404, description = "No such task of the caller's", body = ErrorBody),
        (status = 500, description = "Storage failed; quote `request_id`", body = ErrorBody),
    )
)]
async fn task_events(
    State(deps): State<Deps>,
    Authenticated(_, caller): Authenticated,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let task = deps.tasks.get(&caller, task_id(&id)?).await?;
    events_page(&deps, task.id, query.as_deref()).await
}

/// Any task's events, for operators (the dashboard page's timeline).
///
/// Needs the operator scope, as the statistics do.
#[utoipa::path(
    get,
    path = "/dashboard/tasks/{id}/events",
    tag = "dashboard",
    operation_id = "dashboardTaskEvents",
    params(
        ("id" = Uuid, Path, description = "The task's id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Events per page (default 20)"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of the task's events (none for an unknown task)", body = EventPage),
        (status = 400, description = "Bad id, `limit` or `cursor`", body = ErrorBody),
        (status = 401, description = "No caller identity", body = ErrorBody),
        (status = 403, description = "The caller lacks the operator scope", body = ErrorBody),
        (status = 500, description = "Storage failed; quote `request_id`", body = ErrorBody),
    )
)]
async fn dashboard_task_events(
    State(deps): State<Deps>,
    Authenticated(identity, _): Authenticated,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    if !identity.has_scope(&deps.operator_scope) {
        return Err(ApiError::forbidden(&deps.operator_scope));
    }
    events_page(&deps, task_id(&id)?, query.as_deref()).await
}

#[cfg(test)]
mod tests;
