//! DynamoDB adapter of `DashboardStore`: one projection item per task and one counters
//! item, changed together in a transaction conditional on the projection's version.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;

use shared::adapters::dynamo::{backend, read_item, write_item};
use shared::events::EventEnvelope;
use shared::ports::StoreError;

use crate::stats::{project, DashboardStats, DashboardStore, TaskProjection};

const STATS_KEY: &str = "stats";
/// Concurrent updates of one task's projection retry this many times.
const MAX_ATTEMPTS: usize = 5;

#[derive(Clone)]
pub struct DynamoDashboardStore {
    client: Client,
    table: String,
}

impl DynamoDashboardStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDashboardStore {
            client,
            table: table.into(),
        }
    }

    async fn projection(&self, key: &AttributeValue) -> Result<Option<TaskProjection>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", key.clone())
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        output
            .item
            .map(|item| read_item(item, "projection"))
            .transpose()
    }
}

fn build_error(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("cannot build the request: {err}"))
}

/// Whether a transaction was cancelled only by a concurrent change, which a fresh read
/// resolves; any other cancellation (validation, capacity) is an error to report.
fn lost_a_race(err: &SdkError<TransactWriteItemsError, HttpResponse>) -> bool {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        err.as_service_error()
    else {
        return false;
    };
    cancelled.cancellation_reasons().iter().all(|reason| {
        matches!(
            reason.code(),
            None | Some("None" | "ConditionalCheckFailed" | "TransactionConflict")
        )
    })
}

#[async_trait]
impl DashboardStore for DynamoDashboardStore {
    async fn apply(&self, event: &EventEnvelope) -> Result<bool, StoreError> {
        let key = AttributeValue::S(format!("task#{}", event.task_id()));
        for _ in 0..MAX_ATTEMPTS {
            let current = self.projection(&key).await?;
            let Some((next, delta)) = project(current.as_ref(), event) else {
                return Ok(false);
            };
            let mut item = write_item(&next, "projection")?;
            item.insert("pk".into(), key.clone());
            let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
            put = match &current {
                Some(current) => put
                    .condition_expression("#version = :version")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_values(
                        ":version",
                        AttributeValue::N(current.version.to_string()),
                    ),
                None => put.condition_expression("attribute_not_exists(pk)"),
            };
            let mut items = vec![TransactWriteItem::builder()
                .put(put.build().map_err(build_error)?)
                .build()];

            let mut names = HashMap::new();
            let mut values = HashMap::new();
            let mut additions = Vec::new();
            let counters = delta.counters.iter().filter(|(_, value)| **value != 0);
            for (i, (name, value)) in counters.enumerate() {
                names.insert(format!("#c{i}"), name.clone());
                values.insert(format!(":c{i}"), AttributeValue::N(value.to_string()));
                additions.push(format!("#c{i} :c{i}"));
            }
            if delta.cost_usd != 0.0 {
                names.insert("#cost".into(), "cost_usd_total".into());
                values.insert(
                    ":cost".into(),
                    AttributeValue::N(delta.cost_usd.to_string()),
                );
                additions.push("#cost :cost".into());
            }
            if !additions.is_empty() {
                let update = Update::builder()
                    .table_name(&self.table)
                    .key("pk", AttributeValue::S(STATS_KEY.into()))
                    .update_expression(format!("ADD {}", additions.join(", ")))
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values))
                    .build()
                    .map_err(build_error)?;
                items.push(TransactWriteItem::builder().update(update).build());
            }

            let written = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            match written {
                Ok(_) => return Ok(true),
                // Another delivery changed this task's projection first: read it again.
                Err(err) if lost_a_race(&err) => continue,
                Err(err) => return Err(backend(err)),
            }
        }
        Err(StoreError::Conflict)
    }

    async fn stats(&self) -> Result<DashboardStats, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(STATS_KEY.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        let counters = output
            .item
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, value)| Some((name, value.as_n().ok()?.parse::<f64>().ok()?)))
            .collect();
        Ok(DashboardStats::from_counters(&counters))
    }
}
