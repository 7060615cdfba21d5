//! Dead letters triaged and redriven through the `ops` command and the operations routes,
//! against the emulators.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;
use axum::http::Method;
use dashboard::DashboardSettings;
use dev_server::event_source::EventSourceMapping;
use serde_json::Value;
use shared::adapters::clients;
use shared::consumer::{ConsumerError, EventHandler, RetryBackoff};
use shared::events::{EventEnvelope, EventKind};
use shared::fixtures::Run;
use shared::ports::Outbox;
use tests::{create_task, eventually, fast, operator_call, TestEnv};

const PATIENCE: Duration = Duration::from_secs(30);

/// A consumer on the dashboard's queue, on the consumer toolkit as every consumer is, that
/// refuses the events of some kinds for good, each kind with its own reason, and applies
/// (records) the others.
#[derive(Default)]
struct Refusing {
    refused: Mutex<HashMap<EventKind, &'static str>>,
    applied: Mutex<BTreeSet<String>>,
}

#[async_trait]
impl EventHandler for Refusing {
    fn name(&self) -> &'static str {
        "dashboard"
    }

    async fn handle(&self, event: &EventEnvelope) -> Result<(), ConsumerError> {
        let refused = self.refused.lock().unwrap().get(&event.kind()).copied();
        if let Some(reason) = refused {
            return Err(ConsumerError::permanent(reason));
        }
        self.applied.lock().unwrap().insert(event.id.to_string());
        Ok(())
    }
}

fn lines(output: &str) -> Vec<Value> {
    output
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect()
}

