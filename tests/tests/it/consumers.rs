use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageAttributeValue;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use cicd_monitor::BuildRequest;
use ml_classifier::TrainingExample;
use serde_json::Value;
use shared::adapters::{clients, DynamoRecordStore, CONSUMER_ATTRIBUTE, REASON_ATTRIBUTE};
use shared::events::EventEnvelope;
use shared::ports::{EventPublisher, Outbox};
use shared::records::RecordStore;
use tests::{act, create_task, eventually, get_task, TestEnv};

const PATIENCE: Duration = Duration::from_secs(30);

/// A webhook on loopback that fails while `failing` is set; stopped when dropped.
pub(crate) struct Webhook {
    pub(crate) url: String,
    failing: Arc<AtomicBool>,
    pub(crate) accepted: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub(crate) async fn webhook(failing: bool) -> Webhook {
    let failing = Arc::new(AtomicBool::new(failing));
    let accepted = Arc::new(AtomicUsize::new(0));
    let (fail, count) = (failing.clone(), accepted.clone());
    let app = Router::new().route(
        "/builds",
        post(move || {
            let status = if fail.load(Ordering::SeqCst) {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                count.fetch_add(1, Ordering::SeqCst);
                StatusCode::ACCEPTED
            };
            async move { status }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/builds", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Webhook {
        url,
        failing,
        accepted,
        server,
    }
}

async fn stats(deps: &task_api::Deps) -> Value {
    tests::operator_stats(deps).await
}

#[tokio::test]
async fn when_a_task_runs_should_be_classified_counted_and_built_by_the_consumers() {
    // Given the three consumers polling their queues
    let env = TestEnv::new("cycle").await;
    let hook = webhook(false).await;
    let _consumers = env
        .start_consumers(Some(&hook.url), Duration::from_secs(1))
        .await;
    let deps = env.deps();

    // When a task is created
    let id = create_task(&deps, "alice", "Fix crash when saving a file").await;

    // Then the classifier classifies it by its rules
    let task = eventually(PATIENCE, "the classification", || async {
        let (_, task) = get_task(&deps, "alice", &id).await;
        (task["status"] == "Classified").then_some(task)
    })
    .await;
    assert_eq!(
        (task["task_type"].as_str(), task["complexity"].as_str()),
        (Some("BugFix"), Some("Simple"))
    );

    // When it is started and completed
    let (status, _) = act(&deps, "alice", &id, "start", r#"{"strategy":"Iterative"}"#).await;
    assert_eq!(status, 200);
    let (status, _) = act(
        &deps,
        "alice",
        &id,
        "complete",
        r#"{"tokens_used":5000,"cost_usd":2.5}"#,
    )
    .await;
    assert_eq!(status, 200);

    // Then the dashboard counts it, a build is requested and a training example recorded
    let stats = eventually(PATIENCE, "the dashboard", || async {
        let stats = stats(&deps).await;
        (stats["completed"] == 1).then_some(stats)
    })
    .await;
    assert_eq!(stats["tasks_total"], 1);
    assert_eq!(stats["by_status"]["Completed"], 1);
    assert_eq!(stats["by_type"]["BugFix"], 1);
    assert_eq!(stats["tokens_used_total"], 5000);
    assert_eq!(stats["cost_usd_total"], 2.5);
    assert_eq!(stats["success_rate"], 1.0);
    let task_id = id.parse().unwrap();
    let builds = DynamoRecordStore::<BuildRequest>::new(
        clients::dynamodb(&env.aws),
        env.name("BuildRequestsTable"),
    );
    let build = eventually(PATIENCE, "the build request", || async {
        builds.get(task_id).await.unwrap()
    })
    .await;
    assert_eq!(build.task_type, shared::domain::TaskType::BugFix);
    eventually(PATIENCE, "the webhook call", || async {
        (hook.accepted.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let examples = DynamoRecordStore::<TrainingExample>::new(
        clients::dynamodb(&env.aws),
        env.name("TrainingExamplesTable"),
    );
    let example = eventually(PATIENCE, "the training example", || async {
        examples.get(task_id).await.unwrap()
    })
    .await;
    assert_eq!(example.tokens_used, 5000);
    env.teardown().await;
}

#[tokio::test]
async fn when_the_same_event_is_delivered_three_times_should_apply_it_once() {
    // Given a task whose TaskCreated waits in its outbox (the topic was unreachable)
    let env = TestEnv::new("dupes").await;
    let _consumers = env.start_consumers(None, Duration::from_secs(1)).await;
    let missing_topic = format!("{}-missing", env.topic_arn);
    let offline =
        env.deps_with(env.publisher_to(clients::sns(&env.aws, &tests::fast()), &missing_topic));
    let id = create_task(&offline, "alice", "Write docs").await;
    let pending = env.store().pending(id.parse().unwrap()).await.unwrap();
    let created: &EventEnvelope = &pending.events[0];

    // When that one event is published three times
    for _ in 0..3 {
        env.publisher().publish(created).await.unwrap();
    }

    // Then, once every queue is drained, it was counted and classified once
    for queue in ["Dashboard", "MlClassifier"] {
        let url = env.queue_url(queue);
        eventually(PATIENCE, "the deliveries to be consumed", || async {
            (env.queue_depth(&url).await == 0).then_some(())
        })
        .await;
    }
    let deps = env.deps();
    let stats = stats(&deps).await;
    assert_eq!(stats["tasks_total"], 1, "{stats}");
    assert_eq!(stats["by_status"]["Pending"], 1, "{stats}");
    let (_, task) = get_task(&deps, "alice", &id).await;
    assert_eq!(
        (task["status"].as_str(), task["version"].as_u64()),
        (Some("Classified"), Some(2))
    );
    env.teardown().await;
}

#[tokio::test]
async fn when_messages_keep_failing_should_dead_letter_them_process_the_rest_and_redrive_back() {
    // Given the consumers, with the build webhook down
    let env = TestEnv::new("dlq").await;
    let hook = webhook(true).await;
    let _consumers = env
        .start_consumers(Some(&hook.url), Duration::from_secs(1))
        .await;
    let deps = env.deps();

    // When a task completes whose build request cannot be posted
    let id = create_task(&deps, "alice", "Fix the broken export").await;
    eventually(PATIENCE, "the classification", || async {
        let (_, task) = get_task(&deps, "alice", &id).await;
        (task["status"] == "Classified").then_some(())
    })
    .await;
    act(&deps, "alice", &id, "start", r#"{"strategy":"SingleShot"}"#).await;
    let (status, _) = act(
        &deps,
        "alice",
        &id,
        "complete",
        r#"{"tokens_used":1,"cost_usd":0.1}"#,
    )
    .await;
    assert_eq!(status, 200);

    // Then it lands in the dead-letter queue after its receives
    let dlq = env.dlq_url("CicdMonitor");
    eventually(
        Duration::from_secs(90),
        "a dead-lettered message",
        || async { (env.queue_depth(&dlq).await == 1).then_some(()) },
    )
    .await;
    // And every other message was processed and deleted
    for consumer in ["MlClassifier", "Dashboard", "CicdMonitor"] {
        let url = env.queue_url(consumer);
        eventually(PATIENCE, "the source queue to drain", || async {
            (env.queue_depth(&url).await == 0).then_some(())
        })
        .await;
    }
    assert_eq!(stats(&deps).await["completed"], 1);
    for consumer in ["MlClassifier", "Dashboard"] {
        assert_eq!(
            env.queue_depth(&env.dlq_url(consumer)).await,
            0,
            "{consumer}"
        );
    }
    let listing = env.ops_tool(&["list", "cicd-monitor"]).await;
    assert!(
        listing.contains("TaskCompleted") && listing.contains(&id),
        "{listing}"
    );
    // And SQS moved it, so it carries no reason of ours: the listing says so
    assert!(listing.contains(r#""reason":"max receives""#), "{listing}");

    // When the webhook recovers and the dead letters are redriven
    hook.failing.store(false, Ordering::SeqCst);
    env.ops_tool(&["redrive", "cicd-monitor"]).await;

    // Then the build request is posted and nothing is left behind
    eventually(PATIENCE, "the redriven build request", || async {
        (hook.accepted.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let (cicd, cicd_dlq) = (env.queue_url("CicdMonitor"), env.dlq_url("CicdMonitor"));
    eventually(PATIENCE, "the queues to empty", || async {
        (env.queue_depth(&cicd).await + env.queue_depth(&cicd_dlq).await == 0).then_some(())
    })
    .await;
    env.teardown().await;
}

#[tokio::test]
async fn when_a_message_is_no_event_should_dead_letter_it_at_once_with_the_reason() {
    // Given the consumers, with a retry back-off that would take minutes to exhaust
    let env = TestEnv::new("poison").await;
    let _consumers = env.start_consumers(None, Duration::from_secs(10)).await;

    // When a message that is no event reaches the classifier's queue
    let sent = Instant::now();
    env.sqs
        .send_message()
        .queue_url(env.queue_url("MlClassifier"))
        .message_body("this is not an event")
        .message_attributes(
            "event_type",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("TaskCreated")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // Then it is in the dead-letter queue within 15 seconds, not after its receives
    let dlq = env.dlq_url("MlClassifier");
    eventually(Duration::from_secs(15), "the dead letter", || async {
        (env.queue_depth(&dlq).await == 1).then_some(())
    })
    .await;
    assert!(
        sent.elapsed() < Duration::from_secs(15),
        "{:?}",
        sent.elapsed()
    );
    // With its attributes, the consumer and the reason
    let received = env
        .sqs
        .receive_message()
        .queue_url(&dlq)
        .message_attribute_names("All")
        .visibility_timeout(0)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let message = &received.messages()[0];
    assert_eq!(message.body(), Some("this is not an event"));
    let attributes = message.message_attributes().unwrap();
    let attribute = |name: &str| {
        attributes[name]
            .string_value()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(attribute("event_type"), "TaskCreated");
    assert_eq!(attribute(CONSUMER_ATTRIBUTE), "ml-classifier");
    assert!(
        attribute(REASON_ATTRIBUTE).contains("not a task event"),
        "{}",
        attribute(REASON_ATTRIBUTE)
    );
    // And the source queue holds nothing more, so no retry follows
    let queue = env.queue_url("MlClassifier");
    eventually(PATIENCE, "the source queue to drain", || async {
        (env.queue_depth(&queue).await == 0).then_some(())
    })
    .await;
    let listing = env.ops_tool(&["list", "ml-classifier", "--body"]).await;
    assert!(listing.contains("this is not an event"), "{listing}");
    assert!(listing.contains("not a task event"), "{listing}");
    env.teardown().await;
}
