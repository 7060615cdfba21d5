//! DynamoDB adapter of `TaskStore` and `Outbox`: one item per task, its outbox on the item.
//! Each transition is one conditional UpdateItem, so state and event commit together.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Select};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use tracing::warn;
use uuid::Uuid;

use super::dynamo::{
    backend, batch_get_consistent, get_consistent, is_condition_failure, read_item, write_item,
    Item, Pages,
};
use crate::cursor::Cursor;
use crate::domain::Task;
use crate::events::EventEnvelope;
use crate::ports::{Outbox, PendingEvents, StoreError, TaskPage, TaskStore};
use crate::shard;
use crate::time;

/// Index of a user's tasks by creation time.
pub const BY_USER_INDEX: &str = "by_user";
/// Sparse index of tasks with unpublished events, by the age of the oldest. Its partition
/// key is `PENDING#<shard>` (or `PARKED#<shard>` once the sweeper gave up on it), so the
/// markers of all tasks spread over the shards.
pub const OUTBOX_INDEX: &str = "outbox_pending";
/// Shards of the pending marker unless configured otherwise.
pub const DEFAULT_OUTBOX_SHARDS: u32 = 32;
const PENDING: &str = "PENDING";
/// Names the last write of a task item, so that a write can tell its own result.
const WRITE_ID: &str = "write_id";
const PARKED: &str = "PARKED";
/// The most keys one `BatchGetItem` takes.
const BATCH_GET_KEYS: usize = 100;
/// How a listing asks again for the tasks a BatchGetItem left unprocessed.
const TASK_READS: crate::retry::Backoff = crate::retry::Backoff {
    retries: 8,
    initial: std::time::Duration::from_millis(20),
    max: std::time::Duration::from_millis(640),
};
/// Shards queried at once.
const SHARD_QUERIES: usize = 8;

#[derive(Clone)]
pub struct DynamoTaskStore {
    client: Client,
    table: String,
    outbox_shards: u32,
}

impl DynamoTaskStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoTaskStore {
            client,
            table: table.into(),
            outbox_shards: DEFAULT_OUTBOX_SHARDS,
        }
    }

    /// Spreads pending markers over `shards` (at least 1). Writers and the sweeper must
    /// agree; raising it is safe only if the sweeper is raised first.
    pub fn with_outbox_shards(mut self, shards: u32) -> Self {
        self.outbox_shards = shards.max(1);
        self
    }

    fn marker(&self, state: &str, task_id: Uuid) -> AttributeValue {
        text(format!(
            "{state}#{}",
            shard::of(task_id, self.outbox_shards)
        ))
    }

    /// The markers of every shard in `state`, each queried with `query`, concurrently.
    async fn each_shard<T, F, Fut>(&self, state: &str, query: F) -> Result<Vec<T>, StoreError>
    where
        F: Fn(AttributeValue) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        stream::iter(0..self.outbox_shards)
            .map(|shard| query(text(format!("{state}#{shard}"))))
            .buffer_unordered(SHARD_QUERIES)
            .try_collect()
            .await
    }

    /// The tasks under one marker written at or before `cutoff`, oldest first, at most
    /// `limit`, with the time of their oldest event.
    async fn stale_in(
        &self,
        marker: AttributeValue,
        cutoff: &str,
        limit: usize,
    ) -> Result<Vec<(String, Uuid)>, StoreError> {
        let mut found = Vec::new();
        let mut pages = Pages::default();
        while let Some(start) = pages.next() {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(OUTBOX_INDEX)
                .key_condition_expression("outbox_pending = :pending AND outbox_since <= :cutoff")
                .expression_attribute_values(":pending", marker.clone())
                .expression_attribute_values(":cutoff", text(cutoff))
                .limit(i32::try_from(limit - found.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            found.extend(output.items.unwrap_or_default().iter().filter_map(|item| {
                let since = item.get("outbox_since")?.as_s().ok()?.clone();
                let id = item.get("id")?.as_s().ok()?.parse::<Uuid>().ok()?;
                Some((since, id))
            }));
            pages.read(output.last_evaluated_key.filter(|_| found.len() < limit));
        }
        Ok(found)
    }

    /// After a conditional write failed: the item as committed when it holds this very
    /// write (its `write_id`), else `Conflict`. The SDK retries a write whose answer was
    /// lost; the retry's condition then fails against the write's own result, which must
    /// not be answered as a conflict. Racing writers compute equal tasks, so only the id
    /// tells them apart; a later write over this one makes it answer `Conflict`.
    async fn committed(&self, task_id: Uuid, write_id: &str) -> Result<PendingEvents, StoreError> {
        let item = get_consistent(
            &self.client,
            &self.table,
            "id",
            text(task_id.to_string()),
            None,
        )
        .await?
        .unwrap_or_default();
        if item
            .get(WRITE_ID)
            .and_then(|id| id.as_s().ok())
            .map(String::as_str)
            != Some(write_id)
        {
            return Err(StoreError::Conflict);
        }
        warn!(task.id = %task_id, "the write had committed although its answer was lost; answering with it");
        pending_from_item(&item)
    }

    /// The tasks of `ids` that exist, by id, read consistently (`BatchGetItem`, 100 keys a
    /// call, what a call leaves unprocessed asked for again).
    async fn tasks(&self, ids: &[String]) -> Result<HashMap<String, Task>, StoreError> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(BATCH_GET_KEYS) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|id| HashMap::from([("id".to_owned(), text(id))]))
                .collect();
            let items =
                batch_get_consistent(&self.client, &self.table, keys, TASK_READS, "tasks").await?;
            for item in items {
                let task: Task = read_item(item, "task")?;
                found.insert(task.id.to_string(), task);
            }
        }
        Ok(found)
    }

    async fn count_in(&self, marker: AttributeValue) -> Result<usize, StoreError> {
        let mut count = 0;
        let mut pages = Pages::default();
        while let Some(start) = pages.next() {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(OUTBOX_INDEX)
                .key_condition_expression("outbox_pending = :marker")
                .expression_attribute_values(":marker", marker.clone())
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            count += usize::try_from(output.count).unwrap_or(0);
            pages.read(output.last_evaluated_key);
        }
        Ok(count)
    }
}

