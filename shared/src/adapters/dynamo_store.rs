//! DynamoDB adapter of `TaskStore` and `Outbox`: one item per task, its outbox on the item.
//! Each transition is one conditional UpdateItem, so state and event commit together.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use tracing::warn;
use uuid::Uuid;

use super::dynamo::{
    backend, conflict_or_backend, is_condition_failure, read_item, write_item, Item,
};
use crate::cursor::Cursor;
use crate::domain::Task;
use crate::events::EventEnvelope;
use crate::ports::{Outbox, PendingEvents, StoreError, TaskPage, TaskStore};
use crate::time;

/// Index of a user's tasks by creation time.
pub const BY_USER_INDEX: &str = "by_user";
/// Sparse index of tasks with unpublished events, by the age of the oldest.
pub const OUTBOX_INDEX: &str = "outbox_pending";
const PENDING_MARKER: &str = "PENDING";

#[derive(Clone)]
pub struct DynamoTaskStore {
    client: Client,
    table: String,
}

impl DynamoTaskStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoTaskStore {
            client,
            table: table.into(),
        }
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
        item.insert("outbox_pending".into(), text(PENDING_MARKER));
        item.insert("outbox_since".into(), text(time::format(&event.time)));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await
            .map_err(conflict_or_backend)?;
        Ok(PendingEvents {
            task_id: task.id,
            version: task.version,
            events: vec![event.clone()],
        })
    }

    async fn get(&self, id: Uuid) -> Result<Option<Task>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", text(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        output.item.map(|item| read_item(item, "task")).transpose()
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
        let items = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| read_item(item, "task"))
            .collect::<Result<Vec<Task>, _>>()?;
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
            values.insert(":pending".into(), text(PENDING_MARKER));
            values.insert(":since".into(), text(time::format(&event.time)));
            sets.push("#outbox.#event = :event".into());
            sets.push("outbox_pending = :pending".into());
            sets.push("outbox_since = if_not_exists(outbox_since, :since)".into());
        }
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
            .await
            .map_err(conflict_or_backend)?;
        pending_from_item(&output.attributes.unwrap_or_default())
    }
}

#[async_trait]
impl Outbox for DynamoTaskStore {
    async fn pending(&self, task_id: Uuid) -> Result<PendingEvents, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", text(task_id.to_string()))
            .projection_expression("id, version, outbox")
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        match output.item {
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
                .update_expression("SET outbox = :empty REMOVE outbox_pending, outbox_since")
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
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(OUTBOX_INDEX)
                .key_condition_expression("outbox_pending = :pending AND outbox_since <= :cutoff")
                .expression_attribute_values(":pending", text(PENDING_MARKER))
                .expression_attribute_values(":cutoff", text(time::format(&older_than)))
                .limit(i32::try_from(limit - ids.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            ids.extend(
                output
                    .items
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|item| item.get("id")?.as_s().ok()?.parse::<Uuid>().ok()),
            );
            start = output.last_evaluated_key;
            if start.is_none() || ids.len() >= limit {
                return Ok(ids);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
