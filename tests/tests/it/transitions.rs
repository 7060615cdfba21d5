use std::time::Duration;

use shared::domain::{ExecutionStrategy, Task};
use shared::events::EventEnvelope;
use shared::ports::{StoreError, TaskStore};
use tests::{act, create_task, get_task, TestEnv};

#[tokio::test]
async fn when_transitions_are_invalid_should_answer_409_write_nothing_and_publish_nothing() {
    // Given a pending task
    let env = TestEnv::new("invalid").await;
    let deps = env.deps();
    let id = create_task(&deps, "alice", "Refactor parser").await;

    // When it is started, completed or failed before being classified
    let attempts = [
        ("start", r#"{"strategy":"SingleShot"}"#),
        ("complete", r#"{"tokens_used":1,"cost_usd":0.1}"#),
        ("fail", r#"{"error_message":"nope"}"#),
    ];
    for (action, body) in attempts {
        let (status, error) = act(&deps, "alice", &id, action, body).await;
        // Then each is refused with a JSON error
        assert_eq!(status, 409, "{action}: {error}");
        assert_eq!(error["error"], "invalid_transition");
        assert!(
            error["message"].as_str().unwrap().contains("Pending"),
            "{error}"
        );
    }

    // And the task is unchanged and only its creation was published
    let (_, task) = get_task(&deps, "alice", &id).await;
    assert_eq!(
        (task["version"].as_u64(), task["status"].as_str()),
        (Some(1), Some("Pending"))
    );
    let events = env
        .receive(&env.queue_url("Dashboard"), 1, Duration::from_secs(2))
        .await;
    let kinds: Vec<_> = events.iter().map(|e| e.kind().name()).collect();
    assert_eq!(kinds, ["TaskCreated"]);
    env.teardown().await;
}

#[tokio::test]
async fn when_a_transition_was_computed_from_a_stale_version_should_conflict_and_write_nothing() {
    // Given a classified task read by two writers
    let env = TestEnv::new("stale").await;
    let deps = env.deps();
    let id = create_task(&deps, "alice", "Write tests").await;
    act(
        &deps,
        "alice",
        &id,
        "classify",
        r#"{"task_type":"Test","complexity":"Simple"}"#,
    )
    .await;
    let store = env.store();
    let read: Task = store.get(id.parse().unwrap()).await.unwrap().unwrap();

    // When the first writer starts it through the API and the second writes its own start
    let (status, _) = act(&deps, "alice", &id, "start", r#"{"strategy":"SingleShot"}"#).await;
    assert_eq!(status, 200);
    let stale = read
        .start(ExecutionStrategy::MultiAgent, shared::time::now())
        .unwrap();
    let event = EventEnvelope::emitted(&stale.task, stale.event.clone().unwrap(), None);
    let result = store.apply(&read, &stale.task, Some(&event)).await;

    // Then the second write is a conflict and the first one stands
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    let (_, task) = get_task(&deps, "alice", &id).await;
    assert_eq!(task["strategy"], "SingleShot");
    assert_eq!(task["version"], 3);
    let started = env
        .receive(&env.queue_url("Dashboard"), 2, Duration::from_secs(2))
        .await;
    assert_eq!(
        started
            .iter()
            .filter(|e| e.kind().name() == "TaskStarted")
            .count(),
        1
    );
    env.teardown().await;
}

#[tokio::test]
async fn when_another_user_asks_for_a_task_should_answer_404_and_change_nothing() {
    let env = TestEnv::new("owner").await;
    let deps = env.deps();
    let id = create_task(&deps, "alice", "Deploy").await;

    let (status, error) = get_task(&deps, "mallory", &id).await;
    assert_eq!((status, error["error"].as_str()), (404, Some("not_found")));
    let (status, _) = act(
        &deps,
        "mallory",
        &id,
        "classify",
        r#"{"task_type":"Deployment","complexity":"Simple"}"#,
    )
    .await;
    assert_eq!(status, 404);

    let (_, task) = get_task(&deps, "alice", &id).await;
    assert_eq!(task["status"], "Pending");
    env.teardown().await;
}
