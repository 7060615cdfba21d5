//! DynamoDB adapter of `DashboardStore`: a projection item per task (`task#<id>`), the
//! counters spread over shard items (`counters#<n>`, a task's at `shard::of(id, shards)`),
//! and the events per minute in ten-minute items per shard (`events#<start>#<n>`, one
//! attribute `<type>@<minute>` a minute and type, removed by TTL a day later), so that no
//! item takes every write and no transaction spans a shared item.
//!
//! Each task's delta per event kind reaches the counters exactly once:
//! 1. the delta is recorded in the projection as unflushed, claimed by this delivery for
//!    `CLAIM`, in a write conditional on the projection's version;
//! 2. it is added to the task's counter shard, and its event to the task's events item,
//!    each together with a token attribute (`flush#<task>#<kind>`), on condition that
//!    the token is absent;
//! 3. it is removed from the projection (the version moves on);
//! 4. the tokens are removed.
//!
//! A delivery that stops between the steps leaves the delta unflushed; the next delivery
//! of that event claims it once the claim has expired and goes on: where the token is
//! there, step 2 happened and is skipped. The claim outlasts any delivery (Lambda stops one after
//! 30 s; each call is bounded), so no delivery adds a delta another has finished with.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, DurationRound, NaiveDateTime, TimeDelta, Timelike, Utc};
use shared::adapters::dynamo::{backend, is_condition_failure, read_item, write_item, Item};
use shared::events::EventEnvelope;
use shared::ports::StoreError;
use shared::retry::Backoff;
use shared::shard;
use uuid::Uuid;

use crate::stats::{
    minute_of, project, sum_shards, DashboardStats, DashboardStore, MinuteTotals, StatsDelta,
    TaskProjection, Unflushed, SERIES_MINUTES,
};

/// Counter shards unless configured otherwise.
pub const DEFAULT_COUNTER_SHARDS: u32 = 64;
/// The most counter shards: the statistics read them in one `BatchGetItem` of 100 keys.
pub const MAX_COUNTER_SHARDS: u32 = 100;
/// How long a delivery holds the right to add an unflushed delta: longer than a delivery
/// lives, shorter than the consumer's idempotency lease (120 s), so a redelivery that got
/// past the lease finds the claim expired.
const CLAIM: Duration = Duration::from_secs(60);
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

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
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

