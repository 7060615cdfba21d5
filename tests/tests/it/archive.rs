//! The event archive: every event kept once as it was published, and a task's timeline
//! served from it to its owner only.

use std::time::Duration;

use lambda_http::http::Method;
use serde_json::Value;
use shared::events::EventEnvelope;
use shared::ports::EventPublisher;
use tests::{act, call, classified, create_task, eventually, TestEnv};

const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn when_a_task_runs_its_events_should_be_archived_once_and_served_in_order() {
    // Given the consumers running and a task driven to completion
    let env = TestEnv::new("archive").await;
    let _consumers = env.start_consumers(None, Duration::from_secs(1)).await;
    let deps = env.deps();
    let id = create_task(&deps, "alice", "Fix the login bug").await;
    classified(&deps, "alice", &id).await;
    assert_eq!(
        act(&deps, "alice", &id, "start", r#"{"strategy":"Iterative"}"#)
            .await
            .0,
        200
    );
    let complete = r#"{"tokens_used":900,"cost_usd":0.3}"#;
    assert_eq!(act(&deps, "alice", &id, "complete", complete).await.0, 200);

    // When its owner asks for its events
    let path = format!("/tasks/{id}/events");
    let timeline = eventually(PATIENCE, "three archived events", || async {
        let (status, page) = call(&deps, Some("alice"), Method::GET, &path, "").await;
        assert_eq!(status, 200, "{page}");
        (page["items"].as_array().map(Vec::len) == Some(3)).then_some(page)
    })
    .await;

    // Then they come in sequence order, as CloudEvents, and nobody else finds them
    let items = timeline["items"].as_array().unwrap();
    let types: Vec<&str> = items.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["task.created.v1", "task.started.v1", "task.completed.v1"]
    );
    let sequences: Vec<&str> = items
        .iter()
        .map(|e| e["sequence"].as_str().unwrap())
        .collect();
    assert_eq!(
        sequences,
        [
            "00000000000000000001",
            "00000000000000000002",
            "00000000000000000003"
        ]
    );
    assert_eq!(items[2]["data"]["tokens_used"], 900);
    let (status, _) = call(&deps, Some("mallory"), Method::GET, &path, "").await;
    assert_eq!(status, 404);

    // And when the first event is delivered twice more, it is still kept once
    let created = EventEnvelope::from_json(&items[0].to_string()).unwrap();
    for _ in 0..2 {
        env.publisher().publish(&created).await.unwrap();
    }
    let queue = env.queue_url("EventArchive");
    eventually(PATIENCE, "the archive's queue to drain", || async {
        (env.queue_depth(&queue).await == 0).then_some(())
    })
    .await;
    let (_, again) = call(&deps, Some("alice"), Method::GET, &path, "").await;
    assert_eq!(again["items"].as_array().unwrap().len(), 3, "{again}");
    let kept: Value = again["items"][0].clone();
    assert_eq!(kept, items[0]);
    env.teardown().await;
}