fn text(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn pending_from_item(item: &Item) -> Result<PendingEvents, StoreError> {
    let corrupt = |what: &str| StoreError::Backend(format!("task item has {what}"));
    let task_id = item
        .get("id")
        .and_then(|v| v.as_s().ok())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| corrupt("no valid id"))?;
    let version = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| corrupt("no valid version"))?;
    let mut events = Vec::new();
    if let Some(AttributeValue::M(outbox)) = item.get("outbox") {
        for (event_id, body) in outbox {
            let body = body
                .as_s()
                .map_err(|_| corrupt("a non-text outbox entry"))?;
            let event = EventEnvelope::from_json(body).map_err(|err| {
                StoreError::Backend(format!("outbox entry {event_id} is unreadable: {err}"))
            })?;
            events.push(event);
        }
    }
    events.sort_by_key(|event| event.sequence);
    Ok(PendingEvents {
        task_id,
        version,
        events,
    })
}

/// The cursor of a page whose last key (of the `by_user` index) is `key`.
fn encode_cursor(key: &Item) -> Option<String> {
    let field = |name: &str| key.get(name)?.as_s().ok().cloned();
    let cursor = Cursor {
        id: field("id")?,
        user_id: field("user_id")?,
        created_at: field("created_at")?,
    };
    Some(cursor.encode())
}

fn decode_cursor(encoded: &str, user_id: &str) -> Result<Item, StoreError> {
    let cursor = Cursor::decode(encoded, user_id)?;
    Ok(HashMap::from([
        ("id".to_owned(), text(cursor.id)),
        ("user_id".to_owned(), text(cursor.user_id)),
        ("created_at".to_owned(), text(cursor.created_at)),
    ]))
}

#[async_trait]
impl TaskStore for DynamoTaskStore {
    async fn create(
        &self,
        task: &Task,
        event: &EventEnvelope,
    ) -> Result<PendingEvents, StoreError> {
        let mut item = write_item(task, "task")?;
        item.insert(
            "outbox".into(),
            AttributeValue::M(HashMap::from([(
                event.id.to_string(),
                text(event.to_json()),
            )])),
        );
        item.insert("outbox_pending".into(), self.marker(PENDING, task.id));
        item.insert("outbox_since".into(), text(time::format(&event.time)));
        let write_id = Uuid::new_v4().to_string();
        item.insert(WRITE_ID.into(), text(&write_id));
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await;
        match written {
            Ok(_) => Ok(PendingEvents {
                task_id: task.id,
                version: task.version,
                events: vec![event.clone()],
            }),
            Err(err) if is_condition_failure(&err) => self.committed(task.id, &write_id).await,
            Err(err) => Err(backend(err)),
        }
    }

