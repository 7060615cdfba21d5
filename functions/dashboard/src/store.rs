//! DynamoDB adapter of `DashboardStore`: a projection item per task (`task#<id>`), the
//! counters spread over shard items (`counters#<n>`), and the events per minute in
//! ten-minute items per shard (`events#<start>#<n>`, one attribute `<type>@<minute>` a
//! minute and type, removed by TTL a day later).
//!
//! A batch of events is applied in one `TransactWriteItems`: each changed task's
//! projection, on condition that it is still the version read (in one `BatchGetItem`);
//! the batch's deltas added up, into one counter shard; and its events' counts, into one
//! item of events per minute for each ten minutes they fall in. The projection records the
//! event kinds counted, so a redelivered event changes nothing and adds nothing. A
//! delivery that raced another to a task's projection finds the transaction cancelled (no
//! part of it written), reads the projections again and goes on from them. Any shard takes
//! any batch's deltas: each batch picks one at random, so no shard takes every write.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, DurationRound, NaiveDateTime, TimeDelta, Timelike, Utc};
use shared::adapters::dynamo::{self, backend, read_item, write_item, Item};
use shared::events::EventEnvelope;
use shared::ports::StoreError;
use shared::retry::Backoff;
use uuid::Uuid;

use crate::stats::{
    minute_of, project, sum_shards, DashboardStats, DashboardStore, MinuteTotals, TaskProjection,
    SERIES_MINUTES,
};

/// Counter shards unless configured otherwise.
pub const DEFAULT_COUNTER_SHARDS: u32 = 64;
/// The most counter shards: the statistics read them in one `BatchGetItem` of 100 keys.
pub const MAX_COUNTER_SHARDS: u32 = 100;
/// Lost races on one task's projection are retried this often, with jittered back-off.
const MAX_ATTEMPTS: u32 = 8;
const RACE_BACKOFF: Backoff = Backoff {
    retries: MAX_ATTEMPTS,
    initial: Duration::from_millis(10),
    max: Duration::from_millis(500),
};

#[derive(Clone)]
pub struct DynamoDashboardStore {
    client: Client,
    table: String,
    shards: u32,
}

fn text(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn projection_key(task_id: Uuid) -> AttributeValue {
    text(format!("task#{task_id}"))
}

fn shard_key(shard: u32) -> AttributeValue {
    text(format!("counters#{shard}"))
}

/// Minutes of events per minute that one item holds: small items (one write unit) that
/// an hour's read takes few of.
const SERIES_BUCKET_MINUTES: i64 = 10;
/// How long an item of events per minute is kept after its last minute (TTL).
const SERIES_KEPT: TimeDelta = TimeDelta::days(1);
const SERIES_KEY_FORMAT: &str = "%Y-%m-%dT%H:%M";
/// The most keys one `BatchGetItem` takes.
const BATCH_GET_KEYS: usize = 100;

fn series_bucket(minute: DateTime<Utc>) -> DateTime<Utc> {
    minute
        .duration_trunc(TimeDelta::minutes(SERIES_BUCKET_MINUTES))
        .unwrap_or(minute)
}

fn series_key(bucket: DateTime<Utc>, shard: u32) -> AttributeValue {
    text(format!(
        "events#{}#{shard}",
        bucket.format(SERIES_KEY_FORMAT)
    ))
}

/// The bucket an `events#<start>#<n>` key names.
fn series_bucket_of(key: &str) -> Option<DateTime<Utc>> {
    let start = key.strip_prefix("events#")?.split('#').next()?;
    Some(
        NaiveDateTime::parse_from_str(start, SERIES_KEY_FORMAT)
            .ok()?
            .and_utc(),
    )
}

/// Counts of the events in `item`, an item of events per minute, by minute and type.
fn series_counts(item: &Item) -> Vec<((DateTime<Utc>, String), u64)> {
    let Some(bucket) = item
        .get("pk")
        .and_then(|pk| pk.as_s().ok())
        .and_then(|pk| series_bucket_of(pk))
    else {
        return Vec::new();
    };
    item.iter()
        .filter_map(|(name, value)| {
            let (kind, minute) = name.split_once('@')?;
            let minute = bucket.with_minute(minute.parse().ok()?)?;
            let count = value.as_n().ok()?.parse::<u64>().ok()?;
            Some(((minute, kind.to_owned()), count))
        })
        .collect()
}

/// Events one transaction takes at most: a projection each, one counter shard, and an
/// item of events per minute for each ten minutes they fall in (DynamoDB takes 100 items).
const EVENTS_PER_TRANSACTION: usize = 45;

/// What a batch changes: the projections to write, the deltas added up, the events per
/// minute by item, and for each event whether it counts now.
#[derive(Debug, Default)]
struct Changes {
    /// Each changed task's projection after the batch, and the version read.
    projections: Vec<(TaskProjection, Option<u64>)>,
    counters: BTreeMap<String, i64>,
    cost_usd: f64,
    /// By ten-minute bucket: `<type>@<minute>` and its count.
    minutes: BTreeMap<DateTime<Utc>, BTreeMap<String, i64>>,
    counted: Vec<bool>,
}

impl Changes {
    /// The changes `events` make to the projections `current`, in order.
    fn of(events: &[&EventEnvelope], current: &HashMap<Uuid, TaskProjection>) -> Changes {
        let mut changes = Changes::default();
        let mut next: BTreeMap<Uuid, TaskProjection> = BTreeMap::new();
        for event in events {
            let task_id = event.task_id();
            let before = next.get(&task_id).or_else(|| current.get(&task_id));
            let Some((projection, delta)) = project(before, event) else {
                changes.counted.push(false);
                continue;
            };
            changes.counted.push(true);
            for (name, value) in delta.counters {
                *changes.counters.entry(name).or_default() += value;
            }
            changes.cost_usd += delta.cost_usd;
            if let Some(minute) = delta.minute {
                let minute = minute_of(minute);
                let name = format!("{}@{:02}", event.kind().name(), minute.minute());
                *changes
                    .minutes
                    .entry(series_bucket(minute))
                    .or_default()
                    .entry(name)
                    .or_default() += 1;
            }
            next.insert(task_id, projection);
        }
        changes.projections = next
            .into_values()
            .map(|projection| {
                let read = current.get(&projection.task_id).map(|p| p.version);
                (projection, read)
            })
            .collect();
        changes.counters.retain(|_, value| *value != 0);
        changes
    }
}

/// How a transaction ended.
enum Commit {
    Done,
    /// Another delivery changed a projection (or an item) first: read again and retry.
    Raced,
}

/// `SET`/`ADD` parts of an update expression over numbered placeholders.
#[derive(Default)]
struct Expression {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    set: Vec<String>,
    add: Vec<String>,
}

impl Expression {
    fn add(&mut self, name: &str, value: AttributeValue) {
        let i = self.names.len();
        self.names.insert(format!("#a{i}"), name.to_owned());
        self.values.insert(format!(":a{i}"), value);
        self.add.push(format!("#a{i} :a{i}"));
    }

    fn set(&mut self, name: &str, value: AttributeValue) {
        let i = self.names.len();
        self.names.insert(format!("#a{i}"), name.to_owned());
        self.values.insert(format!(":a{i}"), value);
        self.set.push(format!("#a{i} = :a{i}"));
    }

    fn update(self, table: &str, key: AttributeValue) -> Result<Update, StoreError> {
        let mut expression = Vec::new();
        if !self.set.is_empty() {
            expression.push(format!("SET {}", self.set.join(", ")));
        }
        if !self.add.is_empty() {
            expression.push(format!("ADD {}", self.add.join(", ")));
        }
        Update::builder()
            .table_name(table)
            .key("pk", key)
            .update_expression(expression.join(" "))
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values(Some(self.values))
            .build()
            .map_err(request_error)
    }
}

fn request_error(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("cannot build the request: {err}"))
}

