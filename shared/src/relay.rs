//! The outbox relay: publishes events committed with their task, then clears them.
//! Used right after each transition and by the scheduled sweeper for whatever was left.

use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use tracing::{debug, error, info, warn};
use uuid::Uuid;

use crate::ports::{EventPublisher, Outbox, PendingEvents, StoreError};

/// What one relay pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RelayReport {
    pub published: usize,
    pub failed: usize,
    /// When the oldest event relayed was written.
    pub oldest: Option<DateTime<Utc>>,
}

/// Publishes `pending` in sequence order and acknowledges what was published.
/// Whatever fails stays in the outbox for the sweeper.
pub async fn relay(
    outbox: &dyn Outbox,
    publisher: &dyn EventPublisher,
    mut pending: PendingEvents,
) -> Result<RelayReport, StoreError> {
    if pending.events.is_empty() {
        return Ok(RelayReport::default());
    }
    pending.events.sort_by_key(|event| event.sequence);
    let report = publisher.publish_batch(&pending.events).await;
    for failure in &report.failed {
        warn!(task.id = %pending.task_id, event.id = %failure.event_id, reason = %failure.reason,
            "event left in the outbox for the sweeper");
    }
    if !report.published.is_empty() {
        outbox.acknowledge(&pending, &report.published).await?;
    }
    Ok(RelayReport {
        published: report.published.len(),
        failed: report.failed.len(),
        oldest: pending.events.iter().map(|event| event.time).min(),
    })
}

/// Reads a task's outbox afresh and relays it; an empty outbox just clears its marker.
pub async fn relay_task(
    outbox: &dyn Outbox,
    publisher: &dyn EventPublisher,
    task_id: Uuid,
) -> Result<RelayReport, StoreError> {
    let pending = outbox.pending(task_id).await?;
    if pending.events.is_empty() {
        outbox.acknowledge(&pending, &[]).await?;
        return Ok(RelayReport::default());
    }
    relay(outbox, publisher, pending).await
}

/// Summary of a sweeper run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub tasks: usize,
    pub published: usize,
    pub failed: usize,
    pub errors: usize,
    /// Tasks left for the next run because the time budget ran out.
    pub deferred: usize,
    /// Tasks parked in this run after failing too often.
    pub parked: usize,
}

/// What one sweeper run takes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepLimits {
    /// Most tasks one run relays; the rest wait for the next run.
    pub max_tasks: usize,
    /// Tasks relayed at once.
    pub concurrency: usize,
    /// Failed relays after which an outbox is parked, so it cannot crowd out the others.
    pub max_failures: u32,
    /// Nothing runs past it, retries included: what has not finished waits for the next run.
    pub deadline: Instant,
}

enum Outcome {
    Relayed(RelayReport),
    Parked(RelayReport),
    Failed,
    Deferred,
}

/// Relays every outbox holding events written at or before `older_than`, concurrently,
/// within `limits`; parks an outbox after `max_failures` failed relays.
pub async fn sweep(
    outbox: &dyn Outbox,
    publisher: &dyn EventPublisher,
    older_than: DateTime<Utc>,
    limits: SweepLimits,
) -> Result<SweepReport, StoreError> {
    let task_ids = outbox.stale(older_than, limits.max_tasks).await?;
    let mut report = SweepReport {
        tasks: task_ids.len(),
        ..SweepReport::default()
    };
    // Every run reports, none included: its alarm takes a silence for a sweeper that no
    // longer runs.
    crate::metrics::outbox_stale_tasks(task_ids.len());
    if !task_ids.is_empty() {
        let outcomes: Vec<Outcome> = stream::iter(task_ids)
            .map(|task_id| sweep_one(outbox, publisher, task_id, &limits))
            .buffer_unordered(limits.concurrency.max(1))
            .collect()
            .await;
        let mut oldest: Option<DateTime<Utc>> = None;
        for outcome in outcomes {
            if matches!(outcome, Outcome::Parked(_)) {
                report.parked += 1;
            }
            match outcome {
                Outcome::Relayed(one) | Outcome::Parked(one) => {
                    report.published += one.published;
                    report.failed += one.failed;
                    oldest = oldest.into_iter().chain(one.oldest).min();
                }
                Outcome::Failed => report.errors += 1,
                Outcome::Deferred => report.deferred += 1,
            }
        }
        let age = oldest.and_then(|oldest| (crate::time::now() - oldest).to_std().ok());
        if let Some(age) = age {
            crate::metrics::Measure::OutboxAge(age).emit();
        }
        info!(
            tasks = report.tasks,
            published = report.published,
            failed = report.failed,
            errors = report.errors,
            deferred = report.deferred,
            parked = report.parked,
            "outbox sweep finished"
        );
    } else {
        debug!("no outbox waits for the sweeper");
    }
    // Counted every run while any is parked, so the alarm stays on until someone deals
    // with them (no data counts as none).
    let parked = outbox.parked().await?;
    if parked > 0 {
        crate::metrics::outbox_parked(parked);
        warn!(
            parked,
            "outboxes are parked after failing repeatedly; see docs/architecture.md, \"Publishing and the outbox\""
        );
    }
    Ok(report)
}

