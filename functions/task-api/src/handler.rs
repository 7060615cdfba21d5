//! Adapts HTTP requests to the task use cases and their results to responses.

use std::sync::Arc;

use aws_config::SdkConfig;
use lambda_http::http::header::LOCATION;
use lambda_http::http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use orchestration::adapters::{clients, DynamoDashboardStore, DynamoTaskStore, SnsPublisher};
use orchestration::config::{self, ConfigError};
use orchestration::dashboard::DashboardStore;
use orchestration::events::traceparent;
use orchestration::retry::Backoff;
use orchestration::service::{Caller, TaskError, TaskService};
use serde_json::json;

use crate::errors::ApiError;
use crate::requests::{self, CreateTask};
use crate::responses::{self, TaskView};
use crate::routes::{route, Route};

/// What the handler needs, built once per process.
#[derive(Clone)]
pub struct Deps {
    pub tasks: TaskService,
    pub dashboard: Arc<dyn DashboardStore>,
}

impl Deps {
    /// Wires the handler over AWS from `TASKS_TABLE`, `EVENTS_TOPIC_ARN` and `DASHBOARD_TABLE`.
    pub fn from_env(aws: &SdkConfig) -> Result<Self, ConfigError> {
        let table = config::required("TASKS_TABLE")?;
        let topic_arn = config::required("EVENTS_TOPIC_ARN")?;
        let dashboard_table = config::required("DASHBOARD_TABLE")?;
        orchestration::metrics::init_from_env();
        let backoff = Backoff::default();
        let store = Arc::new(DynamoTaskStore::new(clients::dynamodb(aws), table));
        let publisher = Arc::new(SnsPublisher::new(
            clients::sns(aws, &backoff),
            topic_arn,
            backoff,
        ));
        Ok(Deps {
            tasks: TaskService::new(store.clone(), store, publisher),
            dashboard: Arc::new(DynamoDashboardStore::new(
                clients::dynamodb(aws),
                dashboard_table,
            )),
        })
    }
}

/// Serves one request for the caller `user_id` (the verified identity, if any).
pub async fn handle(deps: &Deps, user_id: Option<&str>, request: Request) -> Response<Body> {
    match serve(deps, user_id, &request).await {
        Ok(response) => response,
        Err(err) => responses::error(&err),
    }
}

