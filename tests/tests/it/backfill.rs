//! Replay: a consumer that did not exist when the events happened is backfilled from the
//! archive, to the same statistics as the consumer that saw them live; replaying again
//! changes nothing, and no other consumer receives a thing.

use std::time::Duration;

use dashboard::DashboardSettings;
use dev_server::event_source::EventSourceMapping;
use indicatif::ProgressBar;
use replay::{subscription_filter, Plan};
use serde_json::Value;
use shared::adapters::{clients, DynamoEventArchive};
use tests::{act, classified, create_task, eventually, TestEnv};

const PATIENCE: Duration = Duration::from_secs(60);
const LIFECYCLES: usize = 50;

async fn stats(deps: &task_api::Deps) -> Value {
    let mut stats = tests::operator_stats(deps).await;
    // The events per minute end at the current minute, which moves on: compared as the
    // hour's totals per type.
    let mut totals = serde_json::Map::new();
    for minute in stats["events_per_minute"].as_array().unwrap() {
        for (kind, count) in minute["counts"].as_object().unwrap() {
            let sum = totals.get(kind).and_then(Value::as_u64).unwrap_or(0);
            totals.insert(kind.clone(), (sum + count.as_u64().unwrap()).into());
        }
    }
    stats["events_per_minute"] = Value::Object(totals);
    stats
}

#[tokio::test]
async fn when_a_new_dashboard_is_backfilled_should_count_what_the_first_one_counted() {
    // Given 50 lifecycles run with every consumer of the first environment live
    let from = chrono::Utc::now() - chrono::Duration::minutes(1);
    let live = TestEnv::new("replay-live").await;
    let _consumers = live.start_consumers(None, Duration::from_secs(1)).await;
    let deps = live.deps();
    let mut ids = Vec::new();
    for i in 0..LIFECYCLES {
        ids.push(create_task(&deps, "alice", &format!("Fix bug {i}")).await);
    }
    // The classifier classifies each (an owner's classify could race it: 409).
    for id in &ids {
        classified(&deps, "alice", id).await;
    }
    for (i, id) in ids.iter().enumerate() {
        let start = r#"{"strategy":"Iterative"}"#;
        assert_eq!(act(&deps, "alice", id, "start", start).await.0, 200);
        let (action, body) = if i % 5 == 0 {
            ("fail", r#"{"error_message":"tests fail","tokens_used":5}"#)
        } else {
            ("complete", r#"{"tokens_used":100,"cost_usd":0.25}"#)
        };
        assert_eq!(act(&deps, "alice", id, action, body).await.0, 200);
    }
    let expected = eventually(
        PATIENCE,
        "the live dashboard to count every task",
        || async {
            let stats = stats(&deps).await;
            (stats["completed"].as_u64().unwrap() + stats["failed"].as_u64().unwrap()
                == LIFECYCLES as u64)
                .then_some(stats)
        },
    )
    .await;
    let archive_queue = live.queue_url("EventArchive");
    eventually(PATIENCE, "the archive to keep every event", || async {
        (live.queue_depth(&archive_queue).await == 0).then_some(())
    })
    .await;

    // And a second environment whose dashboard never saw them: only it runs
    let fresh = TestEnv::new("replay-new").await;
    let dashboard: DashboardSettings = fresh.settings();
    let queue = fresh.queue_url("Dashboard");
    let mapping = EventSourceMapping::new(&fresh.aws, &queue, 10, dashboard.build(&fresh.aws))
        .await
        .unwrap();
    let poller = tokio::spawn(mapping.run());
    let fresh_deps = fresh.deps();
    assert_eq!(stats(&fresh_deps).await["tasks_total"], 0);

    // When the archive is replayed to it from before the first event, as its subscription
    // filters, first as a dry run
    let sns = aws_sdk_sns::Client::new(&fresh.aws);
    let filter = subscription_filter(&sns, &fresh.topic_arn, &fresh.queue_arn("Dashboard"))
        .await
        .unwrap();
    assert!(
        filter.is_some(),
        "the dashboard's subscription has a filter"
    );
    let archive = DynamoEventArchive::new(
        clients::dynamodb(&live.aws),
        live.name("EventArchiveTable"),
        16,
        Duration::ZERO,
    );
    let plan = Plan {
        from,
        to: chrono::Utc::now() + chrono::Duration::minutes(1),
        types: Vec::new(),
        queue_url: queue.clone(),
        filter,
        rate: 1_000,
        dry_run: true,
        checkpoint: None,
    };
    let hidden = ProgressBar::hidden();
    let counted = replay::run(&plan, &archive, &fresh.sqs, &hidden, std::future::pending())
        .await
        .unwrap();
    assert_eq!((counted.matched, counted.sent), (3 * LIFECYCLES as u64, 0));
    let plan = Plan {
        dry_run: false,
        ..plan
    };
    let replayed = replay::run(&plan, &archive, &fresh.sqs, &hidden, std::future::pending())
        .await
        .unwrap();
    assert_eq!(replayed.sent, 3 * LIFECYCLES as u64);

    // Then the new dashboard counts what the live one counted
    let backfilled = eventually(PATIENCE, "the new dashboard to count them", || async {
        let stats = stats(&fresh_deps).await;
        (stats == expected).then_some(stats)
    })
    .await;
    assert_eq!(backfilled["tasks_total"], LIFECYCLES as u64);

    // And a second replay changes nothing
    let again = replay::run(&plan, &archive, &fresh.sqs, &hidden, std::future::pending())
        .await
        .unwrap();
    assert_eq!(again.sent, 3 * LIFECYCLES as u64);
    eventually(PATIENCE, "the second replay to be consumed", || async {
        (fresh.queue_depth(&queue).await == 0).then_some(())
    })
    .await;
    assert_eq!(stats(&fresh_deps).await, expected);

    // And no other consumer received anything
    for other in ["MlClassifier", "CicdMonitor", "EventArchive"] {
        let url = fresh.queue_url(other);
        assert_eq!(fresh.queue_depth(&url).await, 0, "{other} got messages");
    }
    poller.abort();
    fresh.teardown().await;
    live.teardown().await;
}
