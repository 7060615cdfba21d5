//! Live statistics of the dashboard: how each event changes them, once per task and kind,
//! whatever order the events arrive in, and the statistics as the API shows them.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use shared::domain::{TaskComplexity, TaskStatus, TaskType};
use shared::events::{EventEnvelope, EventKind, TaskEventData};
use shared::ports::StoreError;

/// Durations fall in buckets whose upper bounds grow by 2^(1/4) (19 %) from 10 ms; p95 is
/// reported as the upper bound of its bucket.
pub const DURATION_BUCKETS: u32 = 97;
const FIRST_BUCKET_MS: f64 = 10.0;
/// Minutes of events per minute that the statistics show, the current one last.
pub const SERIES_MINUTES: i64 = 60;
/// Every event type, in the order the statistics list them.
pub const EVENT_KINDS: [EventKind; 4] = [
    EventKind::TaskCreated,
    EventKind::TaskStarted,
    EventKind::TaskCompleted,
    EventKind::TaskFailed,
];

/// What the dashboard remembers of one task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskProjection {
    pub task_id: Uuid,
    /// Status after the newest event seen, `None` before any.
    pub status: Option<TaskStatus>,
    /// Sequence number of the newest event seen (0 before any).
    pub sequence: u64,
    /// Event kinds already counted (each task has at most one of each).
    pub applied: Vec<String>,
    pub classified: bool,
    /// Incremented by every event counted; writes are conditional on it.
    pub version: u64,
}

/// Additions to the counters that one event makes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsDelta {
    pub counters: BTreeMap<String, i64>,
    pub cost_usd: f64,
    /// The minute the event happened in, counted once under its type in the events per
    /// minute (absent from deltas recorded before they were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minute: Option<DateTime<Utc>>,
}

/// The start of the minute `time` falls in.
pub fn minute_of(time: DateTime<Utc>) -> DateTime<Utc> {
    time.duration_trunc(TimeDelta::minutes(1)).unwrap_or(time)
}

impl StatsDelta {
    fn add(&mut self, counter: impl Into<String>, value: i64) {
        *self.counters.entry(counter.into()).or_default() += value;
    }
}

fn status_of(data: &TaskEventData) -> TaskStatus {
    match data {
        TaskEventData::Created(_) => TaskStatus::Pending,
        TaskEventData::Started(_) => TaskStatus::InProgress,
        TaskEventData::Completed(_) => TaskStatus::Completed,
        TaskEventData::Failed(_) => TaskStatus::Failed,
    }
}

fn classification(data: &TaskEventData) -> Option<(TaskType, TaskComplexity)> {
    match data {
        TaskEventData::Created(_) => None,
        TaskEventData::Started(d) => Some((d.task_type, d.complexity)),
        TaskEventData::Completed(d) => Some((d.task_type, d.complexity)),
        TaskEventData::Failed(d) => Some((d.task_type, d.complexity)),
    }
}

/// Bucket of a duration: the smallest `i` with `duration <= 10 ms × 2^(i/4)`.
pub fn duration_bucket(duration_ms: u64) -> u32 {
    if duration_ms as f64 <= FIRST_BUCKET_MS {
        return 0;
    }
    let exact = 4.0 * (duration_ms as f64 / FIRST_BUCKET_MS).log2();
    (exact.ceil() as u32).min(DURATION_BUCKETS - 1)
}

pub fn bucket_upper_ms(bucket: u32) -> f64 {
    (FIRST_BUCKET_MS * 2f64.powf(f64::from(bucket) / 4.0)).round()
}