impl DynamoDashboardStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDashboardStore {
            client,
            table: table.into(),
            shards: DEFAULT_COUNTER_SHARDS,
        }
    }

    /// Spreads the counters over `shards` (1 to `MAX_COUNTER_SHARDS`). Raising it later
    /// is safe: a shard is read whether or not tasks still map to it only while it is
    /// within the count, so lowering it loses the counts of the shards dropped.
    pub fn with_counter_shards(mut self, shards: u32) -> Self {
        self.shards = shards.clamp(1, MAX_COUNTER_SHARDS);
        self
    }

    async fn projection(&self, task_id: Uuid) -> Result<Option<TaskProjection>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", projection_key(task_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        output
            .item
            .map(|item| read_item(item, "projection"))
            .transpose()
    }

    /// Writes `next` if the projection is still `current`; `false` when it is not.
    async fn put_projection(
        &self,
        next: &TaskProjection,
        current: Option<&TaskProjection>,
    ) -> Result<bool, StoreError> {
        let mut item = write_item(next, "projection")?;
        item.insert("pk".into(), projection_key(next.task_id));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = match current {
            Some(current) => put
                .condition_expression("#version = :version")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":version", number(current.version)),
            None => put.condition_expression("attribute_not_exists(pk)"),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(backend(err)),
        }
    }

    /// Takes over the unflushed delta of `kind` whose claim expired; `false` when the
    /// projection changed meanwhile.
    async fn claim(
        &self,
        current: &TaskProjection,
        kind: &str,
        me: Uuid,
    ) -> Result<bool, StoreError> {
        let claimed = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", projection_key(current.task_id))
            .update_expression(
                "SET #unflushed.#kind.claimed_until = :until, #unflushed.#kind.claimed_by = :me, #version = #version + :one",
            )
            .condition_expression("#version = :version")
            .expression_attribute_names("#unflushed", "unflushed")
            .expression_attribute_names("#kind", kind)
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":until", number(now_ms() + CLAIM.as_millis() as i64))
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":me", text(me.to_string()))
            .expression_attribute_values(":version", number(current.version))
            .send()
            .await;
        match claimed {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(backend(err)),
        }
    }

    /// Steps 2 to 4: adds the delta of `kind` to the task's shard once, then clears it.
    async fn flush(&self, task_id: Uuid, kind: &str, delta: &StatsDelta) -> Result<(), StoreError> {
        let shard_of_task = shard::of(task_id, self.shards);
        let shard = shard_key(shard_of_task);
        let token = format!("flush#{task_id}#{kind}");
        let mut names = HashMap::from([("#token".to_owned(), token.clone())]);
        let mut values = HashMap::from([(":now".to_owned(), text(now_ms().to_string()))]);
        let mut additions = Vec::new();
        let counters = delta.counters.iter().filter(|(_, value)| **value != 0);
        for (i, (name, value)) in counters.enumerate() {
            names.insert(format!("#c{i}"), name.clone());
            values.insert(format!(":c{i}"), number(value));
            additions.push(format!("#c{i} :c{i}"));
        }
        if delta.cost_usd != 0.0 {
            names.insert("#cost".into(), "cost_usd_total".into());
            values.insert(":cost".into(), number(delta.cost_usd));
            additions.push("#cost :cost".into());
        }
        let mut expression = "SET #token = :now".to_owned();
        if !additions.is_empty() {
            expression.push_str(&format!(" ADD {}", additions.join(", ")));
        }
        let added = async {
            let added = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", shard.clone())
                .update_expression(expression)
                .condition_expression("attribute_not_exists(#token)")
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .send()
                .await;
            match added {
                // Present: a delivery that stopped after adding it got this far.
                Err(err) if !is_condition_failure(&err) => Err(backend(err)),
                _ => Ok(()),
            }
        };
        let series = delta
            .minute
            .map(|minute| (series_key(series_bucket(minute), shard_of_task), minute));
        let counted = async {
            match &series {
                Some((key, minute)) => self.count_event(key, *minute, kind, &token).await,
                None => Ok(()),
            }
        };
        tokio::try_join!(added, counted)?;
        let cleared = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", projection_key(task_id))
            .update_expression("REMOVE #unflushed.#kind SET #version = #version + :one")
            .condition_expression("attribute_exists(#unflushed.#kind)")
            .expression_attribute_names("#unflushed", "unflushed")
            .expression_attribute_names("#kind", kind)
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":one", number(1))
            .send()
            .await;
        match cleared {
            Err(err) if !is_condition_failure(&err) => return Err(backend(err)),
            _ => {}
        }
        let remove_token = |key: AttributeValue| {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", key)
                .update_expression("REMOVE #token")
                .expression_attribute_names("#token", &token)
                .send()
        };
        let from_series = async {
            match series {
                Some((key, _)) => remove_token(key).await.map(|_| ()),
                None => Ok(()),
            }
        };
        tokio::try_join!(remove_token(shard), from_series).map_err(backend)?;
        Ok(())
    }

    /// Step 2 for the events per minute: counts the event under its type and minute in
    /// the item `key`, with the token, on condition that the token is absent.
    async fn count_event(
        &self,
        key: &AttributeValue,
        minute: DateTime<Utc>,
        kind: &str,
        token: &str,
    ) -> Result<(), StoreError> {
        let minute = minute_of(minute);
        let expires_at =
            series_bucket(minute) + TimeDelta::minutes(SERIES_BUCKET_MINUTES) + SERIES_KEPT;
        let counted = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", key.clone())
            .update_expression("SET #token = :now, #expires = :expires ADD #count :one")
            .condition_expression("attribute_not_exists(#token)")
            .expression_attribute_names("#token", token)
            .expression_attribute_names("#expires", "expires_at")
            .expression_attribute_names("#count", format!("{kind}@{:02}", minute.minute()))
            .expression_attribute_values(":now", text(now_ms().to_string()))
            .expression_attribute_values(":expires", number(expires_at.timestamp()))
            .expression_attribute_values(":one", number(1))
            .send()
            .await;
        match counted {
            // Present: a delivery that stopped after counting it got this far.
            Err(err) if !is_condition_failure(&err) => Err(backend(err)),
            _ => Ok(()),
        }
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

    /// The items of `keys` (at most `BATCH_GET_KEYS`) that exist, read consistently,
    /// retrying what the call leaves unprocessed a few times.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut request = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|err| StoreError::Backend(format!("cannot build the request: {err}")))?,
        );
        let mut items = Vec::new();
        let mut attempt = 0;
        while let Some(keys) = request.take() {
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, keys)
                .send()
                .await
                .map_err(backend)?;
            if let Some(mut found) = output.responses {
                items.extend(found.remove(&self.table).unwrap_or_default());
            }
            request = output
                .unprocessed_keys
                .and_then(|mut left| left.remove(&self.table))
                .filter(|left| !left.keys().is_empty());
            if request.is_some() {
                if attempt >= RACE_BACKOFF.retries {
                    return Err(StoreError::Backend("dashboard items stayed unread".into()));
                }
                tokio::time::sleep(RACE_BACKOFF.jittered(attempt)).await;
                attempt += 1;
            }
        }
        Ok(items)
    }
}

