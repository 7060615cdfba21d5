use std::time::Duration;

use shared::adapters::{clients, DEFAULT_OUTBOX_SHARDS};
use shared::ports::Outbox;
use tests::{act, create_task, fast, TestEnv};

async fn assert_recovers(env: &TestEnv, deps: task_api::Deps) {
    // When a task is created and started while publishing fails
    let id = create_task(&deps, "alice", "Survive an outage").await;
    let (status, _) = act(
        &deps,
        "alice",
        &id,
        "classify",
        r#"{"task_type":"BugFix","complexity":"Simple"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let (status, task) = act(&deps, "alice", &id, "start", r#"{"strategy":"SingleShot"}"#).await;

    // Then the transitions commit and their events wait in the outbox
    assert_eq!((status, task["status"].as_str()), (200, Some("InProgress")));
    let task_id = id.parse().unwrap();
    let pending = env.store().pending(task_id).await.unwrap();
    let kinds: Vec<_> = pending.events.iter().map(|e| e.kind().name()).collect();
    assert_eq!(kinds, ["TaskCreated", "TaskStarted"]);
    let marker = env.item(&id).await["outbox_pending"]
        .as_s()
        .unwrap()
        .clone();
    let shard: u32 = marker.strip_prefix("PENDING#").unwrap().parse().unwrap();
    assert_eq!(
        shard,
        shared::shard::of(task_id, DEFAULT_OUTBOX_SHARDS),
        "{marker}"
    );
    assert!(env
        .receive(&env.queue_url("Dashboard"), 0, Duration::from_secs(1))
        .await
        .is_empty());

    // When publishing recovers and the sweeper runs
    let sweeper = env.sweeper();
    let first = sweeper.run_once().await.unwrap();

    // Then every queue that admits the events gets them, once
    assert_eq!((first.tasks, first.published, first.failed), (1, 2, 0));
    let dashboard = env
        .receive(&env.queue_url("Dashboard"), 2, Duration::from_secs(2))
        .await;
    let mut kinds: Vec<_> = dashboard.iter().map(|e| e.kind().name()).collect();
    kinds.sort();
    assert_eq!(kinds, ["TaskCreated", "TaskStarted"]);
    let classifier = env
        .receive(&env.queue_url("MlClassifier"), 1, Duration::from_secs(1))
        .await;
    assert_eq!(classifier.len(), 1);
    assert_eq!(classifier[0].kind().name(), "TaskCreated");
    assert!(env
        .receive(&env.queue_url("CicdMonitor"), 0, Duration::from_secs(1))
        .await
        .is_empty());

    // And a second pass finds nothing more to deliver
    let second = sweeper.run_once().await.unwrap();
    assert_eq!((second.tasks, second.published), (0, 0));
    assert!(env
        .store()
        .pending(task_id)
        .await
        .unwrap()
        .events
        .is_empty());
    assert!(!env.item(&id).await.contains_key("outbox_pending"));
    assert!(env
        .receive(&env.queue_url("Dashboard"), 0, Duration::from_secs(1))
        .await
        .is_empty());
}

#[tokio::test]
async fn when_the_topic_is_missing_should_commit_keep_events_and_deliver_them_after_recovery() {
    let env = TestEnv::new("notopic").await;
    let missing_topic = format!("{}-missing", env.topic_arn);
    let publisher = env.publisher_to(clients::sns(&env.aws, &fast()), &missing_topic);
    assert_recovers(&env, env.deps_with(publisher)).await;
    env.teardown().await;
}

#[tokio::test]
async fn when_sns_is_unreachable_should_commit_keep_events_and_deliver_them_after_recovery() {
    let env = TestEnv::new("nosns").await;
    // Port 9 (discard) on loopback: nothing listens there, so every call is refused.
    let config = aws_sdk_sns::config::Builder::from(&env.aws)
        .endpoint_url("http://127.0.0.1:9")
        .retry_config(fast().sdk_retry_config())
        .build();
    let publisher = env.publisher_to(aws_sdk_sns::Client::from_conf(config), &env.topic_arn);
    assert_recovers(&env, env.deps_with(publisher)).await;
    env.teardown().await;
}
