//! DynamoDB adapter of `IdempotencyStore`: one item per consumer and event id, leased while
//! the event is applied, then kept until its TTL (`expires_at`) removes it.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use uuid::Uuid;

use super::dynamo::{backend, is_condition_failure};
use crate::consumer::{Claim, IdempotencyStore};
use crate::ports::StoreError;

const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETED: &str = "COMPLETED";

#[derive(Clone)]
pub struct DynamoIdempotencyStore {
    client: Client,
    table: String,
    /// How long a claim stays exclusive; longer than a consumer's timeout.
    lease: Duration,
    /// How long an applied event is remembered; longer than a queue's retention.
    retention: Duration,
}

impl DynamoIdempotencyStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoIdempotencyStore {
            client,
            table: table.into(),
            lease: Duration::from_secs(120),
            retention: Duration::from_secs(15 * 24 * 3600),
        }
    }

    fn key(consumer: &str, event_id: Uuid) -> AttributeValue {
        AttributeValue::S(format!("{consumer}#{event_id}"))
    }
}

fn epoch_secs(offset: Duration) -> AttributeValue {
    let now = chrono::Utc::now().timestamp();
    AttributeValue::N((now + i64::try_from(offset.as_secs()).unwrap_or(i64::MAX / 2)).to_string())
}

#[async_trait]
impl IdempotencyStore for DynamoIdempotencyStore {
    async fn begin(&self, consumer: &str, event_id: Uuid) -> Result<Claim, StoreError> {
        let claimed = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", Self::key(consumer, event_id))
            .item("status", AttributeValue::S(IN_PROGRESS.into()))
            .item("lease_until", epoch_secs(self.lease))
            .item("expires_at", epoch_secs(self.retention))
            .condition_expression(
                "attribute_not_exists(pk) OR (#status = :in_progress AND lease_until < :now)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.into()))
            .expression_attribute_values(":now", epoch_secs(Duration::ZERO))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match claimed {
            Ok(_) => Ok(Claim::Acquired),
            Err(err) => {
                if !is_condition_failure(&err) {
                    return Err(backend(err));
                }
                let held = err.as_service_error().and_then(|e| match e {
                    aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => c.item(),
                    _ => None,
                });
                let field = |name: &str| held.and_then(|item| item.get(name));
                if field("status")
                    .and_then(|s| s.as_s().ok())
                    .map(String::as_str)
                    == Some(COMPLETED)
                {
                    return Ok(Claim::AlreadyApplied);
                }
                let lease_until = field("lease_until")
                    .and_then(|n| n.as_n().ok())
                    .and_then(|n| n.parse::<i64>().ok());
                let remaining = lease_until.map(|until| {
                    let left = until - chrono::Utc::now().timestamp();
                    Duration::from_secs(u64::try_from(left).unwrap_or(0))
                });
                Ok(Claim::InFlight { remaining })
            }
        }
    }

    async fn complete(&self, consumer: &str, event_id: Uuid) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", Self::key(consumer, event_id))
            .item("status", AttributeValue::S(COMPLETED.into()))
            .item("expires_at", epoch_secs(self.retention))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn release(&self, consumer: &str, event_id: Uuid) -> Result<(), StoreError> {
        let released = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", Self::key(consumer, event_id))
            .condition_expression("#status = :in_progress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.into()))
            .send()
            .await;
        match released {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => Ok(()),
            Err(err) => Err(backend(err)),
        }
    }
}