impl DynamoDashboardStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDashboardStore {
            client,
            table: table.into(),
            shards: DEFAULT_COUNTER_SHARDS,
        }
    }

    /// Spreads the counters over `shards` (1 to `MAX_COUNTER_SHARDS`). Raising it later
    /// is safe; lowering it loses the counts of the shards dropped, which are no longer read.
    pub fn with_counter_shards(mut self, shards: u32) -> Self {
        self.shards = shards.clamp(1, MAX_COUNTER_SHARDS);
        self
    }

    /// The projections of `tasks` that exist, read consistently.
    async fn projections(
        &self,
        tasks: &[Uuid],
    ) -> Result<HashMap<Uuid, TaskProjection>, StoreError> {
        let keys: Vec<Item> = tasks
            .iter()
            .map(|task| HashMap::from([("pk".to_owned(), projection_key(*task))]))
            .collect();
        let mut projections = HashMap::new();
        for chunk in keys.chunks(BATCH_GET_KEYS) {
            for item in self.batch_get(chunk.to_vec()).await? {
                let projection: TaskProjection = read_item(item, "projection")?;
                projections.insert(projection.task_id, projection);
            }
        }
        Ok(projections)
    }

    /// Writes `changes` in one transaction, their deltas into counter shard `shard`.
    async fn commit(&self, changes: &Changes, shard: u32) -> Result<Commit, StoreError> {
        let mut items = Vec::new();
        for (projection, read) in &changes.projections {
            let mut item = write_item(projection, "projection")?;
            item.insert("pk".into(), projection_key(projection.task_id));
            let put = Put::builder().table_name(&self.table).set_item(Some(item));
            let put = match read {
                Some(version) => put
                    .condition_expression("#version = :version")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_values(":version", number(version)),
                None => put.condition_expression("attribute_not_exists(pk)"),
            };
            items.push(
                TransactWriteItem::builder()
                    .put(put.build().map_err(request_error)?)
                    .build(),
            );
        }
        if !changes.counters.is_empty() || changes.cost_usd != 0.0 {
            let mut counters = Expression::default();
            for (name, value) in &changes.counters {
                counters.add(name, number(value));
            }
            if changes.cost_usd != 0.0 {
                counters.add("cost_usd_total", number(changes.cost_usd));
            }
            let update = counters.update(&self.table, shard_key(shard))?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        for (bucket, counts) in &changes.minutes {
            let mut minutes = Expression::default();
            let expires_at = *bucket + TimeDelta::minutes(SERIES_BUCKET_MINUTES) + SERIES_KEPT;
            minutes.set("expires_at", number(expires_at.timestamp()));
            for (name, count) in counts {
                minutes.add(name, number(count));
            }
            let update = minutes.update(&self.table, series_key(*bucket, shard))?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        if items.is_empty() {
            return Ok(Commit::Done);
        }
        let written = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match written {
            Ok(_) => Ok(Commit::Done),
            Err(err) => match err.as_service_error() {
                // A projection moved on (`ConditionalCheckFailed`) or another transaction
                // held an item (`TransactionConflict`): nothing was written.
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled))
                    if cancelled.cancellation_reasons().iter().all(|reason| {
                        matches!(
                            reason.code(),
                            None | Some("None" | "ConditionalCheckFailed" | "TransactionConflict")
                        )
                    }) =>
                {
                    Ok(Commit::Raced)
                }
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                    Ok(Commit::Raced)
                }
                _ => Err(backend(err)),
            },
        }
    }

    /// Applies up to `EVENTS_PER_TRANSACTION` events: reads their tasks' projections,
    /// writes what they change, again from a fresh read after a lost race.
    async fn apply_chunk(&self, events: &[&EventEnvelope]) -> Result<Vec<bool>, StoreError> {
        let mut tasks: Vec<Uuid> = events.iter().map(|event| event.task_id()).collect();
        tasks.sort_unstable();
        tasks.dedup();
        for attempt in 0..MAX_ATTEMPTS {
            let current = self.projections(&tasks).await?;
            let changes = Changes::of(events, &current);
            let shard = (Uuid::new_v4().as_u128() % u128::from(self.shards)) as u32;
            match self.commit(&changes, shard).await? {
                Commit::Done => return Ok(changes.counted),
                Commit::Raced => tokio::time::sleep(RACE_BACKOFF.jittered(attempt)).await,
            }
        }
        Err(StoreError::Conflict)
    }

    /// Every shard's counters, read in one consistent `BatchGetItem`.
    async fn shards(&self) -> Result<Vec<HashMap<String, f64>>, StoreError> {
        let keys: Vec<Item> = (0..self.shards)
            .map(|shard| HashMap::from([("pk".to_owned(), shard_key(shard))]))
            .collect();
        let items = self.batch_get(keys).await?;
        Ok(items
            .into_iter()
            .map(|item| {
                item.into_iter()
                    .filter_map(|(name, value)| {
                        Some((name, value.as_n().ok()?.parse::<f64>().ok()?))
                    })
                    .collect()
            })
            .collect())
    }

    /// The events per minute and type of the `SERIES_MINUTES` minutes up to `now`'s,
    /// every shard's added up (a few `BatchGetItem` calls at once).
    async fn series(&self, now: DateTime<Utc>) -> Result<MinuteTotals, StoreError> {
        let last = series_bucket(minute_of(now));
        let mut bucket = series_bucket(minute_of(now) - TimeDelta::minutes(SERIES_MINUTES - 1));
        let mut keys = Vec::new();
        while bucket <= last {
            keys.extend(
                (0..self.shards)
                    .map(|shard| HashMap::from([("pk".to_owned(), series_key(bucket, shard))])),
            );
            bucket += TimeDelta::minutes(SERIES_BUCKET_MINUTES);
        }
        let reads = keys
            .chunks(BATCH_GET_KEYS)
            .map(|chunk| self.batch_get(chunk.to_vec()));
        let mut totals = MinuteTotals::new();
        for items in futures::future::try_join_all(reads).await? {
            for (minute_and_kind, count) in items.iter().flat_map(series_counts) {
                *totals.entry(minute_and_kind).or_default() += count;
            }
        }
        Ok(totals)
    }

    /// The items of `keys` (at most `BATCH_GET_KEYS`) that exist, read consistently.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        dynamo::batch_get_consistent(
            &self.client,
            &self.table,
            keys,
            RACE_BACKOFF,
            "dashboard items",
        )
        .await
    }
}

#[async_trait]
impl DashboardStore for DynamoDashboardStore {
    async fn apply_batch(&self, events: &[&EventEnvelope]) -> Result<Vec<bool>, StoreError> {
        let mut counted = Vec::with_capacity(events.len());
        for chunk in events.chunks(EVENTS_PER_TRANSACTION) {
            counted.extend(self.apply_chunk(chunk).await?);
        }
        Ok(counted)
    }

    async fn stats_at(&self, now: DateTime<Utc>) -> Result<DashboardStats, StoreError> {
        let (shards, series) = tokio::try_join!(self.shards(), self.series(now))?;
        Ok(DashboardStats::from_counters(&sum_shards(&shards)).with_series(now, &series))
    }
}
