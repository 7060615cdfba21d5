//! What a subscriber reads off its queue: every event, parsed by the CloudEvents SDK as
//! any of the platform's services would, carries the fields the contract promises; and the
//! classifier keeps why a task failed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cloudevents::{AttributesReader, Data, Event};
use ml_classifier::TrainingExample;
use serde_json::Value;
use shared::adapters::{clients, DynamoRecordStore};
use shared::records::RecordStore;
use tests::{act, classified, create_task, eventually, TestEnv};

const PATIENCE: Duration = Duration::from_secs(30);

/// Bodies of the messages on `queue_url`, until `expected` arrived or 20 s passed.
async fn bodies(env: &TestEnv, queue_url: &str, expected: usize) -> Vec<String> {
    let mut bodies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while bodies.len() < expected && Instant::now() < deadline {
        let output = env
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive from the emulator");
        bodies.extend(
            output
                .messages()
                .iter()
                .filter_map(|m| m.body().map(str::to_owned)),
        );
    }
    bodies
}

#[tokio::test]
async fn when_read_off_a_queue_by_the_cloudevents_sdk_each_event_should_carry_its_fields() {
    // Given no consumer running, two tasks driven to their ends: one completed, one failed
    let env = TestEnv::new("fields").await;
    let deps = env.deps();
    let mut ids = Vec::new();
    for (title, end, body) in [
        (
            "Fix the login bug",
            "complete",
            r#"{"tokens_used":700,"cost_usd":0.5}"#,
        ),
        (
            "Add the export",
            "fail",
            r#"{"error_message":"the migration timed out","tokens_used":30}"#,
        ),
    ] {
        let id = create_task(&deps, "alice", title).await;
        let classify = r#"{"task_type":"Feature","complexity":"Medium"}"#;
        assert_eq!(act(&deps, "alice", &id, "classify", classify).await.0, 200);
        let start = r#"{"strategy":"MultiAgent"}"#;
        assert_eq!(act(&deps, "alice", &id, "start", start).await.0, 200);
        assert_eq!(act(&deps, "alice", &id, end, body).await.0, 200);
        ids.push(id);
    }

    // When the dashboard's queue (every type) is read and each body parsed as a CloudEvent
    let bodies = bodies(&env, &env.queue_url("Dashboard"), 6).await;
    let mut data: HashMap<String, Value> = HashMap::new();
    for body in &bodies {
        let event: Event = serde_json::from_str(body)
            .unwrap_or_else(|err| panic!("not a CloudEvent: {err}: {body}"));
        let Some(Data::Json(payload)) = event.data() else {
            panic!("no JSON data: {body}");
        };
        let key = format!("{} {}", event.subject().unwrap_or_default(), event.ty());
        data.insert(key, payload.clone());
    }
    assert_eq!(data.len(), 6, "{data:#?}");

    // Then each carries the fields of its type, with the values the task has
    let (completed, failed) = (&ids[0], &ids[1]);
    let created = &data[&format!("{completed} task.created.v1")];
    assert_eq!(created["user_id"], "alice");
    assert_eq!(created["title"], "Fix the login bug");
    assert!(created.get("description").is_none(), "{created}");
    let started = &data[&format!("{failed} task.started.v1")];
    assert_eq!(started["strategy"], "MultiAgent");
    assert_eq!(started["user_id"], "alice");
    assert_eq!(started["task_type"], "Feature");
    assert_eq!(started["complexity"], "Medium");
    let done = &data[&format!("{completed} task.completed.v1")];
    assert_eq!(done["user_id"], "alice");
    assert_eq!(done["strategy"], "MultiAgent");
    assert_eq!(done["tokens_used"], 700);
    let fail = &data[&format!("{failed} task.failed.v1")];
    assert_eq!(fail["error_message"], "the migration timed out");
    assert_eq!(fail["strategy"], "MultiAgent");
    assert_eq!(fail["tokens_used"], 30);
    assert_eq!(fail["cost_usd"], 0.0);
    assert!(fail["duration_ms"].is_u64(), "{fail}");
    env.teardown().await;
}

#[tokio::test]
async fn when_a_task_fails_its_training_example_should_hold_why() {
    // Given the consumers running and a task the classifier classified
    let env = TestEnv::new("why").await;
    let _consumers = env.start_consumers(None, Duration::from_secs(1)).await;
    let deps = env.deps();
    let id = create_task(&deps, "alice", "Fix the login bug").await;
    classified(&deps, "alice", &id).await;

    // When it starts and fails
    let start = r#"{"strategy":"Iterative"}"#;
    assert_eq!(act(&deps, "alice", &id, "start", start).await.0, 200);
    let fail = r#"{"error_message":"tests fail on CI: 3 of 120"}"#;
    assert_eq!(act(&deps, "alice", &id, "fail", fail).await.0, 200);

    // Then its training example holds the error message
    let examples = DynamoRecordStore::<TrainingExample>::new(
        clients::dynamodb(&env.aws),
        env.name("TrainingExamplesTable"),
    );
    let task_id = id.parse().unwrap();
    let example = eventually(PATIENCE, "the training example", || async {
        examples.get(task_id).await.unwrap()
    })
    .await;
    assert_eq!(
        example.error_message.as_deref(),
        Some("tests fail on CI: 3 of 120")
    );
    assert_eq!(example.outcome, shared::domain::TaskStatus::Failed);
    env.teardown().await;
}
