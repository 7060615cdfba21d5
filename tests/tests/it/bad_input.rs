use std::time::Duration;

use integration_tests::{call, create_task, get_task, TestEnv};
use lambda_http::http::Method;

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
    // Given one classified task
    let env = TestEnv::new("badinput").await;
    let deps = env.deps();
    let id = create_task(&deps, "alice", "Existing").await;
    let classify = format!("/tasks/{id}/classify");
    let start = format!("/tasks/{id}/start");
    let complete = format!("/tasks/{id}/complete");
    let fail = format!("/tasks/{id}/fail");
    let oversized = format!(r#"{{"title":"t","description":"{}"}}"#, "x".repeat(70_000));
    let long_title = format!(r#"{{"title":"{}","description":"d"}}"#, "t".repeat(201));
    let long_description = format!(r#"{{"title":"t","description":"{}"}}"#, "d".repeat(10_001));

    // When bad requests arrive
    let cases: Vec<Case> = vec![
        (
            Some("alice"),
            Method::POST,
            "/tasks",
            "{\"title\":",
            400,
            None,
        ),
        (Some("alice"), Method::POST, "/tasks", "[1,2]", 400, None),
        (
            Some("alice"),
            Method::POST,
            "/tasks",
            r#"{"title":42,"description":"d"}"#,
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
            &long_title,
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
        (Some("alice"), Method::POST, "/tasks", &oversized, 413, None),
        (
            None,
            Method::POST,
            "/tasks",
            r#"{"title":"t","description":"d"}"#,
            401,
            None,
        ),
        (Some(" "), Method::GET, "/tasks", "", 401, None),
        (
            Some("alice"),
            Method::GET,
            "/tasks/123",
            "",
            400,
            Some("id"),
        ),
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
            r#"{"task_type":"Haiku","complexity":"Simple"}"#,
            400,
            Some("task_type"),
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
            &classify,
            r#"{"task_type":"BugFix"}"#,
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
        let (code, error) = call(&deps, user, method.clone(), path, body).await;
        // Then each gets its status and a JSON error naming the problem
        assert_eq!(code, status, "{method} {path} {body:.60}: {error}");
        assert!(
            error["error"].is_string() && error["message"].is_string(),
            "{error}"
        );
        assert_eq!(
            error["field"].as_str(),
            field,
            "{method} {path} {body:.60}: {error}"
        );
    }

    // And nothing was written or published beyond the first task
    assert_eq!(env.item_count().await, 1);
    let (_, task) = get_task(&deps, "alice", &id).await;
    assert_eq!(
        (task["version"].as_u64(), task["status"].as_str()),
        (Some(1), Some("Pending"))
    );
    let events = env
        .receive(&env.queue_url("Dashboard"), 1, Duration::from_secs(2))
        .await;
    assert_eq!(events.len(), 1);
    env.teardown().await;
}
