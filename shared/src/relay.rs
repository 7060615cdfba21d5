//! The outbox relay: publishes events committed with their task, then clears them.
//! Used right after each transition and by the scheduled sweeper for whatever was left.

use std::time::Instant;

use chrono::{DateTime, Utc};
use tracing::{debug, error, info, warn};
use uuid::Uuid;

use crate::ports::{EventPublisher, Outbox, PendingEvents, StoreError};

/// What one relay pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayReport {
    pub published: usize,
    pub failed: usize,
}

impl RelayReport {
    fn add(&mut self, other: RelayReport) {
        self.published += other.published;
        self.failed += other.failed;
    }
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
}

/// Relays every outbox holding events written at or before `older_than`, up to `limit` tasks,
/// starting no task after `deadline` (the rest wait for the next run).
pub async fn sweep(
    outbox: &dyn Outbox,
    publisher: &dyn EventPublisher,
    older_than: DateTime<Utc>,
    limit: usize,
    deadline: Instant,
) -> Result<SweepReport, StoreError> {
    let task_ids = outbox.stale(older_than, limit).await?;
    if task_ids.is_empty() {
        debug!("no outbox waits for the sweeper");
        return Ok(SweepReport::default());
    }
    crate::metrics::outbox_stale_tasks(task_ids.len());
    let mut report = SweepReport {
        tasks: task_ids.len(),
        ..SweepReport::default()
    };
    let mut relayed = RelayReport::default();
    for task_id in task_ids {
        if Instant::now() >= deadline {
            report.deferred += 1;
            continue;
        }
        match relay_task(outbox, publisher, task_id).await {
            Ok(one) => relayed.add(one),
            Err(err) => {
                // One unreadable outbox must not keep the others waiting.
                error!(task.id = %task_id, error = %err, "sweeping an outbox failed");
                report.errors += 1;
            }
        }
    }
    report.published = relayed.published;
    report.failed = relayed.failed;
    info!(
        tasks = report.tasks,
        published = report.published,
        failed = report.failed,
        errors = report.errors,
        "outbox sweep finished"
    );
    Ok(report)
}
