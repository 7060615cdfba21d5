use axum::http::Method;
use futures::future::join_all;
use serde_json::Value;
use tests::{call, call_with, TestEnv};

const BODY: &str = r#"{"title":"Pay once","description":"retried after a timeout"}"#;

async fn create(deps: &task_api::Deps, user: &str, key: &str, body: &str) -> (u16, Value) {
    call_with(
        deps,
        Some(user),
        Method::POST,
        "/tasks",
        body,
        &[("idempotency-key", key)],
    )
    .await
}

#[tokio::test]
async fn when_a_create_is_replayed_with_its_key_should_keep_one_task_and_answer_alike() {
    // Given a task created with a key, through the DynamoDB keys table
    let env = TestEnv::new("idempotent-create").await;
    let deps = env.deps();
    let (status, first) = create(&deps, "alice", "order-7", BODY).await;
    assert_eq!(status, 201, "{first}");

    // When the client replays it twice, and once with another body
    let (again, replayed) = create(&deps, "alice", "order-7", BODY).await;
    let (third, replayed_again) = create(&deps, "alice", "order-7", BODY).await;
    let (reused, err) = create(
        &deps,
        "alice",
        "order-7",
        r#"{"title":"x","description":""}"#,
    )
    .await;

    // Then the replays answer the first task, the other body is refused,
    // and the listing holds one task
    assert_eq!((again, third), (201, 201));
    assert_eq!(replayed, first);
    assert_eq!(replayed_again, first);
    assert_eq!(
        (reused, err["error"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    let (_, page) = call(&deps, Some("alice"), Method::GET, "/tasks", "").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["id"], first["id"]);
    env.teardown().await;
}

#[tokio::test]
async fn when_racing_requests_share_a_key_should_create_one_task() {
    // Given eight concurrent creates with one key
    let env = TestEnv::new("idempotent-race").await;
    let deps = env.deps();

    // When they race
    let answers = join_all((0..8).map(|_| create(&deps, "alice", "race", BODY))).await;

    // Then each got the task or was told the first still runs, and one task exists
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, task)| task)
        .collect();
    assert!(!created.is_empty(), "{answers:?}");
    assert!(
        created.iter().all(|task| task["id"] == created[0]["id"]),
        "{answers:?}"
    );
    for (status, body) in &answers {
        assert!(
            *status == 201 || (*status == 409 && body["error"] == "request_in_progress"),
            "{status} {body}"
        );
    }
    let (_, page) = call(&deps, Some("alice"), Method::GET, "/tasks", "").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    env.teardown().await;
}
