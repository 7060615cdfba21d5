//! The routes through the router as the local server runs it, over the in-memory fakes.

use axum::body::to_bytes;
use axum::http::{HeaderValue, Method};
use dashboard::DashboardStore;
use serde_json::{json, Value};
use shared::fixtures;
use tower::ServiceExt;

use crate::identity;
use crate::testing::{call, created, fixture, local, request, send, Fixture};

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
