//! Metrics as CloudWatch Embedded Metric Format lines on standard output.
//! Lambda ships them to CloudWatch Logs, which turns them into metrics the alarms watch.

use std::sync::OnceLock;

use serde_json::json;

pub const NAMESPACE: &str = "TaskOrchestration";

/// The stack whose alarms watch these metrics: their `Stack` dimension.
static STACK: OnceLock<Option<String>> = OnceLock::new();

/// Names the stack (`STACK_NAME`) once per process, so that two stacks in one account
/// keep their metrics apart.
pub fn init(stack: Option<String>) {
    STACK.get_or_init(|| stack);
}

/// Counts events that could not be published (they stay in the outbox).
pub fn publish_failures(count: usize) {
    emit("PublishFailures", count);
}

/// Counts tasks the sweeper found with events older than its age: each is an event that
/// was not published right after its transition.
pub fn outbox_stale_tasks(count: usize) {
    emit("OutboxStaleTasks", count);
}

/// Counts messages a consumer moved to its dead-letter queue at once, since no retry
/// could succeed; dimension `Consumer` beside `Stack`.
pub fn dead_lettered(consumer: &str) {
    let stack = STACK.get().and_then(Option::as_deref);
    let mut line = line("DeadLettered", 1, stack);
    line["Consumer"] = json!(consumer);
    if let Some(dimensions) = line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0].as_array_mut() {
        dimensions.push(json!("Consumer"));
    }
    println!("{line}");
}

/// Counts outboxes parked after failing repeatedly: their events wait for someone.
pub fn outbox_parked(count: usize) {
    emit("OutboxParked", count);
}

fn line(metric: &str, value: usize, stack: Option<&str>) -> serde_json::Value {
    let dimensions: Vec<&str> = stack.iter().map(|_| "Stack").collect();
    let mut line = json!({
        "_aws": {
            "Timestamp": chrono::Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions],
                "Metrics": [{"Name": metric, "Unit": "Count"}],
            }],
        },
        metric: value,
    });
    if let Some(stack) = stack {
        line["Stack"] = json!(stack);
    }
    line
}

fn emit(metric: &str, value: usize) {
    let stack = STACK.get().and_then(Option::as_deref);
    println!("{}", line(metric, value, stack));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_a_stack_is_named_should_carry_it_as_the_dimension() {
        let with = line("PublishFailures", 2, Some("prod"));
        assert_eq!(
            with["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Stack"]])
        );
        assert_eq!(
            (with["Stack"].as_str(), with["PublishFailures"].as_u64()),
            (Some("prod"), Some(2))
        );
        let without = line("PublishFailures", 1, None);
        assert_eq!(
            without["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
        assert!(without.get("Stack").is_none());
    }
}