    async fn get(&self, id: Uuid) -> Result<Option<Task>, StoreError> {
        get_consistent(&self.client, &self.table, "id", text(id.to_string()), None)
            .await?
            .map(|item| read_item(item, "task"))
            .transpose()
    }

    async fn list_by_user(
        &self,
        user_id: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<TaskPage, StoreError> {
        let start = cursor.map(|c| decode_cursor(c, user_id)).transpose()?;
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_USER_INDEX)
            .key_condition_expression("user_id = :user")
            .expression_attribute_values(":user", text(user_id))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(backend)?;
        // The index holds only keys (a transition writes nothing to it): the page's tasks
        // are read from the table, consistently, in the index's order.
        let ids: Vec<String> = output
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| item.get("id")?.as_s().ok().cloned())
            .collect();
        let mut found = self.tasks(&ids).await?;
        let items = ids.iter().filter_map(|id| found.remove(id)).collect();
        let next_cursor = output.last_evaluated_key.as_ref().and_then(encode_cursor);
        Ok(TaskPage { items, next_cursor })
    }

    async fn apply(
        &self,
        previous: &Task,
        next: &Task,
        event: Option<&EventEnvelope>,
    ) -> Result<PendingEvents, StoreError> {
        let mut attributes = write_item(next, "task")?;
        attributes.remove("id");
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut sets = Vec::new();
        for (i, (name, value)) in attributes.into_iter().enumerate() {
            names.insert(format!("#a{i}"), name);
            values.insert(format!(":a{i}"), value);
            sets.push(format!("#a{i} = :a{i}"));
        }
        if let Some(event) = event {
            names.insert("#outbox".into(), "outbox".into());
            names.insert("#event".into(), event.id.to_string());
            values.insert(":event".into(), text(event.to_json()));
            values.insert(":pending".into(), self.marker(PENDING, previous.id));
            values.insert(":since".into(), text(time::format(&event.time)));
            sets.push("#outbox.#event = :event".into());
            sets.push("outbox_pending = :pending".into());
            sets.push("outbox_since = if_not_exists(outbox_since, :since)".into());
        }
        let write_id = Uuid::new_v4().to_string();
        names.insert("#write".into(), WRITE_ID.into());
        values.insert(":write".into(), text(&write_id));
        sets.push("#write = :write".into());
        names.insert("#expected_version".into(), "version".into());
        names.insert("#expected_status".into(), "status".into());
        values.insert(
            ":expected_version".into(),
            AttributeValue::N(previous.version.to_string()),
        );
        values.insert(":expected_status".into(), text(previous.status.as_str()));

        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", text(previous.id.to_string()))
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(
                "#expected_version = :expected_version AND #expected_status = :expected_status",
            )
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match output {
            Ok(output) => pending_from_item(&output.attributes.unwrap_or_default()),
            Err(err) if is_condition_failure(&err) => self.committed(previous.id, &write_id).await,
            Err(err) => Err(backend(err)),
        }
    }
}

#[async_trait]
impl Outbox for DynamoTaskStore {
    async fn pending(&self, task_id: Uuid) -> Result<PendingEvents, StoreError> {
        let item = get_consistent(
            &self.client,
            &self.table,
            "id",
            text(task_id.to_string()),
            Some("id, version, outbox"),
        )
        .await?;
        match item {
            Some(item) => pending_from_item(&item),
            None => Ok(PendingEvents {
                task_id,
                ..PendingEvents::default()
            }),
        }
    }