/// The projection after `event` and what it adds to the counters, or `None` when this
/// task's event of this kind was counted already (a redelivery).
pub fn project(
    current: Option<&TaskProjection>,
    event: &EventEnvelope,
) -> Option<(TaskProjection, StatsDelta)> {
    let kind = event.kind().name();
    let mut next = current.cloned().unwrap_or(TaskProjection {
        task_id: event.task_id(),
        ..TaskProjection::default()
    });
    if next.applied.iter().any(|k| k == kind) {
        return None;
    }
    next.applied.push(kind.to_owned());
    next.version += 1;
    let mut delta = StatsDelta {
        minute: Some(minute_of(event.time)),
        ..StatsDelta::default()
    };

    if event.sequence.number() > next.sequence {
        let status = status_of(&event.data);
        if let Some(old) = next.status {
            delta.add(format!("status_{}", old.as_str()), -1);
        }
        delta.add(format!("status_{}", status.as_str()), 1);
        next.status = Some(status);
        next.sequence = event.sequence.number();
    }
    if let (false, Some((task_type, complexity))) = (next.classified, classification(&event.data)) {
        delta.add(format!("type_{task_type:?}"), 1);
        delta.add(format!("complexity_{complexity:?}"), 1);
        next.classified = true;
    }
    let finished = match &event.data {
        TaskEventData::Created(_) => {
            delta.add("tasks_total", 1);
            None
        }
        TaskEventData::Started(_) => None,
        TaskEventData::Completed(d) => {
            Some(("completed", d.tokens_used, d.cost_usd, d.duration_ms))
        }
        TaskEventData::Failed(d) => Some(("failed", d.tokens_used, d.cost_usd, d.duration_ms)),
    };
    if let Some((outcome, tokens, cost, duration_ms)) = finished {
        delta.add(outcome, 1);
        delta.add("tokens_total", i64::try_from(tokens).unwrap_or(i64::MAX));
        delta.cost_usd += cost;
        delta.add("duration_count", 1);
        delta.add(
            "duration_sum_ms",
            i64::try_from(duration_ms).unwrap_or(i64::MAX),
        );
        delta.add(
            format!("duration_bucket_{}", duration_bucket(duration_ms)),
            1,
        );
    }
    Some((next, delta))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DurationStats {
    pub count: u64,
    pub average_ms: Option<f64>,
    /// Upper bound of the bucket holding the 95th percentile.
    pub p95_ms: Option<f64>,
}

/// How many events of each type happened in one minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MinuteCounts {
    /// The minute's start.
    #[serde(with = "shared::time")]
    #[schema(value_type = String, format = DateTime)]
    pub minute: DateTime<Utc>,
    /// Every event type, 0 when none happened.
    pub counts: BTreeMap<String, u64>,
}

/// Events counted per minute and type (`EventKind::name`), as stored.
pub type MinuteTotals = BTreeMap<(DateTime<Utc>, String), u64>;

/// The `SERIES_MINUTES` minutes up to and including `now`'s, oldest first, each with
/// every event type.
pub fn last_hour(now: DateTime<Utc>, totals: &MinuteTotals) -> Vec<MinuteCounts> {
    let current = minute_of(now);
    (0..SERIES_MINUTES)
        .rev()
        .map(|ago| {
            let minute = current - TimeDelta::minutes(ago);
            let counts = EVENT_KINDS
                .iter()
                .map(|kind| {
                    let count = totals
                        .get(&(minute, kind.name().to_owned()))
                        .copied()
                        .unwrap_or(0);
                    (kind.name().to_owned(), count)
                })
                .collect();
            MinuteCounts { minute, counts }
        })
        .collect()
}

/// The statistics as `GET /dashboard/stats` returns them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DashboardStats {
    pub tasks_total: u64,
    /// Classification emits no event, so classified tasks count as `Pending` here.
    pub by_status: BTreeMap<String, u64>,
    pub by_type: BTreeMap<String, u64>,
    pub by_complexity: BTreeMap<String, u64>,
    pub tokens_used_total: u64,
    pub cost_usd_total: f64,
    pub completed: u64,
    pub failed: u64,
    /// Completed out of finished tasks, `null` before any finished.
    pub success_rate: Option<f64>,
    pub duration: DurationStats,
    /// Events per minute and type over the last hour, oldest first (`SERIES_MINUTES`
    /// entries, the current minute last).
    pub events_per_minute: Vec<MinuteCounts>,
}

/// The counters of every shard added up, name by name.
pub fn sum_shards<'a>(
    shards: impl IntoIterator<Item = &'a HashMap<String, f64>>,
) -> HashMap<String, f64> {
    let mut total: HashMap<String, f64> = HashMap::new();
    for shard in shards {
        for (name, value) in shard {
            *total.entry(name.clone()).or_default() += value;
        }
    }
    total
}

