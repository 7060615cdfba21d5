use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use integration_tests::{act, call, create_task, eventually, get_task, TestEnv};
use lambda_http::http::Method;
use orchestration::adapters::{clients, DynamoRecordStore};
use orchestration::events::EventEnvelope;
use orchestration::ports::{EventPublisher, Outbox};
use orchestration::records::{BuildRequest, RecordStore, TrainingExample};
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(30);

/// A webhook on loopback that fails while `failing` is set; stopped when dropped.
struct Webhook {
    url: String,
    failing: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn webhook(failing: bool) -> Webhook {
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
    let (status, stats) = call(deps, Some("anyone"), Method::GET, "/dashboard/stats", "").await;
    assert_eq!(status, 200, "{stats}");
    stats
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
    assert_eq!(build.task_type, orchestration::domain::TaskType::BugFix);
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
    let offline = env.deps_with(env.publisher_to(
        clients::sns(&env.aws, &integration_tests::fast()),
        &missing_topic,
    ));
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

    // When a message that is no event reaches the classifier's queue
    env.sqs
        .send_message()
        .queue_url(env.queue_url("MlClassifier"))
        .message_body("this is not an event")
        .send()
        .await
        .unwrap();
    // And a task completes, whose build request cannot be posted
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

    // Then both land in their dead-letter queues after their receives
    for consumer in ["MlClassifier", "CicdMonitor"] {
        let dlq = env.dlq_url(consumer);
        eventually(
            Duration::from_secs(90),
            "a dead-lettered message",
            || async { (env.queue_depth(&dlq).await == 1).then_some(()) },
        )
        .await;
    }
    // And every other message was processed and deleted
    for consumer in ["MlClassifier", "Dashboard", "CicdMonitor"] {
        let url = env.queue_url(consumer);
        eventually(PATIENCE, "the source queue to drain", || async {
            (env.queue_depth(&url).await == 0).then_some(())
        })
        .await;
    }
    assert_eq!(stats(&deps).await["completed"], 1);
    assert_eq!(env.queue_depth(&env.dlq_url("Dashboard")).await, 0);
    let listing = env.dlq_tool(&["list", "--consumer", "ml-classifier"]);
    assert!(listing.contains("this is not an event"), "{listing}");
    let listing = env.dlq_tool(&["list", "--consumer", "cicd-monitor"]);
    assert!(
        listing.contains("TaskCompleted") && listing.contains(&id),
        "{listing}"
    );

    // When the webhook recovers and the dead letters are redriven
    hook.failing.store(false, Ordering::SeqCst);
    env.dlq_tool(&["redrive", "--consumer", "cicd-monitor"]);

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
