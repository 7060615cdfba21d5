//! The task API's routes, as one axum `Router` that Lambda (through `lambda_http`) and the
//! local server (through `axum::serve`) both run, and the OpenAPI document that describes
//! them.

use std::sync::{Arc, OnceLock};

use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use dashboard::{DashboardStats, DashboardStore};
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use shared::archive::EventArchive;
use shared::ports::StoreError;
use shared::service::{page_size, Caller, Command, TaskError, TaskService};
use shared::telemetry::{record_trace_id, request_trace};
use tracing::field::Empty;
use tracing::{info_span, Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::errors::ApiError;
use crate::idempotency::{idempotent, RequestKeys};
use crate::identity::Authenticated;
use crate::page;
use crate::requests::{
    self, Classify, Complete, CreateTask, Fail, JsonBody, Start, MAX_BODY_BYTES,
};
use crate::response_headers::response_headers;
use crate::responses::{self, ErrorBody, EventPage, TaskPage, TaskView};

/// The scope that lets a caller read the statistics of all tasks, unless configured.
pub const DEFAULT_OPERATOR_SCOPE: &str = "orchestration/operator";

/// What the routes need, built once per process.
#[derive(Clone)]
pub struct Deps {
    pub tasks: TaskService,
    pub dashboard: Arc<dyn DashboardStore>,
    /// The `Idempotency-Key`s of requests and their answers.
    pub request_keys: Arc<dyn RequestKeys>,
    /// Every task's events as they were published, for its timeline.
    pub archive: Arc<dyn EventArchive>,
    /// The scope `GET /dashboard/stats` asks for.
    pub operator_scope: String,
    /// How the dashboard page's callers name themselves (`/dashboard/identity.json`).
    pub page_identity: &'static str,
}

impl Deps {
    pub fn new(
        tasks: TaskService,
        dashboard: Arc<dyn DashboardStore>,
        request_keys: Arc<dyn RequestKeys>,
        archive: Arc<dyn EventArchive>,
    ) -> Self {
        Deps {
            tasks,
            dashboard,
            request_keys,
            archive,
            operator_scope: DEFAULT_OPERATOR_SCOPE.to_owned(),
            page_identity: page::BEARER_IDENTITY,
        }
    }
}

/// The path the routes sit under, when not the root: `/dev` on a named stage.
#[derive(Debug, Clone)]
pub struct PathPrefix(pub String);

/// The request's id, for logs, traces and 5xx answers.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Task orchestration API",
        description = "Tasks move Pending → Classified → InProgress → Completed | Failed; \
every change is published as a CloudEvent (see asyncapi.yaml). A task belongs to its \
creator: to anyone else it does not exist (404).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "http://127.0.0.1:3000", description = "the local server (`infra/local.sh up`)")),
    tags(
        (name = "tasks", description = "The task lifecycle"),
        (name = "dashboard", description = "Statistics of all tasks"),
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

/// The JWT the HTTP API's authorizer verifies; its `sub` claim names the caller.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".to_owned());
        scheme.description = Some(
            "A JWT from the stack's Cognito user pool; its `sub` claim names the caller. \
Locally the `X-User-Id` header (and `X-User-Scopes`) stands in for it."
                .to_owned(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

fn routes() -> OpenApiRouter<Deps> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
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

/// The OpenAPI document of the routes.
pub fn openapi() -> Document {
    with_links(routes().split_for_parts().1)
}

/// The lifecycle as links between operations: what a client (or a stateful fuzzer) may
/// do next with the task an answer names.
fn with_links(mut document: Document) -> Document {
    let next: [(&str, &str, &[&str]); 3] = [
        ("createTask", "201", &["getTask", "classifyTask"]),
        ("classifyTask", "200", &["getTask", "startTask"]),
        ("startTask", "200", &["getTask", "completeTask", "failTask"]),
    ];
    for item in document.paths.paths.values_mut() {
        for operation in [item.get.as_mut(), item.post.as_mut()]
            .into_iter()
            .flatten()
        {
            let Some((_, status, targets)) = next
                .iter()
                .find(|(id, _, _)| operation.operation_id.as_deref() == Some(*id))
            else {
                continue;
            };
            if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) {
                for target in *targets {
                    let link = LinkBuilder::new()
                        .operation_id(*target)
                        .parameter("id", "$response.body#/id")
                        .build();
                    response.links.insert(target.to_string(), RefOr::T(link));
                }
            }
        }
    }
    document
}

/// The routes, their errors for unknown paths and methods, the body limit and the
/// request's span. Identity comes from a layer of the host: [`crate::identity::authorizer`]
/// in Lambda, [`crate::identity::local_headers`] locally.
pub fn router(deps: Deps) -> Router {
    let (routes, document) = routes().split_for_parts();
    // Written out when first asked for, not on every cold start.
    let document = Arc::new(document);
    let json: Arc<OnceLock<String>> = Arc::default();
    routes
        .route(
            "/openapi.json",
            get(move || {
                let json = json
                    .get_or_init(|| {
                        with_links(Document::clone(&document))
                            .to_pretty_json()
                            .expect("the document serialises")
                    })
                    .clone();
                async move {
                    (
                        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                        json,
                    )
                }
            }),
        )
        .route_layer(middleware::from_fn_with_state(deps.clone(), idempotent))
        // The dashboard page's files need no identity (its data requests do).
        .merge(page::router(deps.page_identity))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Outside the routes and their fallbacks, so every answer has them, 404 and 413 too.
        .layer(middleware::from_fn(response_headers))
        .layer(middleware::from_fn(trace_request))
        .with_state(deps)
}

/// The router under a named API stage's path (`/dev/tasks`), as API Gateway passes HTTP
/// API paths on; at the root for the `$default` stage or none.
pub fn staged(router: Router, stage: Option<&str>) -> Router {
    match stage.filter(|stage| !stage.is_empty() && *stage != "$default") {
        Some(stage) => {
            let prefix = format!("/{stage}");
            Router::new()
                .nest(&prefix, router)
                .layer(Extension(PathPrefix(prefix)))
        }
        None => router,
    }
}

async fn not_found(request: Request) -> ApiError {
    ApiError::route_not_found(request.uri().path())
}

/// The router adds the `Allow` header.
async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::method_not_allowed(&method, &[])
}

/// Runs a request in a span that continues the caller's trace, and names the request in
/// a 5xx answer.
async fn trace_request(mut request: Request, next: Next) -> Response {
    let request_id = request_id(&request);
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let span = request_span(&request, &request_id);
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
        if let Some(err) = response.extensions_mut().remove::<ApiError>() {
            response = responses::error(&ApiError {
                request_id: Some(request_id),
                ..err
            });
        }
    }
    response
}

/// The request's id: API Gateway's, else Lambda's, else (locally) a new one.
fn request_id(request: &Request) -> String {
    let gateway = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
        _ => None,
    };
    gateway
        .or_else(|| request.lambda_context_ref().map(|c| c.request_id.clone()))
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| Uuid::new_v4().to_string())
}