impl DashboardStats {
    /// Builds the statistics from stored counters (`cost_usd_total` included).
    pub fn from_counters(counters: &HashMap<String, f64>) -> Self {
        let count = |name: &str| counters.get(name).copied().unwrap_or(0.0).max(0.0) as u64;
        let prefixed = |prefix: &str| -> BTreeMap<String, u64> {
            counters
                .iter()
                .filter_map(|(name, value)| {
                    let key = name.strip_prefix(prefix)?;
                    (*value > 0.0).then(|| (key.to_owned(), *value as u64))
                })
                .collect()
        };
        let by_status = [
            TaskStatus::Pending,
            TaskStatus::InProgress,
            TaskStatus::Completed,
            TaskStatus::Failed,
        ]
        .into_iter()
        .map(|status| {
            (
                status.as_str().to_owned(),
                count(&format!("status_{}", status.as_str())),
            )
        })
        .collect();
        let (completed, failed) = (count("completed"), count("failed"));
        let durations = count("duration_count");
        let p95_ms = (durations > 0).then(|| {
            let target = (durations as f64 * 0.95).ceil() as u64;
            let mut seen = 0;
            for bucket in 0..DURATION_BUCKETS {
                seen += count(&format!("duration_bucket_{bucket}"));
                if seen >= target {
                    return bucket_upper_ms(bucket);
                }
            }
            bucket_upper_ms(DURATION_BUCKETS - 1)
        });
        DashboardStats {
            tasks_total: count("tasks_total"),
            by_status,
            by_type: prefixed("type_"),
            by_complexity: prefixed("complexity_"),
            tokens_used_total: count("tokens_total"),
            cost_usd_total: (counters.get("cost_usd_total").copied().unwrap_or(0.0) * 1e6).round()
                / 1e6,
            completed,
            failed,
            success_rate: (completed + failed > 0)
                .then(|| completed as f64 / (completed + failed) as f64),
            duration: DurationStats {
                count: durations,
                average_ms: (durations > 0)
                    .then(|| count("duration_sum_ms") as f64 / durations as f64),
                p95_ms,
            },
            events_per_minute: Vec::new(),
        }
    }

    /// The same with the events per minute of the hour up to `now`.
    pub fn with_series(self, now: DateTime<Utc>, totals: &MinuteTotals) -> Self {
        DashboardStats {
            events_per_minute: last_hour(now, totals),
            ..self
        }
    }
}

#[async_trait]
pub trait DashboardStore: Send + Sync {
    /// Counts each of the events once, in order; for each, `false` when it had been
    /// counted already. Nothing is counted when it fails.
    async fn apply_batch(&self, events: &[&EventEnvelope]) -> Result<Vec<bool>, StoreError>;

    /// Counts the event once; `false` when it had been counted already.
    async fn apply(&self, event: &EventEnvelope) -> Result<bool, StoreError> {
        Ok(self.apply_batch(&[event]).await?.first() == Some(&true))
    }

    /// The statistics, with the events per minute of the hour up to `now`.
    async fn stats_at(&self, now: DateTime<Utc>) -> Result<DashboardStats, StoreError>;

