//! Metrics as CloudWatch Embedded Metric Format lines on standard output.
//! Lambda ships them to CloudWatch Logs, which turns them into metrics the alarms watch.

use serde_json::json;

pub const NAMESPACE: &str = "TaskOrchestration";

/// Counts events that could not be published (they stay in the outbox).
pub fn publish_failures(count: usize) {
    emit("PublishFailures", count);
}

/// Counts tasks the sweeper found with events older than its age: each is an event that
/// was not published right after its transition.
pub fn outbox_stale_tasks(count: usize) {
    emit("OutboxStaleTasks", count);
}

fn emit(metric: &str, value: usize) {
    let line = json!({
        "_aws": {
            "Timestamp": chrono::Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[]],
                "Metrics": [{"Name": metric, "Unit": "Count"}],
            }],
        },
        metric: value,
    });
    println!("{line}");
}