/// The span of one request: in the X-Ray trace its headers name, else under the current span
/// (in Lambda, the invocation's, in the trace Lambda names), linked to a client's
/// `traceparent`; with no trace of ours, in the client's trace, else in a new one.
fn request_span(request: &Request, request_id: &str) -> Span {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let method = request.method().as_str();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or(request.uri().path(), |matched| matched.as_str());
    let span = info_span!(
        "HTTP request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = route,
        url.path = request.uri().path(),
        http.response.status_code = Empty,
        task.id = Empty,
        trace_id = Empty,
        correlation_id = request_id,
    );
    // A client's traceparent is linked, never followed where a trace of ours exists.
    let trace = request_trace(header("traceparent"), header("x-amzn-trace-id"));
    if let Some(parent) = trace.parent {
        // Only an invalid context is refused, and `request_trace` gives valid ones.
        let _ = span.set_parent(parent);
    }
    if let Some(client) = trace.link {
        span.add_link(client);
    }
    record_trace_id(&span);
    span
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
mod tests {
    use axum::body::{to_bytes, Body};
    use axum::http::HeaderMap;
    use dashboard::memory::MemoryDashboard;
    use serde_json::{json, Value};
    use shared::fixtures;
    use shared::memory::{MemoryStore, RecordingPublisher};
    use tower::ServiceExt;

    use super::*;
    use crate::identity;

    struct Fixture {
        deps: Deps,
        store: Arc<MemoryStore>,
        publisher: Arc<RecordingPublisher>,
        dashboard: Arc<MemoryDashboard>,
        archive: Arc<shared::memory::MemoryArchive>,
    }

    fn fixture() -> Fixture {
        let store = Arc::new(MemoryStore::new());
        let publisher = Arc::new(RecordingPublisher::new());
        let dashboard = Arc::new(MemoryDashboard::default());
        let archive = Arc::new(shared::memory::MemoryArchive::default());
        let deps = Deps::new(
            TaskService::new(store.clone(), store.clone(), publisher.clone()),
            dashboard.clone(),
            crate::MemoryRequestKeys::new(),
            archive.clone(),
        );
        Fixture {
            deps,
            store,
            publisher,
            dashboard,
            archive,
        }
    }

    /// A request as the local server passes it on, `user` in the identity header.
    fn request(user: Option<&str>, method: Method, path: &str, body: &str) -> Request {
        let mut builder = axum::http::Request::builder().method(method).uri(path);
        if !body.is_empty() {
            builder = builder.header("content-type", "application/json");
        }
        if let Some(user) = user {
            builder = builder.header(identity::USER_HEADER, user);
        }
        builder.body(Body::from(body.to_owned())).unwrap()
    }

    /// The router as the local server runs it.
    fn local(f: &Fixture) -> Router {
        router(f.deps.clone()).layer(middleware::from_fn(identity::local_headers))
    }

    /// The status, headers and JSON body of a response.
    async fn decode(response: Response) -> (u16, HeaderMap, Value) {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {bytes:?}"));
        (status, headers, body)
    }

    async fn send(app: Router, request: Request) -> (u16, HeaderMap, Value) {
        decode(app.oneshot(request).await.unwrap()).await
    }

    async fn call(
        f: &Fixture,
        user: Option<&str>,
        method: Method,
        path: &str,
        body: &str,
    ) -> (u16, Value) {
        let (status, _, body) = send(local(f), request(user, method, path, body)).await;
        (status, body)
    }

    async fn created(f: &Fixture) -> String {
        let (status, body) = call(
            f,
            Some("alice"),
            Method::POST,
            "/tasks",
            r#"{"title":"Fix bug","description":"details"}"#,
        )
        .await;
        assert_eq!(status, 201);
        body["id"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn when_the_api_answers_should_forbid_sniffing_and_storing_every_answer() {
        // Given a created task
        let f = fixture();
        let id = created(&f).await;

        // When it is read, an unknown route is asked for, a body is too large, and the
        // dashboard page is fetched
        let answers = [
            request(Some("alice"), Method::GET, &format!("/tasks/{id}"), ""),
            request(Some("alice"), Method::GET, "/nowhere", ""),
            request(
                Some("alice"),
                Method::POST,
                "/tasks",
                &"x".repeat(MAX_BODY_BYTES + 1),
            ),
        ];
        // Then each JSON answer says nosniff and no-store
        for request in answers {
            let path = request.uri().to_string();
            let response = local(&f).oneshot(request).await.unwrap();
            let headers = response.headers();
            assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(headers["cache-control"], "no-store", "{path}");
        }
        // And the page keeps its own caching, with nosniff
        let page = local(&f)
            .oneshot(request(None, Method::GET, "/dashboard", ""))
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()["x-content-type-options"], "nosniff");
        assert_eq!(page.headers()["cache-control"], "no-cache");
    }

    #[tokio::test]
    async fn when_task_is_created_should_answer_201_with_location_and_publish() {
        let f = fixture();
        let request = request(
            Some("alice"),
            Method::POST,
            "/tasks",
            r#"{"title":"Fix bug","description":"details"}"#,
        );

        let (status, headers, body) = send(local(&f), request).await;

        assert_eq!(status, 201);
        let id = body["id"].as_str().unwrap();
        assert_eq!(headers["location"], format!("/tasks/{id}").as_str());
        assert_eq!(body["status"], "Pending");
        assert_eq!(body["version"], 1);
        for field in [
            "task_type",
            "complexity",
            "strategy",
            "started_at",
            "completed_at",
            "tokens_used",
            "cost_usd",
            "error_message",
        ] {
            assert!(body[field].is_null(), "{field} should be null");
        }
        assert_eq!(f.publisher.published().len(), 1);
    }

    #[tokio::test]
    async fn when_lifecycle_runs_should_reach_completed() {
        let f = fixture();
        let id = created(&f).await;
        let steps = [
            (
                "classify",
                r#"{"task_type":"BugFix","complexity":"Simple"}"#,
                "Classified",
            ),
            ("start", r#"{"strategy":"SingleShot"}"#, "InProgress"),
            (
                "complete",
                r#"{"tokens_used":100,"cost_usd":0.5}"#,
                "Completed",
            ),
        ];
        for (action, body, status) in steps {
            let path = format!("/tasks/{id}/{action}");
            let (code, task) = call(&f, Some("alice"), Method::POST, &path, body).await;
            assert_eq!(code, 200, "{action}: {task}");
            assert_eq!(task["status"], status);
        }
        let kinds: Vec<_> = f
            .publisher
            .published()
            .iter()
            .map(|e| e.kind().name())
            .collect();
        assert_eq!(kinds, ["TaskCreated", "TaskStarted", "TaskCompleted"]);
    }

    #[tokio::test]
    async fn when_transition_is_invalid_should_answer_409_and_write_nothing() {
        let f = fixture();
        let id = created(&f).await;
        let (status, body) = call(
            &f,
            Some("alice"),
            Method::POST,
            &format!("/tasks/{id}/complete"),
            r#"{"tokens_used":1,"cost_usd":1}"#,
        )
        .await;
        assert_eq!(status, 409);
        assert_eq!(body["error"], "invalid_transition");
        let (_, task) = call(&f, Some("alice"), Method::GET, &format!("/tasks/{id}"), "").await;
        assert_eq!(task["version"], 1);
        assert_eq!(f.publisher.published().len(), 1);
    }

    #[tokio::test]
    async fn when_another_user_asks_should_answer_404() {
        let f = fixture();
        let id = created(&f).await;
        let (status, body) = call(
            &f,
            Some("mallory"),
            Method::GET,
            &format!("/tasks/{id}"),
            "",
        )
        .await;
        assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
        let (status, _) = call(
            &f,
            Some("mallory"),
            Method::POST,
            &format!("/tasks/{id}/classify"),
            r#"{"task_type":"BugFix","complexity":"Simple"}"#,
        )
        .await;
        assert_eq!(status, 404);
        let (_, page) = call(&f, Some("mallory"), Method::GET, "/tasks", "").await;
        assert_eq!(page["items"].as_array().unwrap().len(), 0);
    }

    /// Caller, method, path, body, expected status and the field the error should name.
    type Case<'a> = (
        Option<&'a str>,
        Method,
        &'a str,
        &'a str,
        u16,
        Option<&'a str>,
    );

    #[tokio::test]
    async fn when_input_is_bad_should_answer_4xx_naming_the_problem_and_write_nothing() {
        // Given one task of alice's
        let f = fixture();
        let id = created(&f).await;
        let classify = format!("/tasks/{id}/classify");
        let start = format!("/tasks/{id}/start");
        let complete = format!("/tasks/{id}/complete");
        let fail = format!("/tasks/{id}/fail");
        let long_description = format!(r#"{{"title":"t","description":"{}"}}"#, "d".repeat(10_001));
        let big = format!(
            r#"{{"title":"t","description":"{}"}}"#,
            "x".repeat(crate::requests::MAX_BODY_BYTES)
        );
        let long_title = format!(r#"{{"title":"{}","description":"d"}}"#, "t".repeat(201));
        let cases: Vec<Case> = vec![
            (
                Some("alice"),
                Method::POST,
                "/tasks",
                "{not json",
                400,
                None,
            ),
            (Some("alice"), Method::POST, "/tasks", "", 400, None),
            (
                Some("alice"),
                Method::POST,
                "/tasks",
                r#"{"title":5,"description":"d"}"#,
                400,
                Some("title"),
            ),
            (
                Some("alice"),
                Method::POST,
                "/tasks",
                r#"{"description":"d"}"#,
                400,
                Some("title"),
            ),
            (
                Some("alice"),
                Method::POST,
                "/tasks",
                r#"{"title":"t","description":"d","owner":"x"}"#,
                400,
                Some("owner"),
            ),
            (
                Some("alice"),
                Method::POST,
                "/tasks",
                r#"{"title":"","description":"d"}"#,
                400,
                Some("title"),
            ),
            (
                Some("alice"),
                Method::POST,
                "/tasks",
                &long_title,
                400,
                Some("title"),
            ),
            (Some("alice"), Method::POST, "/tasks", &big, 413, None),
            (
                None,
                Method::POST,
                "/tasks",
                r#"{"title":"t","description":"d"}"#,
                401,
                None,
            ),
            (
                Some("alice"),
                Method::GET,
                "/tasks/not-a-uuid",
                "",
                400,
                Some("id"),
            ),
            (
                Some("alice"),
                Method::POST,
                &classify,
                r#"{"task_type":"Poetry","complexity":"Simple"}"#,
                400,
                Some("task_type"),
            ),
            (
                Some("alice"),
                Method::POST,
                &classify,
                r#"{"task_type":"BugFix"}"#,
                400,
                Some("complexity"),
            ),
            (
                Some("alice"),
                Method::GET,
                "/tasks?limit=0",
                "",
                400,
                Some("limit"),
            ),
            (
                Some("alice"),
                Method::GET,
                "/tasks?limit=abc",
                "",
                400,
                Some("limit"),
            ),
            (
                Some("alice"),
                Method::GET,
                "/tasks?cursor=7b7d",
                "",
                400,
                Some("cursor"),
            ),
            (Some("alice"), Method::POST, "/tasks", "[1,2]", 400, None),
            (
                Some("alice"),
                Method::POST,
                "/tasks",
                r#"{"title":"t"}"#,
                400,
                Some("description"),
            ),
            (
                Some("alice"),
                Method::POST,
                "/tasks",
                r#"{"title":"   ","description":"d"}"#,
                400,
                Some("title"),
            ),
            (
                Some("alice"),
                Method::POST,
                "/tasks",
                &long_description,
                400,
                Some("description"),
            ),
            (
                Some("alice"),
                Method::POST,
                "/tasks",
                r#"{"title":"t","description":"d","status":"Completed"}"#,
                400,
                Some("status"),
            ),
            (Some(" "), Method::GET, "/tasks", "", 401, None),
            (
                Some("alice"),
                Method::POST,
                "/tasks/123/start",
                r#"{"strategy":"SingleShot"}"#,
                400,
                Some("id"),
            ),
            (
                Some("alice"),
                Method::POST,
                &classify,
                r#"{"task_type":"BugFix","complexity":"Huge"}"#,
                400,
                Some("complexity"),
            ),
            (
                Some("alice"),
                Method::POST,
                &start,
                r#"{"strategy":7}"#,
                400,
                Some("strategy"),
            ),
            (
                Some("alice"),
                Method::POST,
                &complete,
                r#"{"tokens_used":-5,"cost_usd":1}"#,
                400,
                Some("tokens_used"),
            ),
            (
                Some("alice"),
                Method::POST,
                &complete,
                r#"{"tokens_used":5,"cost_usd":-1}"#,
                400,
                Some("cost_usd"),
            ),
            (
                Some("alice"),
                Method::POST,
                &fail,
                r#"{"tokens_used":5}"#,
                400,
                Some("error_message"),
            ),
            (
                Some("alice"),
                Method::GET,
                "/tasks?limit=1000",
                "",
                400,
                Some("limit"),
            ),
        ];

        for (user, method, path, body, status, field) in cases {
            // When each bad request arrives
            let (code, json) = call(&f, user, method.clone(), path, body).await;

            // Then it is refused with a JSON error naming the field at fault
            assert_eq!(code, status, "{method} {path} {body:.80}: {json}");
            assert!(
                json["error"].is_string() && json["message"].is_string(),
                "{json}"
            );
            assert_eq!(json["field"].as_str(), field, "{method} {path}: {json}");
        }
        // And nothing was written or published
        assert_eq!(f.store.task_count(), 1);
        assert_eq!(f.publisher.published().len(), 1);
        let (_, task) = call(&f, Some("alice"), Method::GET, &format!("/tasks/{id}"), "").await;
        assert_eq!(
            (task["version"].as_u64(), task["status"].as_str()),
            (Some(1), Some("Pending"))
        );
    }

    #[tokio::test]
    async fn when_storage_fails_should_answer_500_with_the_request_id_and_no_detail() {
        let f = fixture();
        f.store.set_down(true);

        let (status, body) = call(&f, Some("alice"), Method::GET, "/tasks", "").await;

        assert_eq!(
            (status, body["error"].as_str()),
            (500, Some("internal_error"))
        );
        let request_id = body["request_id"].as_str().expect("a request id");
        assert!(uuid::Uuid::parse_str(request_id).is_ok(), "{body}");
        assert!(!body.to_string().contains("out of reach"), "{body}");
    }

    #[tokio::test]
    async fn when_publishing_fails_should_still_commit_and_keep_the_event() {
        let f = fixture();
        f.publisher.set_failing(true);
        let id = created(&f).await;
        let id = id.parse().unwrap();
        assert_eq!(f.store.outbox(id).len(), 1);
        assert!(f.publisher.published().is_empty());
    }

    #[tokio::test]
    async fn when_listing_should_page_newest_first_and_resume_from_the_cursor() {
        // Given five tasks of alice's and one of bob's
        let f = fixture();
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(created(&f).await);
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        call(
            &f,
            Some("bob"),
            Method::POST,
            "/tasks",
            r#"{"title":"b","description":""}"#,
        )
        .await;

        // When alice pages through them two at a time
        let mut listed = Vec::new();
        let mut path = "/tasks?limit=2".to_owned();
        for _ in 0..5 {
            let (status, page) = call(&f, Some("alice"), Method::GET, &path, "").await;
            assert_eq!(status, 200, "{page}");
            listed.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["id"].as_str().unwrap().to_owned()),
            );
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("/tasks?limit=2&cursor={cursor}"),
                None => break,
            }
        }

        // Then she sees each of hers once, newest first
        ids.reverse();
        assert_eq!(listed, ids);
    }

    #[tokio::test]
    async fn when_another_user_presents_a_cursor_should_answer_400() {
        let f = fixture();
        for _ in 0..2 {
            created(&f).await;
        }
        let (_, page) = call(&f, Some("alice"), Method::GET, "/tasks?limit=1", "").await;
        let cursor = page["next_cursor"].as_str().unwrap();

        let path = format!("/tasks?cursor={cursor}");
        let (status, body) = call(&f, Some("mallory"), Method::GET, &path, "").await;

        assert_eq!((status, body["field"].as_str()), (400, Some("cursor")));
    }

    /// Drives a task to completion and archives what was published, as the archive would.
    async fn archived_lifecycle(f: &Fixture) -> String {
        let id = created(f).await;
        for (action, body) in [
            (
                "classify",
                r#"{"task_type":"BugFix","complexity":"Simple"}"#,
            ),
            ("start", r#"{"strategy":"SingleShot"}"#),
            ("complete", r#"{"tokens_used":10,"cost_usd":0.5}"#),
        ] {
            let path = format!("/tasks/{id}/{action}");
            assert_eq!(
                call(f, Some("alice"), Method::POST, &path, body).await.0,
                200
            );
        }
        use shared::archive::{ArchivedEvent, EventArchive};
        for event in f.publisher.published().iter().rev() {
            let archived = ArchivedEvent::of(event, &event.to_json());
            f.archive.archive(&archived).await.unwrap();
        }
        id
    }

    #[tokio::test]
    async fn when_the_owner_asks_for_a_tasks_events_should_page_them_in_order() {
        let f = fixture();
        let id = archived_lifecycle(&f).await;

        let path = format!("/tasks/{id}/events?limit=2");
        let (status, first) = call(&f, Some("alice"), Method::GET, &path, "").await;
        assert_eq!(status, 200, "{first}");
        let cursor = first["next_cursor"].as_str().expect("a second page");
        let path = format!("/tasks/{id}/events?limit=2&cursor={cursor}");
        let (status, second) = call(&f, Some("alice"), Method::GET, &path, "").await;
        assert_eq!(status, 200, "{second}");
        assert!(second["next_cursor"].is_null(), "{second}");

        let items: Vec<&Value> = first["items"]
            .as_array()
            .unwrap()
            .iter()
            .chain(second["items"].as_array().unwrap())
            .collect();
        let types: Vec<&str> = items.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            ["task.created.v1", "task.started.v1", "task.completed.v1"]
        );
        assert!(items.iter().all(|e| e["subject"] == id.as_str()));
        assert_eq!(items[2]["data"]["tokens_used"], 10);
    }

    #[tokio::test]
    async fn when_anyone_else_asks_for_a_tasks_events_should_not_find_it() {
        let f = fixture();
        let id = archived_lifecycle(&f).await;

        let path = format!("/tasks/{id}/events");
        let (status, body) = call(&f, Some("mallory"), Method::GET, &path, "").await;
        assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));

        // An operator reads any task's events on the dashboard's route, with the scope only.
        let path = format!("/dashboard/tasks/{id}/events");
        let (status, _) = call(&f, Some("mallory"), Method::GET, &path, "").await;
        assert_eq!(status, 403);
        let mut request = request(Some("mallory"), Method::GET, &path, "");
        request.headers_mut().insert(
            identity::SCOPES_HEADER,
            HeaderValue::from_static("orchestration/operator"),
        );
        let (status, _, body) = send(local(&f), request).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["items"].as_array().unwrap().len(), 3);

        let path = format!("/tasks/{id}/events?cursor=not-one-of-ours");
        let (status, body) = call(&f, Some("alice"), Method::GET, &path, "").await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("cursor")),
            "{body}"
        );
    }

    #[tokio::test]
    async fn when_stats_are_asked_should_serve_the_dashboard_counters() {
        let f = fixture();
        let (_, event) = fixtures::created("t");
        f.dashboard.apply(&event).await.unwrap();

        let mut request = request(Some("alice"), Method::GET, "/dashboard/stats", "");
        request.headers_mut().insert(
            identity::SCOPES_HEADER,
            HeaderValue::from_static("openid orchestration/operator"),
        );
        let (status, _, stats) = send(local(&f), request).await;

        assert_eq!(status, 200, "{stats}");
        assert_eq!(stats["tasks_total"], 1);
        assert_eq!(stats["by_status"]["Pending"], 1);
        assert!(stats["success_rate"].is_null());
        let minutes = stats["events_per_minute"].as_array().unwrap();
        assert_eq!(minutes.len(), 60);
        let created: u64 = minutes
            .iter()
            .map(|m| m["counts"]["TaskCreated"].as_u64().unwrap())
            .sum();
        assert_eq!(created, 1);
        assert!(minutes.iter().all(|m| m["counts"]["TaskCompleted"] == 0));
    }

    #[tokio::test]
    async fn when_the_dashboard_page_is_asked_for_without_identity_should_serve_it() {
        // Given no caller identity at all
        let f = fixture();

        // When the page is asked for
        let response = local(&f)
            .oneshot(request(None, Method::GET, "/dashboard", ""))
            .await
            .unwrap();

        // Then it is served, under its policy, while its data still needs an identity
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8"
        );
        assert_eq!(
            response.headers()["content-security-policy"],
            page::CONTENT_SECURITY_POLICY
        );
        let (status, body) = call(&f, None, Method::GET, "/dashboard/stats", "").await;
        assert_eq!(status, 401, "{body}");
        let (status, _) = call(&f, None, Method::POST, "/dashboard", "").await;
        assert_eq!(status, 405);
        let (status, _, identity) = send(
            local(&f),
            request(None, Method::GET, "/dashboard/identity.json", ""),
        )
        .await;
        assert_eq!((status, identity["scheme"].as_str()), (200, Some("bearer")));
    }

    #[tokio::test]
    async fn when_stats_are_asked_without_the_operator_scope_should_answer_403() {
        let f = fixture();
        let mut request = request(Some("alice"), Method::GET, "/dashboard/stats", "");
        request.headers_mut().insert(
            identity::SCOPES_HEADER,
            HeaderValue::from_static("openid orchestration/operators"),
        );

        let (status, _, body) = send(local(&f), request).await;

        assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
        let (status, _) = call(&f, Some("alice"), Method::GET, "/dashboard/stats", "").await;
        assert_eq!(status, 403);
    }

    #[tokio::test]
    async fn when_no_route_matches_should_answer_404_or_405_with_allow() {
        let f = fixture();
        let id = Uuid::new_v4();
        let cases = [
            (Method::GET, "/nothing".to_owned(), 404, "not_found"),
            (Method::POST, format!("/tasks/{id}/pause"), 404, "not_found"),
            (
                Method::DELETE,
                "/tasks".to_owned(),
                405,
                "method_not_allowed",
            ),
            (
                Method::GET,
                format!("/tasks/{id}/start"),
                405,
                "method_not_allowed",
            ),
            (
                Method::PUT,
                format!("/tasks/{id}"),
                405,
                "method_not_allowed",
            ),
        ];
        for (method, path, status, code) in cases {
            let (got, headers, body) =
                send(local(&f), request(Some("alice"), method.clone(), &path, "")).await;
            assert_eq!(
                (got, body["error"].as_str()),
                (status, Some(code)),
                "{method} {path}"
            );
            if status == 405 {
                let allow = headers["allow"].to_str().unwrap();
                assert!(
                    !allow.contains(method.as_str()) && !allow.is_empty(),
                    "{allow}"
                );
            }
        }
        let (_, headers, _) =
            send(local(&f), request(Some("a"), Method::DELETE, "/tasks", "")).await;
        let allow = headers["allow"].to_str().unwrap();
        assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    }

    #[tokio::test]
    async fn when_the_document_is_asked_should_serve_openapi_3_1_without_identity() {
        let f = fixture();

        let (status, _, document) =
            send(local(&f), request(None, Method::GET, "/openapi.json", "")).await;

        assert_eq!(status, 200);
        assert!(
            document["openapi"].as_str().unwrap().starts_with("3.1"),
            "{}",
            document["openapi"]
        );
        for path in [
            "/tasks",
            "/tasks/{id}",
            "/tasks/{id}/classify",
            "/dashboard/stats",
        ] {
            assert!(document["paths"][path].is_object(), "{path} is missing");
        }
        assert_eq!(document, serde_json::to_value(openapi()).unwrap());
    }

    fn keyed(user: &str, path: &str, body: &str, key: &str) -> Request {
        let mut request = request(Some(user), Method::POST, path, body);
        request
            .headers_mut()
            .insert("idempotency-key", HeaderValue::from_str(key).unwrap());
        request
    }

    #[tokio::test]
    async fn when_a_create_is_repeated_with_its_key_should_answer_the_same_and_write_nothing() {
        let f = fixture();
        let body = r#"{"title":"Fix bug","description":"details"}"#;

        let (first_status, first_headers, first) =
            send(local(&f), keyed("alice", "/tasks", body, "create-1")).await;
        let (again_status, again_headers, again) =
            send(local(&f), keyed("alice", "/tasks", body, "create-1")).await;

        assert_eq!((first_status, again_status), (201, 201), "{again}");
        assert_eq!(first, again);
        assert_eq!(first_headers["location"], again_headers["location"]);
        assert_eq!(again_headers["idempotent-replayed"], "true");
        assert!(first_headers.get("idempotent-replayed").is_none());
        assert_eq!(f.store.task_count(), 1);
        assert_eq!(f.publisher.published().len(), 1);
        // Another caller's equal key is another key.
        let (status, _, other) = send(local(&f), keyed("bob", "/tasks", body, "create-1")).await;
        assert_eq!(status, 201);
        assert_ne!(other["id"], first["id"]);
    }

    #[tokio::test]
    async fn when_a_key_is_reused_for_another_request_should_answer_422_and_write_nothing() {
        let f = fixture();
        let id = created(&f).await;
        let start = format!("/tasks/{id}/classify");
        let body = r#"{"task_type":"BugFix","complexity":"Simple"}"#;
        let (status, _, _) = send(local(&f), keyed("alice", &start, body, "k")).await;
        assert_eq!(status, 200);

        let other = r#"{"task_type":"Feature","complexity":"Simple"}"#;
        let (status, _, err) = send(local(&f), keyed("alice", &start, other, "k")).await;
        let (elsewhere, _, _) = send(
            local(&f),
            keyed("alice", "/tasks", r#"{"title":"t","description":""}"#, "k"),
        )
        .await;

        assert_eq!(
            (status, err["error"].as_str()),
            (422, Some("idempotency_key_reused"))
        );
        assert_eq!(elsewhere, 422);
        let (_, task) = call(&f, Some("alice"), Method::GET, &format!("/tasks/{id}"), "").await;
        assert_eq!(
            (task["task_type"].as_str(), task["version"].as_u64()),
            (Some("BugFix"), Some(2))
        );
        assert_eq!(f.store.task_count(), 1);
    }

    #[tokio::test]
    async fn when_the_first_request_still_runs_should_answer_409_request_in_progress() {
        let f = fixture();
        let body = r#"{"title":"t","description":"d"}"#;
        let print = crate::idempotency::fingerprint(&Method::POST, "/tasks", body.as_bytes());
        let claimed = f
            .deps
            .request_keys
            .begin("5:alice#slow", &print, chrono::Utc::now())
            .await
            .unwrap();
        assert!(matches!(claimed, crate::idempotency::Begin::Proceed { .. }));

        let (status, _, err) = send(local(&f), keyed("alice", "/tasks", body, "slow")).await;

        assert_eq!(
            (status, err["error"].as_str()),
            (409, Some("request_in_progress"))
        );
        assert_eq!(f.store.task_count(), 0);
    }

    #[tokio::test]
    async fn when_a_keyed_request_fails_on_the_server_should_let_the_retry_run() {
        let f = fixture();
        let body = r#"{"title":"t","description":"d"}"#;
        f.store.set_down(true);
        let (status, _, _) = send(local(&f), keyed("alice", "/tasks", body, "retry-me")).await;
        assert_eq!(status, 500);
        f.store.set_down(false);

        let (status, headers, _) =
            send(local(&f), keyed("alice", "/tasks", body, "retry-me")).await;

        assert_eq!(status, 201);
        assert!(headers.get("idempotent-replayed").is_none());
        assert_eq!(f.store.task_count(), 1);
    }

    #[tokio::test]
    async fn when_a_key_is_malformed_should_answer_400_naming_the_header() {
        let f = fixture();
        let long = "k".repeat(256);
        for key in ["", "has space", long.as_str()] {
            let (status, _, err) = send(
                local(&f),
                keyed("alice", "/tasks", r#"{"title":"t","description":""}"#, key),
            )
            .await;
            assert_eq!(
                (status, err["field"].as_str()),
                (400, Some("Idempotency-Key")),
                "{key:?}: {err}"
            );
        }
        assert_eq!(f.store.task_count(), 0);
    }

    #[tokio::test]
    async fn when_a_page_holds_the_largest_tasks_should_stay_under_lambdas_6_mb_answer() {
        // Given 100 tasks whose every text is as long as allowed, in the characters that
        // take the most bytes: four-byte ones, and backslashes (two bytes in the body,
        // four once Lambda's answer wraps the body in a JSON string)
        let f = fixture();
        let wide = |n: usize| "\u{1d11e}".repeat(n);
        let body = serde_json::json!({"title": wide(200), "description": "\\".repeat(10_000)});
        for _ in 0..100 {
            let (status, task) =
                call(&f, Some("alice"), Method::POST, "/tasks", &body.to_string()).await;
            assert_eq!(status, 201, "{task}");
            let id = task["id"].as_str().unwrap();
            for (action, body) in [
                (
                    "classify",
                    json!({"task_type": "BugFix", "complexity": "Epic"}),
                ),
                ("start", json!({"strategy": "MultiAgent"})),
                (
                    "fail",
                    json!({"error_message": wide(4_000), "tokens_used": 1_000_000_000_000u64, "cost_usd": 999_999.999_999_999}),
                ),
            ] {
                let path = format!("/tasks/{id}/{action}");
                let (status, task) =
                    call(&f, Some("alice"), Method::POST, &path, &body.to_string()).await;
                assert_eq!(status, 200, "{action}: {task}");
            }
        }

        // When alice lists them all on one page
        let response = local(&f)
            .oneshot(request(Some("alice"), Method::GET, "/tasks?limit=100", ""))
            .await
            .unwrap();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();

        // Then the page, even as the string Lambda's answer carries, stays under 6 MB
        let page: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(page["items"].as_array().unwrap().len(), 100);
        let as_lambda_answer = serde_json::to_string(std::str::from_utf8(&bytes).unwrap()).unwrap();
        let limit = 6 * 1024 * 1024 - 4 * 1024; // room for the answer's status and headers
        assert!(
            as_lambda_answer.len() < limit,
            "{} bytes in Lambda's answer",
            as_lambda_answer.len()
        );
    }

    /// The router as Lambda runs it, on stage `dev`.
    fn lambda(f: &Fixture) -> Router {
        staged(
            router(f.deps.clone()).layer(middleware::from_fn(identity::authorizer)),
            Some("dev"),
        )
    }

    /// An HTTP API (payload 2.0) event as API Gateway sends it on stage `dev`.
    fn gateway_event(
        method: &str,
        path: &str,
        body: Option<&str>,
        claims: Option<Value>,
    ) -> lambda_http::Request {
        let mut context = json!({
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
            "domainPrefix": "api", "http": {"method": method, "path": format!("/dev{path}"),
            "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "test"},
            "requestId": "r", "routeKey": format!("{method} {path}"), "stage": "dev",
            "time": "27/Nov/2026:10:00:00 +0000", "timeEpoch": 1795000000000u64,
        });
        if let Some(claims) = claims {
            context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
        }
        let event = json!({
            "version": "2.0", "routeKey": format!("{method} {path}"), "rawPath": format!("/dev{path}"),
            "rawQueryString": "", "headers": {"content-type": "application/json", "x-user-id": "mallory"},
            "requestContext": context, "body": body, "isBase64Encoded": false,
        });
        lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway event")
    }

    #[tokio::test]
    async fn when_api_gateway_calls_on_a_named_stage_should_route_and_locate_under_it() {
        let f = fixture();
        let request = gateway_event(
            "POST",
            "/tasks",
            Some(r#"{"title":"t","description":"d"}"#),
            Some(json!({"sub": "alice"})),
        );

        let (status, headers, task) = decode(lambda(&f).oneshot(request).await.unwrap()).await;

        assert_eq!(status, 201);
        let location = headers["location"].to_str().unwrap();
        assert!(location.starts_with("/dev/tasks/"), "{location}");
        assert_eq!(task["user_id"], "alice");
    }

    #[tokio::test]
    async fn when_no_jwt_claims_arrive_should_answer_401_whatever_the_headers_say() {
        let f = fixture();
        let request = gateway_event("GET", "/tasks", None, None);
        assert_eq!(
            identity::from_authorizer(&request),
            None,
            "X-User-Id must not count as identity in Lambda"
        );

        let (status, _, _) = decode(lambda(&f).oneshot(request).await.unwrap()).await;

        assert_eq!(status, 401);
    }
}