async fn sweep_one(
    outbox: &dyn Outbox,
    publisher: &dyn EventPublisher,
    task_id: Uuid,
    limits: &SweepLimits,
) -> Outcome {
    let deadline = tokio::time::Instant::from_std(limits.deadline);
    if tokio::time::Instant::now() >= deadline {
        return Outcome::Deferred;
    }
    let relayed =
        match tokio::time::timeout_at(deadline, relay_task(outbox, publisher, task_id)).await {
            Err(_) => return Outcome::Deferred,
            Ok(Err(err)) => {
                // One unreadable outbox must not keep the others waiting.
                error!(task.id = %task_id, error = %err, "sweeping an outbox failed");
                return Outcome::Failed;
            }
            Ok(Ok(relayed)) => relayed,
        };
    if relayed.failed == 0 {
        return Outcome::Relayed(relayed);
    }
    let failures = match outbox.record_failure(task_id).await {
        Ok(failures) => failures,
        Err(err) => {
            error!(task.id = %task_id, error = %err, "counting a failed relay failed");
            return Outcome::Relayed(relayed);
        }
    };
    if failures < limits.max_failures {
        return Outcome::Relayed(relayed);
    }
    match outbox.park(task_id).await {
        Ok(()) => {
            error!(task.id = %task_id, failures, "outbox parked: its events keep failing to publish");
            Outcome::Parked(relayed)
        }
        Err(err) => {
            error!(task.id = %task_id, error = %err, "parking an outbox failed");
            Outcome::Relayed(relayed)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::{ExecutionStrategy, TaskComplexity, TaskType};
    use crate::memory::{MemoryStore, RecordingPublisher};
    use crate::ports::TaskStore;
    use crate::{fixtures, time};

    /// `count` tasks whose creation events wait in their outboxes.
    async fn waiting(store: &MemoryStore, count: usize) -> Vec<Uuid> {
        let mut ids = Vec::new();
        for i in 0..count {
            let (task, event) = fixtures::created(&format!("task {i}"));
            store.create(&task, &event).await.unwrap();
            ids.push(task.id);
        }
        ids
    }

    fn limits(deadline: Instant) -> SweepLimits {
        SweepLimits {
            max_tasks: 100,
            concurrency: 4,
            max_failures: 3,
            deadline,
        }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn when_an_outbox_keeps_failing_should_park_it_after_its_failures_and_relay_the_others() {
        // Given ten waiting outboxes, one of whose events SNS always refuses
        let store = MemoryStore::new();
        let publisher = RecordingPublisher::new();
        let ids = waiting(&store, 10).await;
        publisher.refuse_task(ids[3]);

        // When the sweeper runs four times
        let mut reports = Vec::new();
        for _ in 0..4 {
            reports.push(
                sweep(&store, &publisher, time::now(), limits(soon()))
                    .await
                    .unwrap(),
            );
        }

        // Then the others are published in the first run, the refused one is tried three
        // times, parked, and left alone after
        assert_eq!((reports[0].published, reports[0].failed), (9, 1));
        let parked: Vec<usize> = reports.iter().map(|r| r.parked).collect();
        assert_eq!(parked, [0, 0, 1, 0]);
        assert_eq!(reports[3].tasks, 0);
        assert_eq!(store.parked().await.unwrap(), 1);
        assert_eq!(store.outbox(ids[3]).len(), 1);
        assert_eq!(publisher.published().len(), 9);
    }

    #[tokio::test]
    async fn when_a_parked_task_emits_its_next_event_should_be_swept_again() {
        let store = MemoryStore::new();
        let publisher = RecordingPublisher::new();
        let id = waiting(&store, 1).await[0];
        store.park(id).await.unwrap();
        assert!(store.stale(time::now(), 10).await.unwrap().is_empty());

        let task = store.get(id).await.unwrap().unwrap();
        let classified = task
            .classify(TaskType::Test, TaskComplexity::Simple, time::now())
            .unwrap()
            .task;
        let started = classified
            .start(ExecutionStrategy::SingleShot, time::now())
            .unwrap();
        store
            .apply(&task, &started.task, Some(&fixtures::envelope(&started)))
            .await
            .unwrap();

        let report = sweep(&store, &publisher, time::now(), limits(soon()))
            .await
            .unwrap();
        assert_eq!((report.tasks, report.published), (1, 2));
        assert_eq!(store.parked().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn when_the_budget_is_spent_should_defer_what_is_left() {
        let store = MemoryStore::new();
        let publisher = RecordingPublisher::new();
        waiting(&store, 3).await;

        let report = sweep(&store, &publisher, time::now(), limits(Instant::now()))
            .await
            .unwrap();

        assert_eq!((report.tasks, report.deferred, report.published), (3, 3, 0));
        assert!(publisher.published().is_empty());
    }
}
