//! DynamoDB adapter of `DashboardStore`: a projection item per task (`task#<id>`) and the
//! counters spread over shard items (`counters#<n>`, a task's at `shard::of(id, shards)`),
//! so that no item takes every write and no transaction spans a shared item.
//!
//! Each task's delta per event kind reaches the counters exactly once:
//! 1. the delta is recorded in the projection as unflushed, claimed by this delivery for
//!    `CLAIM`, in a write conditional on the projection's version;
//! 2. it is added to the task's shard together with a token attribute
//!    (`flush#<task>#<kind>`), on condition that the token is absent;
//! 3. it is removed from the projection (the version moves on);
//! 4. the token is removed from the shard.
//!
//! A delivery that stops between the steps leaves the delta unflushed; the next delivery
//! of that event claims it once the claim has expired and goes on: if the token is there,
//! step 2 happened and is skipped. The claim outlasts any delivery (Lambda stops one after
//! 30 s; each call is bounded), so no delivery adds a delta another has finished with.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;
use shared::adapters::dynamo::{backend, is_condition_failure, read_item, write_item, Item};
use shared::events::EventEnvelope;
use shared::ports::StoreError;
use shared::retry::Backoff;
use shared::shard;
use uuid::Uuid;

use crate::stats::{
    project, sum_shards, DashboardStats, DashboardStore, StatsDelta, TaskProjection, Unflushed,
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
        let shard = shard_key(shard::of(task_id, self.shards));
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
            Err(err) if !is_condition_failure(&err) => return Err(backend(err)),
            _ => {}
        }
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
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", shard)
            .update_expression("REMOVE #token")
            .expression_attribute_names("#token", token)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Every shard's counters, read in one consistent `BatchGetItem` (retrying what it
    /// leaves unprocessed a few times).
    async fn shards(&self) -> Result<Vec<HashMap<String, f64>>, StoreError> {
        let keys: Vec<Item> = (0..self.shards)
            .map(|shard| HashMap::from([("pk".to_owned(), shard_key(shard))]))
            .collect();
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
                    return Err(StoreError::Backend("counter shards stayed unread".into()));
                }
                tokio::time::sleep(RACE_BACKOFF.jittered(attempt)).await;
                attempt += 1;
            }
        }
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

    async fn stats(&self) -> Result<DashboardStats, StoreError> {
        let shards = self.shards().await?;
        Ok(DashboardStats::from_counters(&sum_shards(&shards)))
    }
}
