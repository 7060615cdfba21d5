//! Metrics as CloudWatch Embedded Metric Format lines on standard output (locally, to the
//! file [`write_to`] names): Lambda ships them to CloudWatch Logs, which turns them into the metrics the alarms and the
//! dashboard watch. Namespace `TaskOrchestration`, dimension `Stack` (and `Consumer`
//! for the consumers' own).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde_json::{json, Value};

pub const NAMESPACE: &str = "TaskOrchestration";

/// The stack whose alarms watch these metrics: their `Stack` dimension.
static STACK: OnceLock<Option<String>> = OnceLock::new();

/// A file the lines go to in place of standard output, when a local run names one.
static FILE: OnceLock<Mutex<File>> = OnceLock::new();

/// Writes every metric line of this process to `path` (appended) instead of standard
/// output, so that a local server's terminal shows its logs only. Lambda's functions never
/// call it: CloudWatch reads the lines from their standard output.
pub fn write_to(path: &Path) -> io::Result<()> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    // A second call keeps the first file.
    let _ = FILE.set(Mutex::new(file));
    Ok(())
}

/// Who else reads the values as they are measured, when a local run says.
type Observer = Box<dyn Fn(&Measure<'_>) + Send + Sync>;
static OBSERVER: OnceLock<Observer> = OnceLock::new();

/// Shows `observer` every value this process measures, before its line is written: the
/// local server keeps its own account of what CloudWatch would measure in AWS (the
/// consumers' event ages). Lambda's functions never call it. A second call keeps the first.
pub fn observe(observer: impl Fn(&Measure<'_>) + Send + Sync + 'static) {
    let _ = OBSERVER.set(Box::new(observer));
}

/// Names the stack (`STACK_NAME`) once per process, so that two stacks in one account
/// keep their metrics apart.
pub fn init(stack: Option<String>) {
    STACK.get_or_init(|| stack);
}

/// One metric value and what it is about.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric<'a> {
    pub name: &'static str,
    pub unit: &'static str,
    pub value: f64,
    /// A second dimension, name and value: the `Consumer` or `Function` it is about.
    pub about: Option<(&'static str, &'a str)>,
}

impl<'a> Metric<'a> {
    fn count(name: &'static str, value: usize) -> Self {
        Metric {
            name,
            unit: "Count",
            value: value as f64,
            about: None,
        }
    }

    fn millis(name: &'static str, value: Duration) -> Self {
        Metric {
            name,
            unit: "Milliseconds",
            value: value.as_secs_f64() * 1_000.0,
            about: None,
        }
    }

    fn of(self, consumer: &'a str) -> Self {
        Metric {
            about: Some(("Consumer", consumer)),
            ..self
        }
    }

    fn by_function(self, function: &'a str) -> Self {
        Metric {
            about: Some(("Function", function)),
            ..self
        }
    }

    /// The EMF document of this value at `timestamp_ms` for `stack`.
    pub fn line(&self, stack: Option<&str>, timestamp_ms: i64) -> Value {
        let mut dimensions: Vec<&str> = Vec::new();
        let mut line = json!({ self.name: self.value });
        if let Some(stack) = stack {
            dimensions.push("Stack");
            line["Stack"] = json!(stack);
        }
        if let Some((dimension, value)) = self.about {
            dimensions.push(dimension);
            line[dimension] = json!(value);
        }
        line["_aws"] = json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions],
                "Metrics": [{"Name": self.name, "Unit": self.unit}],
            }],
        });
        line
    }

    fn emit(self) {
        let stack = STACK.get().and_then(Option::as_deref);
        let line = self.line(stack, chrono::Utc::now().timestamp_millis());
        match FILE.get() {
            Some(file) => {
                let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
                // A metric that cannot be written is lost, as a line Lambda drops would be.
                let _ = writeln!(file, "{line}");
            }
            None => println!("{line}"),
        }
    }
}