    async fn acknowledge(
        &self,
        pending: &PendingEvents,
        published: &[Uuid],
    ) -> Result<(), StoreError> {
        let published: HashSet<Uuid> = published.iter().copied().collect();
        let all: HashSet<Uuid> = pending.events.iter().map(|event| event.id).collect();
        if published == all {
            // Nothing was added since the read (same version), so the outbox can go whole.
            let cleared = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("id", text(pending.task_id.to_string()))
                .update_expression(
                    "SET outbox = :empty REMOVE outbox_pending, outbox_since, outbox_failures",
                )
                .condition_expression("#version = :version")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":empty", AttributeValue::M(HashMap::new()))
                .expression_attribute_values(
                    ":version",
                    AttributeValue::N(pending.version.to_string()),
                )
                .send()
                .await;
            match cleared {
                Ok(_) => return Ok(()),
                Err(err) if is_condition_failure(&err) => {
                    warn!(task.id = %pending.task_id, "outbox grew while publishing; removing only what was published");
                }
                Err(err) => return Err(backend(err)),
            }
        }
        if published.is_empty() {
            return Ok(());
        }
        let mut names = HashMap::from([("#outbox".to_owned(), "outbox".to_owned())]);
        let mut removals = Vec::new();
        for (i, event_id) in published.iter().enumerate() {
            names.insert(format!("#e{i}"), event_id.to_string());
            removals.push(format!("#outbox.#e{i}"));
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .key("id", text(pending.task_id.to_string()))
            .update_expression(format!("REMOVE {}", removals.join(", ")))
            .condition_expression("attribute_exists(id)")
            .set_expression_attribute_names(Some(names))
            .send()
            .await
            .map_err(|err| {
                if is_condition_failure(&err) {
                    StoreError::Backend(format!("task {} vanished", pending.task_id))
                } else {
                    backend(err)
                }
            })?;
        Ok(())
    }

    async fn stale(
        &self,
        older_than: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Uuid>, StoreError> {
        let cutoff = time::format(&older_than);
        let shards = self
            .each_shard(PENDING, |marker| self.stale_in(marker, &cutoff, limit))
            .await?;
        let mut found: Vec<(String, Uuid)> = shards.into_iter().flatten().collect();
        found.sort();
        Ok(found.into_iter().take(limit).map(|(_, id)| id).collect())
    }

    async fn record_failure(&self, task_id: Uuid) -> Result<u32, StoreError> {
        let counted = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", text(task_id.to_string()))
            .update_expression("ADD outbox_failures :one")
            .condition_expression("attribute_exists(outbox_pending)")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match counted {
            Ok(output) => Ok(output
                .attributes
                .as_ref()
                .and_then(|a| a.get("outbox_failures")?.as_n().ok()?.parse().ok())
                .unwrap_or(0)),
            // Published meanwhile: nothing is failing any more.
            Err(err) if is_condition_failure(&err) => Ok(0),
            Err(err) => Err(backend(err)),
        }
    }

    async fn park(&self, task_id: Uuid) -> Result<(), StoreError> {
        let parked = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", text(task_id.to_string()))
            .update_expression("SET outbox_pending = :parked")
            .condition_expression("outbox_pending = :pending")
            .expression_attribute_values(":parked", self.marker(PARKED, task_id))
            .expression_attribute_values(":pending", self.marker(PENDING, task_id))
            .send()
            .await;
        match parked {
            Ok(_) => Ok(()),
            // Published or parked meanwhile.
            Err(err) if is_condition_failure(&err) => Ok(()),
            Err(err) => Err(backend(err)),
        }
    }

    async fn parked(&self) -> Result<usize, StoreError> {
        let counts = self
            .each_shard(PARKED, |marker| self.count_in(marker))
            .await?;
        Ok(counts.into_iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use std::sync::{Arc, Mutex};

    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemInput};
    use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemInput};
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};

    use super::*;
    use crate::fixtures;

    #[test]
    fn when_a_page_ends_should_resume_from_its_last_index_key() {
        let key = HashMap::from([
            (
                "id".to_owned(),
                text("0b9d8f0e-6a3e-4c43-9d43-7d3cfa0b2a11"),
            ),
            ("user_id".to_owned(), text("caller")),
            ("created_at".to_owned(), text("2026-11-27T10:00:00.000Z")),
        ]);
        let cursor = encode_cursor(&key).unwrap();
        assert_eq!(decode_cursor(&cursor, "caller").unwrap(), key);
        assert!(matches!(
            decode_cursor(&cursor, "mallory"),
            Err(StoreError::InvalidCursor)
        ));
    }