async fn serve(
    deps: &Deps,
    user_id: Option<&str>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    // As in AWS, where the authorizer runs first: no identity, no further answer.
    let caller = caller(user_id, request)?;
    let (stage, path) = split_stage(request);
    let route = route(request.method(), path)?;
    let tasks = &deps.tasks;
    match route {
        Route::CreateTask => {
            let CreateTask { title, description } = requests::body(request)?;
            let task = tasks.create(&caller, title, description).await?;
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
            let task = tasks.get(&caller, id).await?;
            Ok(responses::json(StatusCode::OK, &TaskView::from(&task)))
        }
        Route::Transition(id, action) => {
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

fn caller(user_id: Option<&str>, request: &Request) -> Result<Caller, ApiError> {
    let user_id = user_id
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    Ok(Caller {
        user_id: user_id.to_owned(),
        traceparent: traceparent(header("traceparent"), header("x-amzn-trace-id")),
    })
}

#[cfg(test)]
mod tests {
    use lambda_http::http::Method;
    use orchestration::memory::{MemoryDashboard, MemoryStore, RecordingPublisher};
    use serde_json::Value;

    use super::*;

    struct Fixture {
        deps: Deps,
        store: Arc<MemoryStore>,
        publisher: Arc<RecordingPublisher>,
    }

    fn fixture() -> Fixture {
        let store = Arc::new(MemoryStore::new());
        let publisher = Arc::new(RecordingPublisher::new());
        let deps = Deps {
            tasks: TaskService::new(store.clone(), store.clone(), publisher.clone()),
            dashboard: Arc::new(MemoryDashboard::default()),
        };
        Fixture {
            deps,
            store,
            publisher,
        }
    }

    fn request(method: Method, path: &str, body: &str) -> Request {
        let mut builder = lambda_http::http::Request::builder()
            .method(method)
            .uri(path);
        if !body.is_empty() {
            builder = builder.header("content-type", "application/json");
        }
        builder.body(Body::from(body)).unwrap()
    }

    async fn call(
        f: &Fixture,
        user: Option<&str>,
        method: Method,
        path: &str,
        body: &str,
    ) -> (u16, Value) {
        let response = handle(&f.deps, user, request(method, path, body)).await;
        let status = response.status().as_u16();
        let body = match response.body() {
            Body::Text(text) => serde_json::from_str(text).unwrap(),
            other => panic!("unexpected body {other:?}"),
        };
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
        let response = handle(
            &f.deps,
            Some("alice"),
            request(
                Method::POST,
                "/tasks",
                r#"{"title":"Fix bug","description":"details"}"#,
            ),
        )
        .await;
        assert_eq!(response.status(), 201);
        let body: Value = match response.body() {
            Body::Text(text) => serde_json::from_str(text).unwrap(),
            other => panic!("{other:?}"),
        };
        let id = body["id"].as_str().unwrap();
        assert_eq!(
            response.headers()["location"],
            format!("/tasks/{id}").as_str()
        );
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
            let (code, task) = call(
                &f,
                Some("alice"),
                Method::POST,
                &format!("/tasks/{id}/{action}"),
                body,
            )
            .await;
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
    type Case = (
        Option<&'static str>,
        Method,
        String,
        String,
        u16,
        Option<&'static str>,
    );

    #[tokio::test]
    async fn when_input_is_bad_should_answer_4xx_naming_the_problem_and_write_nothing() {
        let f = fixture();
        let id = created(&f).await;
        let big = format!(
            r#"{{"title":"t","description":"{}"}}"#,
            "x".repeat(MAX_BODY)
        );
        let cases: Vec<Case> = vec![
            (
                Some("alice"),
                Method::POST,
                "/tasks".into(),
                "{not json".into(),
                400,
                None,
            ),
            (
                Some("alice"),
                Method::POST,
                "/tasks".into(),
                "".into(),
                400,
                None,
            ),
            (
                Some("alice"),
                Method::POST,
                "/tasks".into(),
                r#"{"title":5,"description":"d"}"#.into(),
                400,
                Some("title"),
            ),
            (
                Some("alice"),
                Method::POST,
                "/tasks".into(),
                r#"{"description":"d"}"#.into(),
                400,
                Some("title"),
            ),
            (
                Some("alice"),
                Method::POST,
                "/tasks".into(),
                r#"{"title":"t","description":"d","owner":"x"}"#.into(),
                400,
                Some("owner"),
            ),
            (
                Some("alice"),
                Method::POST,
                "/tasks".into(),
                r#"{"title":"","description":"d"}"#.into(),
                400,
                Some("title"),
            ),
            (
                Some("alice"),
                Method::POST,
                "/tasks".into(),
                format!(r#"{{"title":"{}","description":"d"}}"#, "t".repeat(201)),
                400,
                Some("title"),
            ),
            (Some("alice"), Method::POST, "/tasks".into(), big, 413, None),
            (
                None,
                Method::POST,
                "/tasks".into(),
                r#"{"title":"t","description":"d"}"#.into(),
                401,
                None,
            ),
            (
                Some("alice"),
                Method::GET,
                "/tasks/not-a-uuid".into(),
                "".into(),
                400,
                Some("id"),
            ),
            (
                Some("alice"),
                Method::POST,
                format!("/tasks/{id}/classify"),
                r#"{"task_type":"Poetry","complexity":"Simple"}"#.into(),
                400,
                Some("task_type"),
            ),
            (
                Some("alice"),
                Method::POST,
                format!("/tasks/{id}/classify"),
                r#"{"task_type":"BugFix"}"#.into(),
                400,
                Some("complexity"),
            ),
            (
                Some("alice"),
                Method::GET,
                "/tasks?limit=0".into(),
                "".into(),
                400,
                Some("limit"),
            ),
            (
                Some("alice"),
                Method::GET,
                "/tasks?limit=abc".into(),
                "".into(),
                400,
                Some("limit"),
            ),
        ];
        for (user, method, path, body, status, field) in cases {
            let mut req = request(method.clone(), &path, &body);
            if let Some(query) = path.split_once('?').map(|(_, q)| q) {
                let map: lambda_http::aws_lambda_events::query_map::QueryMap =
                    query.parse().unwrap();
                req = req.with_query_string_parameters(map);
            }
            let response = handle(&f.deps, user, req).await;
            let code = response.status().as_u16();
            let json: Value = match response.body() {
                Body::Text(text) => serde_json::from_str(text).unwrap(),
                other => panic!("{other:?}"),
            };
            assert_eq!(code, status, "{method} {path} {body:.80}: {json}");
            assert!(
                json["error"].is_string() && json["message"].is_string(),
                "{json}"
            );
            assert_eq!(json["field"].as_str(), field, "{method} {path}: {json}");
        }
        assert_eq!(f.store.task_count(), 1);
        assert_eq!(f.publisher.published().len(), 1);
    }

    const MAX_BODY: usize = crate::requests::MAX_BODY_BYTES;

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
    async fn when_listing_should_page_newest_first() {
        let f = fixture();
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(created(&f).await);
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let mut req = request(Method::GET, "/tasks", "");
        let map: lambda_http::aws_lambda_events::query_map::QueryMap = "limit=2".parse().unwrap();
        req = req.with_query_string_parameters(map);
        let response = handle(&f.deps, Some("alice"), req).await;
        let page: Value = match response.body() {
            Body::Text(text) => serde_json::from_str(text).unwrap(),
            other => panic!("{other:?}"),
        };
        let listed: Vec<_> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(listed, [ids[2].clone(), ids[1].clone()]);
        assert!(page["next_cursor"].is_string());
    }
}

#[cfg(test)]
mod stats_tests {
    use lambda_http::http::Method;
    use orchestration::domain::{NewTask, Task};
    use orchestration::memory::{MemoryDashboard, MemoryStore, RecordingPublisher};

    use super::*;

    #[tokio::test]
    async fn when_stats_are_asked_should_serve_the_dashboard_counters() {
        let store = Arc::new(MemoryStore::new());
        let dashboard = Arc::new(MemoryDashboard::default());
        let input = NewTask {
            user_id: "u".into(),
            title: "t".into(),
            description: String::new(),
        };
        let event = Task::create(input, orchestration::time::now())
            .unwrap()
            .event
            .unwrap();
        dashboard.apply(&event).await.unwrap();
        let deps = Deps {
            tasks: TaskService::new(store.clone(), store, Arc::new(RecordingPublisher::new())),
            dashboard,
        };
        let request = lambda_http::http::Request::builder()
            .method(Method::GET)
            .uri("/dashboard/stats")
            .body(Body::Empty)
            .unwrap();

        let response = handle(&deps, Some("alice"), request).await;

        assert_eq!(response.status(), 200);
        let Body::Text(text) = response.body() else {
            panic!("no body")
        };
        let stats: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(stats["tasks_total"], 1);
        assert_eq!(stats["by_status"]["Pending"], 1);
        assert!(stats["success_rate"].is_null());
    }
}

#[cfg(test)]
mod lambda_tests {
    use std::sync::Arc;

    use orchestration::memory::{MemoryDashboard, MemoryStore, RecordingPublisher};
    use serde_json::{json, Value};

    use super::*;
    use crate::identity;

    /// An HTTP API (payload 2.0) event as API Gateway sends it on stage `dev`.
    fn event(method: &str, path: &str, body: Option<&str>, claims: Option<Value>) -> Request {
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

    fn deps() -> Deps {
        let store = Arc::new(MemoryStore::new());
        Deps {
            tasks: TaskService::new(store.clone(), store, Arc::new(RecordingPublisher::new())),
            dashboard: Arc::new(MemoryDashboard::default()),
        }
    }

    #[tokio::test]
    async fn when_api_gateway_calls_on_a_named_stage_should_route_and_locate_under_it() {
        let deps = deps();
        let request = event(
            "POST",
            "/tasks",
            Some(r#"{"title":"t","description":"d"}"#),
            Some(json!({"sub": "alice"})),
        );
        let user = identity::from_authorizer(&request);

        let response = handle(&deps, user.as_deref(), request).await;

        assert_eq!(response.status(), 201);
        let location = response.headers()["location"].to_str().unwrap();
        assert!(location.starts_with("/dev/tasks/"), "{location}");
        let Body::Text(text) = response.body() else {
            panic!("no body")
        };
        let task: Value = serde_json::from_str(text).unwrap();
        assert_eq!(task["user_id"], "alice");
    }

    #[tokio::test]
    async fn when_no_jwt_claims_arrive_should_answer_401_whatever_the_headers_say() {
        let request = event("GET", "/tasks", None, None);
        let user = identity::from_authorizer(&request);
        assert_eq!(user, None, "X-User-Id must not count as identity in Lambda");

        let response = handle(&deps(), user.as_deref(), request).await;

        assert_eq!(response.status(), 401);
    }
}
