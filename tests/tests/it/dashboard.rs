use std::time::Duration;

use dashboard::memory::MemoryDashboard;
use dashboard::{DashboardStore, DynamoDashboardStore};
use futures::stream::{self, StreamExt};
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

#[tokio::test]
async fn when_a_batch_repeats_events_counted_before_should_count_only_the_new_ones() {
    // Given a task's creation counted already, and a batch of it again, the task's start
    // and completion, and another task's creation (its events in one minute)
    let env = TestEnv::new("batch").await;
    let store = store(&env);
    let [created, started, completed] = Run::default().events();
    let [other, ..] = Run::default().events();
    let now = completed.time.max(other.time);
    let before = store.stats_at(now).await.unwrap();
    assert_eq!(store.apply_batch(&[&created]).await.unwrap(), [true]);

    // When the batch is applied, and then again
    let batch = [&created, &started, &completed, &other];
    let first = store.apply_batch(&batch).await.unwrap();
    let again = store.apply_batch(&batch).await.unwrap();

    // Then only the three new events count, once, per minute too; the repeat adds nothing
    assert_eq!(first, [false, true, true, true]);
    assert_eq!(again, [false, false, false, false]);
    let after = store.stats_at(now).await.unwrap();
    assert_eq!(after.tasks_total, before.tasks_total + 2);
    assert_eq!(after.completed, before.completed + 1);
    assert_eq!(
        after.by_status["Completed"],
        before.by_status["Completed"] + 1
    );
    assert_eq!(after.by_status["Pending"], before.by_status["Pending"] + 1);
    let created = |stats: &dashboard::DashboardStats| -> u64 {
        stats
            .events_per_minute
            .iter()
            .map(|m| m.counts["TaskCreated"])
            .sum()
    };
    assert_eq!(created(&after), created(&before) + 2);
    env.teardown().await;
}