    /// The item as stored: `task` with `events` in its outbox, last written by `write_id`.
    fn stored(task: &Task, events: &[&EventEnvelope], write_id: &str) -> Item {
        let mut item = write_item(task, "task").unwrap();
        let outbox = events
            .iter()
            .map(|e| (e.id.to_string(), text(e.to_json())))
            .collect();
        item.insert("outbox".into(), AttributeValue::M(outbox));
        item.insert(WRITE_ID.into(), text(write_id));
        item
    }

    /// What DynamoDB answers when a condition does not hold.
    fn refused() -> ConditionalCheckFailedException {
        let meta = ErrorMetadata::builder()
            .code("ConditionalCheckFailedException")
            .message("The conditional request failed")
            .build();
        ConditionalCheckFailedException::builder()
            .message("The conditional request failed")
            .meta(meta)
            .build()
    }

    /// A store whose conditional writes are refused, as the retry of a committed write is,
    /// and whose read answers `held(the id of the write refused)`.
    fn store_after_lost_answer(
        held: impl Fn(&str) -> Item + Send + Sync + 'static,
    ) -> DynamoTaskStore {
        let written = Arc::new(Mutex::new(String::new()));
        let (on_put, on_update) = (written.clone(), written.clone());
        let put = mock!(aws_sdk_dynamodb::Client::put_item).then_compute_response(
            move |input: &PutItemInput| {
                let id = input
                    .item()
                    .and_then(|i| i.get(WRITE_ID))
                    .and_then(|v| v.as_s().ok());
                *on_put.lock().unwrap() = id.cloned().unwrap_or_default();
                MockResponse::Error(PutItemError::ConditionalCheckFailedException(refused()))
            },
        );
        let update = mock!(aws_sdk_dynamodb::Client::update_item).then_compute_response(
            move |input: &UpdateItemInput| {
                let values = input.expression_attribute_values();
                let id = values
                    .and_then(|v| v.get(":write"))
                    .and_then(|v| v.as_s().ok());
                *on_update.lock().unwrap() = id.cloned().unwrap_or_default();
                MockResponse::Error(UpdateItemError::ConditionalCheckFailedException(refused()))
            },
        );
        let read = mock!(aws_sdk_dynamodb::Client::get_item).then_compute_output(move |_| {
            let item = held(&written.lock().unwrap());
            GetItemOutput::builder().set_item(Some(item)).build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put, &update, &read]);
        DynamoTaskStore::new(client, "tasks")
    }

    #[tokio::test]
    async fn when_a_retried_write_finds_its_own_change_should_answer_with_it() {
        // Given a start whose first attempt committed, so that the retry's condition fails
        let classified = fixtures::classified("t");
        let started = classified
            .start(crate::domain::ExecutionStrategy::SingleShot, time::now())
            .unwrap();
        let event = fixtures::envelope(&started);
        let (_, created) = fixtures::created("an earlier event");
        let (task, both) = (started.task.clone(), [created.clone(), event.clone()]);
        let store = store_after_lost_answer(move |id| stored(&task, &[&both[0], &both[1]], id));

        // When the store reports the outcome
        let pending = store
            .apply(&classified, &started.task, Some(&event))
            .await
            .unwrap();

        // Then it is the committed state, with the event still to relay
        let ids: Vec<Uuid> = pending.events.iter().map(|e| e.id).collect();
        assert_eq!(ids, [created.id, event.id]);
        assert_eq!(pending.version, started.task.version);
    }

    #[tokio::test]
    async fn when_another_writer_won_with_an_equal_change_should_answer_conflict() {
        // Given a race of two equal starts, computed in the same millisecond: the other won
        let classified = fixtures::classified("t");
        let ours = classified
            .start(crate::domain::ExecutionStrategy::SingleShot, time::now())
            .unwrap();
        let theirs = ours.task.clone();
        let store = store_after_lost_answer(move |_| stored(&theirs, &[], "another write"));

        let result = store
            .apply(&classified, &ours.task, Some(&fixtures::envelope(&ours)))
            .await;

        assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    }

    #[tokio::test]
    async fn when_a_retried_create_finds_its_task_should_answer_with_it() {
        let (task, created) = fixtures::created("t");
        let (held_task, held_event) = (task.clone(), created.clone());
        let store = store_after_lost_answer(move |id| stored(&held_task, &[&held_event], id));

        let pending = store.create(&task, &created).await.unwrap();

        assert_eq!(pending.events, [created]);
    }
}
