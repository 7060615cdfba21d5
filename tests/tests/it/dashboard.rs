use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use dashboard::memory::MemoryDashboard;
use dashboard::stats::{project, Unflushed};
use dashboard::{DashboardStore, DynamoDashboardStore};
use futures::stream::{self, StreamExt};
use shared::adapters::dynamo::write_item;
use shared::domain::{TaskComplexity, TaskType};
use shared::events::EventEnvelope;
use shared::fixtures::Run;
use shared::ports::StoreError;
use tests::TestEnv;

const SHARDS: u32 = 4;

fn store(env: &TestEnv) -> DynamoDashboardStore {
    DynamoDashboardStore::new(env.dynamodb.clone(), env.name("DashboardTable"))
        .with_counter_shards(SHARDS)
}

/// Applies `event` as the consumer would, delivering it again while it loses races.
async fn deliver(store: &DynamoDashboardStore, event: &EventEnvelope) {
    for _ in 0..20 {
        match store.apply(event).await {
            Ok(_) => return,
            Err(StoreError::Conflict) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(err) => panic!("{err}"),
        }
    }
    panic!("event {} kept losing races", event.id);
}

#[tokio::test]
async fn when_deliveries_race_and_repeat_should_count_each_task_once_over_the_shards() {
    // Given the events of thirty tasks, each delivered twice, in a scrambled order
    let env = TestEnv::new("counters").await;
    let types = [TaskType::BugFix, TaskType::Documentation, TaskType::Test];
    let mut events: Vec<EventEnvelope> = (0..30)
        .flat_map(|i| {
            Run {
                task_type: types[i % 3],
                complexity: TaskComplexity::Complex,
                duration_ms: 100 * (i as i64 + 1),
                fails: i % 4 == 0,
                ..Run::default()
            }
            .events()
        })
        .collect();
    events.extend(events.clone());
    events.reverse();
    events.rotate_left(17);
    let truth = MemoryDashboard::default();
    for event in &events {
        truth.apply(event).await.unwrap();
    }

    // When sixteen deliveries at a time apply them to four counter shards
    let store = store(&env);
    stream::iter(&events)
        .for_each_concurrent(16, |event| deliver(&store, event))
        .await;

    // Then the statistics are exactly those of counting each once, events per minute too,
    // asked for once every event has happened (a task finishes up to 3 s after it starts,
    // which may be in the next minute)
    let last_event = events.iter().map(|event| event.time).max();
    let now = last_event.map_or_else(chrono::Utc::now, |last| last.max(chrono::Utc::now()));
    let stats = store.stats_at(now).await.unwrap();
    assert_eq!(stats, truth.stats_at(now).await.unwrap());
    assert_eq!(stats.tasks_total, 30);
    let events = |kind: &str| -> u64 {
        stats
            .events_per_minute
            .iter()
            .map(|minute| minute.counts[kind])
            .sum()
    };
    assert_eq!(events("TaskCreated"), 30);
    assert_eq!(events("TaskStarted"), 30);
    assert_eq!(events("TaskCompleted") + events("TaskFailed"), 30);
    env.teardown().await;
}

/// Leaves `event`'s delta as a delivery that stopped after step 1 would: recorded in the
/// projection, its claim expired; and, when `added`, already in the shard with its token.
async fn stopped_midway(env: &TestEnv, event: &EventEnvelope, added: bool) {
    let (mut projection, delta) = project(None, event).unwrap();
    projection.unflushed.insert(
        event.kind().name().to_owned(),
        Unflushed {
            delta: delta.clone(),
            claimed_until: chrono::Utc::now().timestamp_millis() - 1,
            claimed_by: None,
        },
    );
    let mut item = write_item(&projection, "projection").unwrap();
    let task_id = event.task_id();
    item.insert("pk".into(), AttributeValue::S(format!("task#{task_id}")));
    let table = env.name("DashboardTable");
    env.dynamodb
        .put_item()
        .table_name(&table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    if added {
        // Added as step 2 does, beside whatever the shard holds already.
        let shard = shared::shard::of(task_id, SHARDS);
        let mut update = env
            .dynamodb
            .update_item()
            .table_name(&table)
            .key("pk", AttributeValue::S(format!("counters#{shard}")))
            .expression_attribute_names(
                "#token",
                format!("flush#{task_id}#{}", event.kind().name()),
            )
            .expression_attribute_values(":now", AttributeValue::S("0".into()));
        let mut additions = Vec::new();
        for (i, (name, value)) in delta.counters.iter().enumerate() {
            update = update
                .expression_attribute_names(format!("#c{i}"), name)
                .expression_attribute_values(
                    format!(":c{i}"),
                    AttributeValue::N(value.to_string()),
                );
            additions.push(format!("#c{i} :c{i}"));
        }
        update
            .update_expression(format!("SET #token = :now ADD {}", additions.join(", ")))
            .send()
            .await
            .unwrap();
    }
}

/// Creations counted in the last minute of the series.
fn created_this_minute(stats: &dashboard::DashboardStats) -> u64 {
    stats.events_per_minute.last().unwrap().counts["TaskCreated"]
}

#[tokio::test]
async fn when_a_delivery_stopped_midway_should_let_the_next_one_count_it_once() {
    let env = TestEnv::new("takeover").await;
    let store = store(&env);
    for added in [false, true] {
        // Given a creation whose delivery stopped before (or after) adding to the counters,
        // in either case before counting it per minute
        let [created, ..] = Run::default().events();
        let now = created.time;
        let before = store.stats_at(now).await.unwrap();
        stopped_midway(&env, &created, added).await;

        // When it is delivered again
        let counted = store.apply(&created).await.unwrap();

        // Then it counts once, per minute too, and a further delivery changes nothing
        assert!(!counted, "counted as new");
        for delivery in ["again", "once more"] {
            let after = store.stats_at(now).await.unwrap();
            assert_eq!(
                after.tasks_total,
                before.tasks_total + 1,
                "added: {added}, {delivery}"
            );
            assert_eq!(
                created_this_minute(&after),
                created_this_minute(&before) + 1,
                "added: {added}, {delivery}"
            );
            store.apply(&created).await.unwrap();
        }
    }
    env.teardown().await;
}