/// Every value the functions measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure<'a> {
    /// One start of a function's process (a Lambda cold start), by function.
    ColdStart(&'a str),
    /// How long one batch publish took, retries included.
    PublishLatency(Duration),
    /// Events that could not be published (they stay in the outbox).
    PublishFailures(usize),
    /// Tasks the sweeper found with events older than its age: each an event that was
    /// not published right after its transition.
    OutboxStaleTasks(usize),
    /// The age of the oldest event the sweeper relayed in a run.
    OutboxAge(Duration),
    /// Outboxes parked after failing repeatedly: their events wait for someone.
    OutboxParked(usize),
    /// How old an event was when a consumer applied it (now − its time).
    EventAge(&'a str, Duration),
    /// How long a consumer took over one event.
    ProcessingTime(&'a str, Duration),
    /// A message a consumer received again after a failure.
    Retried(&'a str),
    /// A delivery of an event the consumer had applied already.
    DuplicateSkipped(&'a str),
    /// A message a consumer moved to its dead-letter queue at once.
    DeadLettered(&'a str),
}

impl Measure<'_> {
    pub fn metric(&self) -> Metric<'_> {
        match *self {
            Measure::ColdStart(function) => Metric::count("ColdStarts", 1).by_function(function),
            Measure::PublishLatency(took) => Metric::millis("PublishLatency", took),
            Measure::PublishFailures(count) => Metric::count("PublishFailures", count),
            Measure::OutboxStaleTasks(count) => Metric::count("OutboxStaleTasks", count),
            Measure::OutboxAge(age) => Metric::millis("OutboxAge", age),
            Measure::OutboxParked(count) => Metric::count("OutboxParked", count),
            Measure::EventAge(consumer, age) => Metric::millis("EventAge", age).of(consumer),
            Measure::ProcessingTime(consumer, took) => {
                Metric::millis("ProcessingTime", took).of(consumer)
            }
            Measure::Retried(consumer) => Metric::count("Retries", 1).of(consumer),
            Measure::DuplicateSkipped(consumer) => {
                Metric::count("DuplicatesSkipped", 1).of(consumer)
            }
            Measure::DeadLettered(consumer) => Metric::count("DeadLettered", 1).of(consumer),
        }
    }

    /// Writes the value as an EMF line.
    pub fn emit(self) {
        if let Some(observer) = OBSERVER.get() {
            observer(&self);
        }
        self.metric().emit();
    }
}

/// Counts events that could not be published (they stay in the outbox).
pub fn publish_failures(count: usize) {
    Measure::PublishFailures(count).emit();
}

/// Counts tasks the sweeper found with events older than its age.
pub fn outbox_stale_tasks(count: usize) {
    Measure::OutboxStaleTasks(count).emit();
}

/// Counts outboxes parked after failing repeatedly.
pub fn outbox_parked(count: usize) {
    Measure::OutboxParked(count).emit();
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: i64 = 1_796_000_000_000;

    fn golden(name: &str, unit: &str, value: Value, about: Option<(&str, &str)>) -> Value {
        let mut dimensions = vec!["Stack"];
        let mut line = json!({
            "_aws": {
                "Timestamp": AT,
                "CloudWatchMetrics": [{
                    "Namespace": "TaskOrchestration",
                    "Dimensions": [],
                    "Metrics": [{"Name": name, "Unit": unit}],
                }],
            },
            "Stack": "prod",
        });
        line[name] = value;
        if let Some((dimension, value)) = about {
            dimensions.push(dimension);
            line[dimension] = json!(value);
        }
        line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([dimensions]);
        line
    }

    #[test]
    fn when_each_metric_is_written_should_match_its_golden_document() {
        let ms = Duration::from_millis(1_500);
        let cases = [
            (
                Measure::ColdStart("task-api"),
                golden(
                    "ColdStarts",
                    "Count",
                    json!(1.0),
                    Some(("Function", "task-api")),
                ),
            ),
            (
                Measure::PublishLatency(ms),
                golden("PublishLatency", "Milliseconds", json!(1500.0), None),
            ),
            (
                Measure::PublishFailures(2),
                golden("PublishFailures", "Count", json!(2.0), None),
            ),
            (
                Measure::OutboxStaleTasks(3),
                golden("OutboxStaleTasks", "Count", json!(3.0), None),
            ),
            (
                Measure::OutboxAge(ms),
                golden("OutboxAge", "Milliseconds", json!(1500.0), None),
            ),
            (
                Measure::OutboxParked(1),
                golden("OutboxParked", "Count", json!(1.0), None),
            ),
            (
                Measure::EventAge("dashboard", ms),
                golden(
                    "EventAge",
                    "Milliseconds",
                    json!(1500.0),
                    Some(("Consumer", "dashboard")),
                ),
            ),
            (
                Measure::ProcessingTime("dashboard", ms),
                golden(
                    "ProcessingTime",
                    "Milliseconds",
                    json!(1500.0),
                    Some(("Consumer", "dashboard")),
                ),
            ),
            (
                Measure::Retried("ml-classifier"),
                golden(
                    "Retries",
                    "Count",
                    json!(1.0),
                    Some(("Consumer", "ml-classifier")),
                ),
            ),
            (
                Measure::DuplicateSkipped("cicd-monitor"),
                golden(
                    "DuplicatesSkipped",
                    "Count",
                    json!(1.0),
                    Some(("Consumer", "cicd-monitor")),
                ),
            ),
            (
                Measure::DeadLettered("dashboard"),
                golden(
                    "DeadLettered",
                    "Count",
                    json!(1.0),
                    Some(("Consumer", "dashboard")),
                ),
            ),
        ];
        for (measure, expected) in cases {
            assert_eq!(
                measure.metric().line(Some("prod"), AT),
                expected,
                "{measure:?}"
            );
        }
    }

    #[test]
    fn when_no_stack_is_named_should_write_no_dimension_for_it() {
        let line = Measure::PublishFailures(1).metric().line(None, AT);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
        assert!(line.get("Stack").is_none());
    }
}