fn event_ids(listing: &[Value]) -> BTreeSet<String> {
    listing
        .iter()
        .map(|letter| letter["event_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn string(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .unwrap()
}

#[tokio::test]
async fn when_dead_letters_of_two_types_are_triaged_should_redrive_one_type_only_and_once() {
    // Given the dashboard's queue consumed by a consumer that refuses TaskCreated and
    // TaskStarted for good, for two different reasons
    let env = TestEnv::new("ops").await;
    let handler = Arc::new(Refusing::default());
    handler.refused.lock().unwrap().extend([
        (EventKind::TaskCreated, "the projection refuses this task"),
        (EventKind::TaskStarted, "the executor is unknown"),
    ]);
    let settings: DashboardSettings = env.settings();
    let toolkit = shared::consumer::ToolkitSettings {
        backoff: RetryBackoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
        },
        ..settings.toolkit
    };
    // Its effect (a set of ids) counts each event once by itself, as the dashboard's does.
    let consumer = toolkit.build(&env.aws, handler.clone());
    let mapping = EventSourceMapping::new(&env.aws, &env.queue_url("Dashboard"), 10, consumer)
        .await
        .expect("event source mapping");
    let poller = tokio::spawn(mapping.run());

    // When three tasks' TaskCreated and TaskStarted reach its queue
    let (mut created, mut started) = (BTreeSet::new(), BTreeSet::new());
    for _ in 0..3 {
        let [create, start, _] = Run::default().events();
        for (event, ids) in [(create, &mut created), (start, &mut started)] {
            let [(type_name, type_value), (version_name, version_value)] =
                event.wire_type().message_attributes();
            env.sqs
                .send_message()
                .queue_url(env.queue_url("Dashboard"))
                .message_body(event.to_json())
                .message_attributes(type_name, string(type_value))
                .message_attributes(version_name, string(version_value))
                .send()
                .await
                .unwrap();
            ids.insert(event.id.to_string());
        }
    }

    // Then all six are dead-lettered
    let dlq = env.dlq_url("Dashboard");
    eventually(PATIENCE, "six dead letters", || async {
        (env.queue_depth(&dlq).await == 6).then_some(())
    })
    .await;
    // And listed by type, they are the three of each, with their task, reason and receives
    let of_created = lines(
        &env.ops_tool(&["list", "dashboard", "--type", "TaskCreated"])
            .await,
    );
    assert_eq!(event_ids(&of_created), created, "{of_created:?}");
    let first = &of_created[0];
    assert_eq!(
        first["reason"], "the projection refuses this task",
        "{first}"
    );
    assert_eq!(first["consumer"], "dashboard", "{first}");
    assert!(
        first["task_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{first}"
    );
    assert!(first["receive_count"].as_u64() >= Some(1), "{first}");
    assert!(first.get("body").is_none(), "{first}");
    let of_started = lines(
        &env.ops_tool(&["list", "dashboard", "--type", "task.started.v1"])
            .await,
    );
    assert_eq!(event_ids(&of_started), started);
    // And listed by reason, in another case, only those of that reason
    let by_reason = lines(
        &env.ops_tool(&["list", "dashboard", "--reason", "EXECUTOR"])
            .await,
    );
    assert_eq!(event_ids(&by_reason), started);
    let young = lines(
        &env.ops_tool(&["list", "dashboard", "--min-age", "1h"])
            .await,
    );
    assert!(young.is_empty(), "{young:?}");

    // When a dry run counts the TaskCreated ones
    let dry = &lines(
        &env.ops_tool(&["redrive", "dashboard", "--type", "TaskCreated", "--dry-run"])
            .await,
    )[0];

    // Then it counts three and moves none
    assert_eq!(
        (dry["matched"].as_u64(), dry["moved"].as_u64()),
        (Some(3), Some(0)),
        "{dry}"
    );
    assert_eq!(env.queue_depth(&dlq).await, 6);

    // When the cause of TaskCreated's refusal is removed, and they alone are redriven
    handler
        .refused
        .lock()
        .unwrap()
        .remove(&EventKind::TaskCreated);
    let moved = &lines(
        &env.ops_tool(&[
            "redrive",
            "dashboard",
            "--type",
            "TaskCreated",
            "--rate",
            "5",
        ])
        .await,
    )[0];

    // Then three moved, exactly those are applied, and the TaskStarted ones are still there
    assert_eq!(
        (moved["matched"].as_u64(), moved["moved"].as_u64()),
        (Some(3), Some(3)),
        "{moved}"
    );
    eventually(PATIENCE, "the redriven events applied", || async {
        (*handler.applied.lock().unwrap() == created).then_some(())
    })
    .await;
    let queue = env.queue_url("Dashboard");
    eventually(PATIENCE, "the queue to drain", || async {
        (env.queue_depth(&queue).await == 0).then_some(())
    })
    .await;
    let left = lines(&env.ops_tool(&["list", "dashboard"]).await);
    assert_eq!(event_ids(&left), started, "{left:?}");
    assert_eq!(*handler.applied.lock().unwrap(), created);

    // When the same redrive runs again
    let again = &lines(
        &env.ops_tool(&["redrive", "dashboard", "--type", "TaskCreated"])
            .await,
    )[0];

    // Then it moves nothing, and the TaskStarted ones stay
    assert_eq!(
        (again["matched"].as_u64(), again["moved"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );
    assert_eq!(again["scanned"].as_u64(), Some(3), "{again}");
    assert_eq!(
        event_ids(&lines(&env.ops_tool(&["list", "dashboard"]).await)),
        started
    );
    poller.abort();
    env.teardown().await;
}

#[tokio::test]
async fn when_a_dead_letter_is_discarded_should_take_its_id_and_operator_and_leave_the_rest() {
    // Given two dead letters in the classifier's DLQ
    let env = TestEnv::new("discard").await;
    let dlq = env.dlq_url("MlClassifier");
    for body in ["first", "second"] {
        env.sqs
            .send_message()
            .queue_url(&dlq)
            .message_body(body)
            .message_attributes("dead_letter_reason", string("not a task event"))
            .send()
            .await
            .unwrap();
    }
    let listed = lines(&env.ops_tool(&["list", "ml-classifier", "--body"]).await);
    let first = listed
        .iter()
        .find(|letter| letter["body"] == "first")
        .expect("the first is listed");
    let id = first["message_id"].as_str().unwrap();

    // When one is discarded by its id, by a named operator
    let discarded = lines(
        &env.ops_tool(&[
            "discard",
            "ml-classifier",
            "--message-id",
            id,
            "--by",
            "alice",
        ])
        .await,
    );

    // Then that one alone is gone, and the answer says who discarded it
    assert_eq!(discarded.len(), 1, "{discarded:?}");
    assert_eq!(discarded[0]["message_id"], id);
    assert_eq!(discarded[0]["discarded_by"], "alice");
    let left = lines(&env.ops_tool(&["list", "ml-classifier", "--body"]).await);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["body"], "second");
    env.teardown().await;
}

#[tokio::test]
async fn when_events_wait_and_outboxes_are_parked_should_count_them_in_the_stats() {
    // Given two tasks whose events could not be published, one of them parked by the
    // sweeper, and two messages waiting in the dashboard's queue, no consumer running
    let env = TestEnv::new("opsstats").await;
    let missing_topic = format!("{}-missing", env.topic_arn);
    let deps = env.deps_with(env.publisher_to(clients::sns(&env.aws, &fast()), &missing_topic));
    create_task(&deps, "alice", "Wait in the outbox").await;
    let parked = create_task(&deps, "alice", "Be parked").await;
    env.store().park(parked.parse().unwrap()).await.unwrap();
    for body in ["one", "two"] {
        env.sqs
            .send_message()
            .queue_url(env.queue_url("Dashboard"))
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    // When the stats are read
    let stats = &lines(&env.ops_tool(&["stats"]).await)[0];

    // Then the outbox counts one pending and one parked, with the pending one's age, and the
    // dashboard's queue its two messages, its DLQ none
    let outbox = &stats["outbox"];
    assert_eq!(
        (outbox["pending"].as_u64(), outbox["parked"].as_u64()),
        (Some(1), Some(1)),
        "{stats}"
    );
    assert!(
        outbox["oldest_pending_age_secs"].as_u64() < Some(60),
        "{stats}"
    );
    assert!(outbox["oldest_pending_since"].is_string(), "{stats}");
    let dashboard = &stats["consumers"]["dashboard"];
    assert_eq!(dashboard["queue"]["visible"], 2, "{stats}");
    assert_eq!(dashboard["dead_letters"]["visible"], 0, "{stats}");
    assert_eq!(
        stats["consumers"].as_object().map(|c| c.len()),
        Some(4),
        "{stats}"
    );
    env.teardown().await;
}

#[tokio::test]
async fn when_an_operator_triages_over_http_should_list_count_redrive_and_discard_by_type() {
    // Given the consumers running, and three events dead-lettered by the dashboard: two
    // TaskCreated it refused, one TaskStarted SQS moved after its receives
    let env = TestEnv::new("opshttp").await;
    let consumers = env.start_consumers(None, Duration::from_secs(1)).await;
    let ops = env.ops_deps();
    let dlq = env.dlq_url("Dashboard");
    let mut created = BTreeSet::new();
    for refused in [true, true, false] {
        let [create, start, _] = Run::default().events();
        let event = if refused { create } else { start };
        let [(type_name, type_value), (version_name, version_value)] =
            event.wire_type().message_attributes();
        let mut send = env
            .sqs
            .send_message()
            .queue_url(&dlq)
            .message_body(event.to_json())
            .message_attributes(type_name, string(type_value))
            .message_attributes(version_name, string(version_value));
        if refused {
            send = send
                .message_attributes("dead_letter_reason", string("the projection refused it"))
                .message_attributes("dead_letter_consumer", string("dashboard"));
            created.insert(event.id.to_string());
        }
        send.send().await.unwrap();
    }

    // When the view is read, then the dashboard's DLQ holds three
    let (status, view) = operator_call(&ops, Method::GET, "/ops/overview", "").await;
    assert_eq!(status, 200, "{view}");
    let dashboard = view["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["consumer"] == "dashboard")
        .cloned()
        .unwrap();
    assert_eq!(dashboard["dead_letters"]["visible"], 3, "{view}");
    assert_eq!(dashboard["objective"]["target_percent"], 99.0, "{view}");

    // And listed by type, the two TaskCreated with their reason; by reason, the one SQS moved
    let (_, listing) = operator_call(
        &ops,
        Method::GET,
        "/ops/dead-letters?consumer=dashboard&type=TaskCreated",
        "",
    )
    .await;
    let letters = listing["dead_letters"].as_array().unwrap();
    assert_eq!(event_ids(letters), created, "{listing}");
    assert!(letters
        .iter()
        .all(|l| l["reason"] == "the projection refused it"));
    let (_, moved_by_sqs) = operator_call(
        &ops,
        Method::GET,
        "/ops/dead-letters?consumer=dashboard&reason=max%20receives",
        "",
    )
    .await;
    assert_eq!(
        moved_by_sqs["dead_letters"].as_array().map(Vec::len),
        Some(1),
        "{moved_by_sqs}"
    );

    // When a dry run counts the TaskCreated ones, then redrives them
    let redrive = |dry_run: bool| {
        serde_json::json!({
            "consumer": "dashboard",
            "filter": { "type": "TaskCreated" },
            "dry_run": dry_run,
            "rate": 20,
        })
        .to_string()
    };
    let (_, dry) = operator_call(
        &ops,
        Method::POST,
        "/ops/dead-letters/redrive",
        &redrive(true),
    )
    .await;
    assert_eq!(
        (dry["matched"].as_u64(), dry["moved"].as_u64()),
        (Some(2), Some(0)),
        "{dry}"
    );
    let (status, moved) = operator_call(
        &ops,
        Method::POST,
        "/ops/dead-letters/redrive",
        &redrive(false),
    )
    .await;

    // Then two moved, the dashboard applied them (two tasks counted), and the same
    // redrive again moves nothing
    assert_eq!(status, 200, "{moved}");
    assert_eq!(
        (moved["consumer"].as_str(), moved["moved"].as_u64()),
        (Some("dashboard"), Some(2)),
        "{moved}"
    );
    let deps = env.deps();
    eventually(PATIENCE, "the redriven tasks counted", || async {
        (tests::operator_stats(&deps).await["tasks_total"] == 2).then_some(())
    })
    .await;
    let (_, again) = operator_call(
        &ops,
        Method::POST,
        "/ops/dead-letters/redrive",
        &redrive(false),
    )
    .await;
    assert_eq!(
        (again["matched"].as_u64(), again["moved"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );

    // When the one left is discarded by its id
    let (_, left) = operator_call(
        &ops,
        Method::GET,
        "/ops/dead-letters?consumer=dashboard",
        "",
    )
    .await;
    let left = left["dead_letters"].as_array().unwrap().clone();
    assert_eq!(left.len(), 1, "{left:?}");
    let discard = serde_json::json!({
        "consumer": "dashboard",
        "filter": { "message_id": left[0]["message_id"] },
    })
    .to_string();
    let (status, discarded) =
        operator_call(&ops, Method::POST, "/ops/dead-letters/discard", &discard).await;

    // Then it is gone, with the operator named, and the DLQ is empty
    assert_eq!(status, 200, "{discarded}");
    assert_eq!(discarded["discarded_by"], "ops-person", "{discarded}");
    assert_eq!(discarded["discarded"].as_array().map(Vec::len), Some(1));
    eventually(PATIENCE, "an empty dead-letter queue", || async {
        (env.queue_depth(&dlq).await == 0).then_some(())
    })
    .await;
    drop(consumers);
    env.teardown().await;
}