    /// The statistics as of this moment.
    async fn stats(&self) -> Result<DashboardStats, StoreError> {
        self.stats_at(Utc::now()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::fixtures::Run;

    fn lifecycle(duration_ms: i64, fails: bool) -> Vec<EventEnvelope> {
        Run {
            duration_ms,
            fails,
            ..Run::default()
        }
        .events()
        .to_vec()
    }

    fn apply_all(events: &[EventEnvelope]) -> DashboardStats {
        let mut projections: HashMap<Uuid, TaskProjection> = HashMap::new();
        let mut counters: HashMap<String, f64> = HashMap::new();
        for event in events {
            if let Some((next, delta)) = project(projections.get(&event.task_id()), event) {
                for (name, value) in delta.counters {
                    *counters.entry(name).or_default() += value as f64;
                }
                *counters.entry("cost_usd_total".into()).or_default() += delta.cost_usd;
                projections.insert(event.task_id(), next);
            }
        }
        DashboardStats::from_counters(&counters)
    }

    #[test]
    fn when_tasks_finish_should_count_status_type_usage_and_success_rate() {
        let mut events = lifecycle(2_000, false);
        events.extend(lifecycle(4_000, true));
        events.extend(lifecycle(1_000, false).into_iter().take(1));

        let stats = apply_all(&events);

        assert_eq!(stats.tasks_total, 3);
        assert_eq!(stats.by_status["Completed"], 1);
        assert_eq!(stats.by_status["Failed"], 1);
        assert_eq!(stats.by_status["Pending"], 1);
        assert_eq!(stats.by_status["InProgress"], 0);
        assert_eq!(stats.by_type["Feature"], 2);
        assert_eq!(stats.by_complexity["Medium"], 2);
        assert_eq!(stats.tokens_used_total, 200);
        assert_eq!(stats.cost_usd_total, 0.5);
        assert_eq!(stats.success_rate, Some(0.5));
        assert_eq!(stats.duration.count, 2);
        assert_eq!(stats.duration.average_ms, Some(3_000.0));
    }

    #[test]
    fn when_events_are_redelivered_or_reordered_should_count_each_once() {
        let events = lifecycle(1_500, false);
        let shuffled = vec![
            events[2].clone(),
            events[0].clone(),
            events[2].clone(),
            events[1].clone(),
            events[0].clone(),
        ];

        let stats = apply_all(&shuffled);

        assert_eq!(stats, apply_all(&events));
        assert_eq!(stats.by_status["Completed"], 1);
        assert_eq!(stats.by_status.values().sum::<u64>(), 1);
        assert_eq!(stats.completed, 1);
    }

    #[test]
    fn when_durations_spread_should_report_p95_within_a_bucket() {
        let mut events = Vec::new();
        for i in 1..=20 {
            events.extend(lifecycle(i * 1_000, false));
        }
        let stats = apply_all(&events);
        let p95 = stats.duration.p95_ms.unwrap();
        // The true p95 of 1..=20 s is 19 s; buckets are 19 % wide.
        assert!((19_000.0..=19_000.0 * 1.19).contains(&p95), "{p95}");
    }

    #[test]
    fn when_counters_are_sharded_should_sum_to_the_unsharded_statistics() {
        // Given the events of twenty tasks counted into four shards by task
        let mut events = Vec::new();
        for i in 0..20 {
            events.extend(lifecycle(100 * (i + 1), i % 3 == 0));
        }
        let mut shards: Vec<HashMap<String, f64>> = vec![HashMap::new(); 4];
        let mut projections: HashMap<Uuid, TaskProjection> = HashMap::new();
        for event in &events {
            let (next, delta) = project(projections.get(&event.task_id()), event).unwrap();
            let shard = &mut shards[shared::shard::of(event.task_id(), 4) as usize];
            for (name, value) in delta.counters {
                *shard.entry(name).or_default() += value as f64;
            }
            *shard.entry("cost_usd_total".into()).or_default() += delta.cost_usd;
            projections.insert(event.task_id(), next);
        }

        // When the shards are summed
        let stats = DashboardStats::from_counters(&sum_shards(&shards));

        // Then they say what counting everything in one place says
        assert!(shards.iter().all(|shard| !shard.is_empty()));
        assert_eq!(stats, apply_all(&events));
        assert_eq!(stats.tasks_total, 20);
    }

    #[test]
    fn when_events_were_counted_per_minute_should_show_the_last_hour_with_every_type() {
        // Given counts two minutes ago, in the current minute, and just over an hour ago
        let now: DateTime<Utc> = "2026-11-30T12:34:56.789Z".parse().unwrap();
        let at = |time: &str| minute_of(time.parse::<DateTime<Utc>>().unwrap());
        let totals = MinuteTotals::from([
            ((at("2026-11-30T12:32:00Z"), "TaskCreated".to_owned()), 3),
            ((at("2026-11-30T12:32:00Z"), "TaskFailed".to_owned()), 1),
            ((at("2026-11-30T12:34:00Z"), "TaskCompleted".to_owned()), 2),
            ((at("2026-11-30T11:35:00Z"), "TaskStarted".to_owned()), 5),
            ((at("2026-11-30T11:34:00Z"), "TaskStarted".to_owned()), 7),
        ]);

        // When the hour up to now is shown
        let series = last_hour(now, &totals);

        // Then it holds sixty minutes, oldest first, each with all four types
        assert_eq!(series.len(), 60);
        assert_eq!(series[0].minute, at("2026-11-30T11:35:00Z"));
        assert_eq!(series[59].minute, at("2026-11-30T12:34:00Z"));
        assert!(series.iter().all(|m| m.counts.len() == 4));
        assert_eq!(series[0].counts["TaskStarted"], 5);
        assert_eq!(series[57].counts["TaskCreated"], 3);
        assert_eq!(series[57].counts["TaskFailed"], 1);
        assert_eq!(series[57].counts["TaskStarted"], 0);
        assert_eq!(series[59].counts["TaskCompleted"], 2);
        let total: u64 = series.iter().flat_map(|m| m.counts.values()).sum();
        assert_eq!(total, 11, "the count of 11:34 is older than the hour");
        let json = serde_json::to_value(&series[59]).unwrap();
        assert_eq!(json["minute"], "2026-11-30T12:34:00.000Z");
        assert_eq!(json["counts"]["TaskCreated"], 0);
    }

    #[test]
    fn when_nothing_finished_should_leave_rates_null() {
        let stats = DashboardStats::from_counters(&HashMap::new());
        assert_eq!(stats.success_rate, None);
        assert_eq!(stats.duration.average_ms, None);
        assert_eq!(stats.duration.p95_ms, None);
    }

    #[test]
    fn when_bucketing_should_bound_each_duration_from_above() {
        for ms in [1, 10, 11, 999, 1_000, 60_000, 3_600_000] {
            let bucket = duration_bucket(ms);
            assert!(bucket_upper_ms(bucket) >= ms as f64 - 0.5, "{ms}");
            if bucket > 0 {
                assert!(bucket_upper_ms(bucket - 1) < ms as f64, "{ms}");
            }
        }
    }
}
