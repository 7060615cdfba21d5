//! A breaking change as a second version: `task.completed.v2` emitted beside `.v1` (the
//! template's `EmittedEventTypes`), a consumer that reads both while it moves applying each
//! completion once, one that reads v2 only getting v2 alone, and the archive keeping each
//! event once.

use std::time::Duration;

use dashboard::DashboardSettings;
use dev_server::event_source::EventSourceMapping;
use event_archive::ArchiveSettings;
use lambda_http::http::Method;
use shared::events::{EventType, TaskEventData, EMITTED_EVENT_TYPES};
use shared::settings::Settings;
use task_api::ApiSettings;
use tests::{act, call, create_task, eventually, TestEnv};

const PATIENCE: Duration = Duration::from_secs(60);
const BOTH: &str =
    "task.created.v1,task.started.v1,task.completed.v1,task.completed.v2,task.failed.v1";

/// Sets the filter policy of the subscription that delivers to `consumer`'s queue.
async fn filter(env: &TestEnv, consumer: &str, policy: &str) {
    let sns = aws_sdk_sns::Client::new(&env.aws);
    let queue_arn = env.queue_arn(consumer);
    let subscriptions = sns
        .list_subscriptions_by_topic()
        .topic_arn(&env.topic_arn)
        .send()
        .await
        .unwrap();
    let subscription = subscriptions
        .subscriptions()
        .iter()
        .find(|s| s.endpoint() == Some(queue_arn.as_str()))
        .unwrap_or_else(|| panic!("no subscription to {consumer}'s queue"));
    sns.set_subscription_attributes()
        .subscription_arn(subscription.subscription_arn().unwrap())
        .attribute_name("FilterPolicy")
        .attribute_value(policy)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn when_a_second_version_is_emitted_should_reach_who_reads_it_and_apply_once() {
    // Given a producer emitting task.completed as v1 and v2, a dashboard moving (it reads
    // both), the cicd-monitor's queue moved to v2 only (its consumer left stopped, so the
    // queue shows what it was sent), and the archive
    let env = TestEnv::new("versions").await;
    filter(
        &env,
        "Dashboard",
        r#"{"event_type":["TaskCreated","TaskStarted","TaskCompleted","TaskFailed"],"event_version":["v1","v2"]}"#,
    )
    .await;
    filter(
        &env,
        "CicdMonitor",
        r#"{"event_type":["TaskCompleted"],"event_version":["v2"]}"#,
    )
    .await;
    let settings = ApiSettings::from_variables(&env.variables_with([(EMITTED_EVENT_TYPES, BOTH)]))
        .expect("the variables configure the task API");
    let deps = ApiSettings {
        backoff: tests::fast(),
        ..settings
    }
    .build(&env.aws);
    let dashboard: DashboardSettings = env.settings();
    let archive: ArchiveSettings = env.settings();
    let mut pollers = Vec::new();
    for (queue, consumer) in [
        ("Dashboard", dashboard.build(&env.aws)),
        ("EventArchive", archive.build(&env.aws)),
    ] {
        let mapping = EventSourceMapping::new(&env.aws, &env.queue_url(queue), 10, consumer)
            .await
            .unwrap();
        pollers.push(tokio::spawn(mapping.run()));
    }
    // SNS applies a changed filter policy within moments; LocalStack at once.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // When two tasks complete and one fails
    let mut completed = Vec::new();
    for (i, outcome) in ["complete", "complete", "fail"].into_iter().enumerate() {
        let id = create_task(&deps, "alice", &format!("Task {i}")).await;
        let classify = r#"{"task_type":"Feature","complexity":"Medium"}"#;
        assert_eq!(act(&deps, "alice", &id, "classify", classify).await.0, 200);
        let start = r#"{"strategy":"Iterative"}"#;
        assert_eq!(act(&deps, "alice", &id, "start", start).await.0, 200);
        let body = match outcome {
            "complete" => r#"{"tokens_used":100,"cost_usd":0.25}"#,
            _ => r#"{"error_message":"tests fail","tokens_used":5}"#,
        };
        assert_eq!(act(&deps, "alice", &id, outcome, body).await.0, 200);
        if outcome == "complete" {
            completed.push(id);
        }
    }

    // Then the v2-only queue got the two completions, as v2 alone, with the cost intact
    let received = env
        .receive(&env.queue_url("CicdMonitor"), 2, Duration::from_secs(3))
        .await;
    assert_eq!(received.len(), 2, "{received:?}");
    for event in &received {
        assert_eq!(event.wire_type(), EventType::TaskCompletedV2);
        let TaskEventData::Completed(data) = &event.data else {
            panic!("{event:?}");
        };
        assert_eq!(data.cost_usd, 0.25);
        assert!(completed.contains(&event.task_id().to_string()));
    }

    // And the dashboard, sent both versions of each completion, counted each once
    let stats = eventually(PATIENCE, "the dashboard to count the three", || async {
        let stats = tests::operator_stats(&deps).await;
        (stats["completed"] == 2 && stats["failed"] == 1).then_some(stats)
    })
    .await;
    assert_eq!(stats["tasks_total"], 3, "{stats}");
    let completions: u64 = stats["events_per_minute"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|minute| minute["counts"]["TaskCompleted"].as_u64())
        .sum();
    assert_eq!(completions, 2, "{stats}");
    assert_eq!(stats["cost_usd_total"], 0.5, "{stats}");

    // And the archive kept each event once: three per completed task (created, started,
    // completed), whichever copy of the completion came first
    let archive_queue = env.queue_url("EventArchive");
    eventually(PATIENCE, "the archive to take every copy", || async {
        (env.queue_depth(&archive_queue).await == 0).then_some(())
    })
    .await;
    for id in &completed {
        let path = format!("/tasks/{id}/events");
        let (status, page) = call(&deps, Some("alice"), Method::GET, &path, "").await;
        assert_eq!(status, 200, "{page}");
        let sequences: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["sequence"].as_str().unwrap())
            .collect();
        assert_eq!(
            sequences,
            [
                "00000000000000000001",
                "00000000000000000002",
                "00000000000000000003"
            ],
            "{page}"
        );
    }
    for poller in pollers {
        poller.abort();
    }
    env.teardown().await;
}