#[async_trait]
impl DashboardStore for DynamoDashboardStore {
    async fn apply(&self, event: &EventEnvelope) -> Result<bool, StoreError> {
        let task_id = event.task_id();
        let kind = event.kind().name();
        let me = Uuid::new_v4();
        for attempt in 0..MAX_ATTEMPTS {
            let current = self.projection(task_id).await?;
            match project(current.as_ref(), event) {
                Some((mut next, delta)) => {
                    let claimed_until = now_ms() + CLAIM.as_millis() as i64;
                    next.unflushed.insert(
                        kind.to_owned(),
                        Unflushed {
                            delta: delta.clone(),
                            claimed_until,
                            claimed_by: Some(me),
                        },
                    );
                    if self.put_projection(&next, current.as_ref()).await? {
                        self.flush(task_id, kind, &delta).await?;
                        return Ok(true);
                    }
                }
                // Counted before; finish what an earlier delivery may have left undone.
                None => {
                    let Some(current) = current else {
                        return Ok(false);
                    };
                    let Some(unflushed) = current.unflushed.get(kind) else {
                        return Ok(false);
                    };
                    if unflushed.claimed_by == Some(me) {
                        // Written by this very call, though its answer was lost.
                        self.flush(task_id, kind, &unflushed.delta).await?;
                        return Ok(true);
                    }
                    if unflushed.claimed_until > now_ms() {
                        // Another delivery is adding it right now, or stopped doing so.
                        return Err(StoreError::Conflict);
                    }
                    if self.claim(&current, kind, me).await? {
                        self.flush(task_id, kind, &unflushed.delta).await?;
                        return Ok(false);
                    }
                }
            }
            // Another delivery changed this task's projection first: read it again.
            tokio::time::sleep(RACE_BACKOFF.jittered(attempt)).await;
        }
        Err(StoreError::Conflict)
    }

    async fn stats_at(&self, now: DateTime<Utc>) -> Result<DashboardStats, StoreError> {
        let (shards, series) = tokio::try_join!(self.shards(), self.series(now))?;
        Ok(DashboardStats::from_counters(&sum_shards(&shards)).with_series(now, &series))
    }
}
