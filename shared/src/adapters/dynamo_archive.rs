//! DynamoDB adapter of `EventArchive`: one item per event, keyed by task (`task_id`) and
//! `<sequence>-<event id>` (`event_key`), written only if absent, so a redelivered event
//! is kept once without a separate idempotency record. The `by_time` index spreads the
//! events of each day over `shards` partitions (`<day>#<shard>`, the shard a hash of the
//! event id), sorted by `<time>#<event id>`, for replays of a time window; each item
//! expires (`expires_at`) after the retention period.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use uuid::Uuid;

use super::dynamo::{backend, put_if_absent, Item};
use crate::archive::{parse_cursor, ArchivePage, ArchivedEvent, EventArchive};
use crate::ports::StoreError;
use crate::shard;

/// The index of the archive by time.
pub const BY_TIME_INDEX: &str = "by_time";
/// Shards of each day's events in the time index, unless configured.
pub const DEFAULT_TIME_SHARDS: u32 = 16;
/// The most shards the time index may be configured with.
pub const MAX_TIME_SHARDS: u32 = 100;

pub struct DynamoEventArchive {
    client: Client,
    table: String,
    shards: u32,
    retention: Duration,
}

impl DynamoEventArchive {
    pub fn new(client: Client, table: impl Into<String>, shards: u32, retention: Duration) -> Self {
        DynamoEventArchive {
            client,
            table: table.into(),
            shards: shards.clamp(1, MAX_TIME_SHARDS),
            retention,
        }
    }

    /// An archive only read from (timelines): a writer's retention does not apply, and
    /// the time index is not read.
    pub fn reader(client: Client, table: impl Into<String>) -> Self {
        DynamoEventArchive::new(client, table, DEFAULT_TIME_SHARDS, Duration::ZERO)
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The events of `day`'s `shard` whose time key is from `from` (inclusive, a
    /// `time_key` or a bare time) to `to` (exclusive), in time order, a page at a time:
    /// `start` is where the previous page stopped.
    pub async fn window(
        &self,
        day: NaiveDate,
        shard: u32,
        from: &str,
        to: DateTime<Utc>,
        start: Option<Item>,
    ) -> Result<(Vec<ArchivedEvent>, Option<Item>), StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_TIME_INDEX)
            .key_condition_expression("time_shard = :shard AND time_key BETWEEN :from AND :to")
            .expression_attribute_values(":shard", AttributeValue::S(time_shard(day, shard)))
            .expression_attribute_values(":from", AttributeValue::S(from.to_owned()))
            // Just below `to`: every key at `to` itself sorts after "<to>#".
            .expression_attribute_values(":to", AttributeValue::S(format!("{}#", stamp(to))))
            .set_exclusive_start_key(start)
            .limit(500)
            .send()
            .await
            .map_err(backend)?;
        let events = output
            .items()
            .iter()
            .map(|item| archived(item.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((events, output.last_evaluated_key().cloned()))
    }
}

/// `<time>#<event id>`, the time index's sort key: RFC 3339 in UTC with milliseconds.
pub fn time_key(time: DateTime<Utc>, event_id: Uuid) -> String {
    format!("{}#{event_id}", stamp(time))
}

/// `<day>#<shard>`, the time index's partition key.
pub fn time_shard(day: NaiveDate, shard: u32) -> String {
    format!("{}#{shard:03}", day.format("%Y-%m-%d"))
}

/// A time as the index sorts it: RFC 3339, UTC, milliseconds.
pub fn stamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn string(item: &Item, name: &str) -> Result<String, StoreError> {
    item.get(name)
        .and_then(|value| value.as_s().ok())
        .cloned()
        .ok_or_else(|| StoreError::Backend(format!("archived event without {name}")))
}

fn archived(item: Item) -> Result<ArchivedEvent, StoreError> {
    let unreadable =
        |name: &str| StoreError::Backend(format!("archived event with an unreadable {name}"));
    Ok(ArchivedEvent {
        task_id: string(&item, "task_id")?
            .parse()
            .map_err(|_| unreadable("task_id"))?,
        event_id: string(&item, "event_id")?
            .parse()
            .map_err(|_| unreadable("event_id"))?,
        event_type: string(&item, "type")?,
        time: DateTime::parse_from_rfc3339(&string(&item, "time")?)
            .map_err(|_| unreadable("time"))?
            .with_timezone(&Utc),
        sequence: string(&item, "sequence")?
            .parse()
            .map_err(|_| unreadable("sequence"))?,
        body: string(&item, "body")?,
    })
}

#[async_trait]
impl EventArchive for DynamoEventArchive {
    async fn archive(&self, event: &ArchivedEvent) -> Result<bool, StoreError> {
        let expires_at = event
            .time
            .timestamp()
            .saturating_add(i64::try_from(self.retention.as_secs()).unwrap_or(i64::MAX));
        let shard = shard::of(event.event_id, self.shards);
        let s = |value: String| AttributeValue::S(value);
        let item: HashMap<String, AttributeValue> = [
            ("task_id", s(event.task_id.to_string())),
            ("event_key", s(event.event_key())),
            ("event_id", s(event.event_id.to_string())),
            ("type", s(event.event_type.clone())),
            ("time", s(stamp(event.time))),
            ("sequence", s(event.sequence.to_string())),
            ("body", s(event.body.clone())),
            ("time_shard", s(time_shard(event.time.date_naive(), shard))),
            ("time_key", s(time_key(event.time, event.event_id))),
            ("expires_at", AttributeValue::N(expires_at.to_string())),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
        put_if_absent(&self.client, &self.table, item, "event_key").await
    }

    async fn timeline(
        &self,
        task_id: Uuid,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<ArchivePage, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("task_id = :task")
            .expression_attribute_values(":task", AttributeValue::S(task_id.to_string()))
            .consistent_read(true)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX));
        if let Some(cursor) = cursor {
            let after = parse_cursor(cursor)?;
            query = query.set_exclusive_start_key(Some(HashMap::from([
                ("task_id".to_owned(), AttributeValue::S(task_id.to_string())),
                ("event_key".to_owned(), AttributeValue::S(after)),
            ])));
        }
        let output = query.send().await.map_err(backend)?;
        let items = output
            .items()
            .iter()
            .map(|item| archived(item.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = output
            .last_evaluated_key()
            .and_then(|key| key.get("event_key"))
            .and_then(|key| key.as_s().ok())
            .cloned();
        Ok(ArchivePage { items, next_cursor })
    }
}
