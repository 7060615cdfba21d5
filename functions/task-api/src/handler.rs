//! Adapts HTTP requests to the task use cases and their results to responses.

use std::sync::Arc;

use dashboard::DashboardStore;
use lambda_http::http::header::LOCATION;
use lambda_http::http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;
use shared::service::{Caller, TaskError, TaskService};
use shared::telemetry::{record_trace_id, remote_parent};
use tracing::field::Empty;
use tracing::{info_span, Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::errors::ApiError;
use crate::page;
use crate::requests::{self, CreateTask};
use crate::responses::{self, TaskView};
use crate::routes::{route, Route};

/// What the handler needs, built once per process.
#[derive(Clone)]
pub struct Deps {
    pub tasks: TaskService,
    pub dashboard: Arc<dyn DashboardStore>,
}

/// Serves one request for the caller `user_id` (the verified identity, if any), in a span
/// that continues the caller's trace.
pub async fn handle(deps: &Deps, user_id: Option<&str>, request: Request) -> Response<Body> {
    let request_id = request_id(&request);
    let span = request_span(&request, &request_id);
    let served = serve(deps, user_id, &request, &request_id)
        .instrument(span.clone())
        .await;
    let response = match served {
        Ok(response) => response,
        Err(err) if err.status >= 500 => responses::error(&ApiError {
            request_id: Some(request_id),
            ..err
        }),
        Err(err) => responses::error(&err),
    };
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
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
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The span of one request: a child of the trace its headers or Lambda name, or a new one.
fn request_span(request: &Request, request_id: &str) -> Span {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let lambda_xray = request
        .lambda_context_ref()
        .and_then(|context| context.xray_trace_id.as_deref());
    let method = request.method().as_str();
    let span = info_span!(
        "HTTP request",
        otel.name = %format!("{method} {}", request.uri().path()),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        url.path = request.uri().path(),
        http.response.status_code = Empty,
        task.id = Empty,
        trace_id = Empty,
        correlation_id = request_id,
    );
    if let Some(parent) = remote_parent(
        header("traceparent"),
        header("x-amzn-trace-id"),
        lambda_xray,
    ) {
        // Only an invalid context is refused, and `remote_parent` gives valid ones.
        let _ = span.set_parent(parent);
    }
    record_trace_id(&span);
    span
}

async fn serve(
    deps: &Deps,
    user_id: Option<&str>,
    request: &Request,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let (stage, path) = split_stage(request);
    // The dashboard page's files need no identity (its data requests do).
    if let Some(asset) = page::asset(request.method(), path) {
        return Ok(page::response(asset));
    }
    // As in AWS, where the authorizer runs first: no identity, no further answer.
    let caller = caller(user_id, request_id)?;
    let route = route(request.method(), path)?;
    let tasks = &deps.tasks;
    match route {
        Route::CreateTask => {
            let CreateTask { title, description } = requests::body(request)?;
            let task = tasks.create(&caller, title, description).await?;
            Span::current().record("task.id", tracing::field::display(task.id));
            let mut response = responses::json(StatusCode::CREATED, &TaskView::from(&task));
            let location = format!("{stage}/tasks/{}", task.id)
                .parse()
                .expect("a path is a valid header");
            response.headers_mut().insert(LOCATION, location);
            Ok(response)
        }
        Route::ListTasks => {
            let (limit, cursor) = requests::page(request)?;
            let page = tasks.list(&caller, limit, cursor.as_deref()).await?;
            let items: Vec<TaskView> = page.items.iter().map(TaskView::from).collect();
            Ok(responses::json(
                StatusCode::OK,
                &json!({"items": items, "next_cursor": page.next_cursor}),
            ))
        }
        Route::GetTask(id) => {
            Span::current().record("task.id", tracing::field::display(id));
            let task = tasks.get(&caller, id).await?;
            Ok(responses::json(StatusCode::OK, &TaskView::from(&task)))
        }
        Route::Transition(id, action) => {
            Span::current().record("task.id", tracing::field::display(id));
            let command = requests::command(action, request)?;
            let task = tasks.execute(&caller, id, command).await?;
            Ok(responses::json(StatusCode::OK, &TaskView::from(&task)))
        }
        Route::DashboardStats => {
            let stats = deps.dashboard.stats().await.map_err(TaskError::from)?;
            Ok(responses::json(StatusCode::OK, &stats))
        }
    }
}

/// The API stage's path prefix (empty on the `$default` stage) and the route's path.
/// API Gateway keeps a named stage in the path it passes on: `/dev/tasks`.
fn split_stage(request: &Request) -> (String, &str) {
    let path = match request.raw_http_path() {
        "" => request.uri().path(),
        raw => raw,
    };
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.as_deref(),
        _ => None,
    };
    if let Some(stage) = stage.filter(|stage| !stage.is_empty() && *stage != "$default") {
        let prefix = format!("/{stage}");
        if let Some(rest) = path.strip_prefix(&prefix) {
            if rest.is_empty() || rest.starts_with('/') {
                return (prefix, rest);
            }
        }
    }
    (String::new(), path)
}

fn caller(user_id: Option<&str>, request_id: &str) -> Result<Caller, ApiError> {
    let user_id = user_id
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    Ok(Caller {
        user_id: user_id.to_owned(),
        request_id: Some(request_id.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use dashboard::memory::MemoryDashboard;
    use lambda_http::aws_lambda_events::query_map::QueryMap;
    use lambda_http::http::{HeaderMap, Method};
    use serde_json::{json, Value};
    use shared::fixtures;
    use shared::memory::{MemoryStore, RecordingPublisher};

    use super::*;
    use crate::identity;

    struct Fixture {
        deps: Deps,
        store: Arc<MemoryStore>,
        publisher: Arc<RecordingPublisher>,
        dashboard: Arc<MemoryDashboard>,
    }

    fn fixture() -> Fixture {
        let store = Arc::new(MemoryStore::new());
        let publisher = Arc::new(RecordingPublisher::new());
        let dashboard = Arc::new(MemoryDashboard::default());
        let deps = Deps {
            tasks: TaskService::new(store.clone(), store.clone(), publisher.clone()),
            dashboard: dashboard.clone(),
        };
        Fixture {
            deps,
            store,
            publisher,
            dashboard,
        }
    }

    /// A request as the local server passes it on: the query string parsed.
    fn request(method: Method, path_and_query: &str, body: &str) -> Request {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut builder = lambda_http::http::Request::builder()
            .method(method)
            .uri(path);
        if !body.is_empty() {
            builder = builder.header("content-type", "application/json");
        }
        let query: QueryMap = query.parse().unwrap();
        builder
            .body(Body::from(body))
            .unwrap()
            .with_query_string_parameters(query)
    }

    /// The status, headers and JSON body of a response.
    fn decode(response: Response<Body>) -> (u16, HeaderMap, Value) {
        let status = response.status().as_u16();
        let body = match response.body() {
            Body::Text(text) => serde_json::from_str(text).unwrap(),
            other => panic!("unexpected body {other:?}"),
        };
        (status, response.headers().clone(), body)
    }

    async fn call(
        f: &Fixture,
        user: Option<&str>,
        method: Method,
        path: &str,
        body: &str,
    ) -> (u16, Value) {
        let (status, _, body) = decode(handle(&f.deps, user, request(method, path, body)).await);
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
    async fn when_task_is_created_should_answer_201_with_location_and_publish() {
        let f = fixture();
        let request = request(
            Method::POST,
            "/tasks",
            r#"{"title":"Fix bug","description":"details"}"#,
        );

        let (status, headers, body) = decode(handle(&f.deps, Some("alice"), request).await);

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

    #[tokio::test]
    async fn when_the_dashboard_page_is_asked_for_without_identity_should_serve_it() {
        // Given no caller identity at all
        let f = fixture();

        // When the page is asked for
        let response = handle(&f.deps, None, request(Method::GET, "/dashboard", "")).await;

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
        assert_eq!(status, 401);
    }

    #[tokio::test]
    async fn when_stats_are_asked_should_serve_the_dashboard_counters() {
        let f = fixture();
        let (_, event) = fixtures::created("t");
        f.dashboard.apply(&event).await.unwrap();

        let (status, stats) = call(&f, Some("alice"), Method::GET, "/dashboard/stats", "").await;

        assert_eq!(status, 200);
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

    /// An HTTP API (payload 2.0) event as API Gateway sends it on stage `dev`.
    fn gateway_event(
        method: &str,
        path: &str,
        body: Option<&str>,
        claims: Option<Value>,
    ) -> Request {
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
        let user = identity::from_authorizer(&request);

        let (status, headers, task) = decode(handle(&f.deps, user.as_deref(), request).await);

        assert_eq!(status, 201);
        let location = headers["location"].to_str().unwrap();
        assert!(location.starts_with("/dev/tasks/"), "{location}");
        assert_eq!(task["user_id"], "alice");
    }

    #[tokio::test]
    async fn when_no_jwt_claims_arrive_should_answer_401_whatever_the_headers_say() {
        let f = fixture();
        let request = gateway_event("GET", "/tasks", None, None);
        let user = identity::from_authorizer(&request);
        assert_eq!(user, None, "X-User-Id must not count as identity in Lambda");

        let (status, _, _) = decode(handle(&f.deps, user.as_deref(), request).await);

        assert_eq!(status, 401);
    }
}
