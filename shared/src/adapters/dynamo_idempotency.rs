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
        // Names this claim, so that a retry of the same write whose first answer was lost
        // recognises the lease as its own.
        let owner = Uuid::new_v4().to_string();
        let claimed = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", Self::key(consumer, event_id))
            .item("status", AttributeValue::S(IN_PROGRESS.into()))
            .item("lease_until", epoch_secs(self.lease))
            .item("owner", AttributeValue::S(owner.clone()))
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
                let text = |name: &str| field(name).and_then(|s| s.as_s().ok()).map(String::as_str);
                if text("status") == Some(COMPLETED) {
                    return Ok(Claim::AlreadyApplied);
                }
                if text("owner") == Some(owner.as_str()) {
                    return Ok(Claim::Acquired);
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

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemInput};
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};

    use super::*;

    type Item = std::collections::HashMap<String, AttributeValue>;

    /// A store whose lease write is refused, the item held being `held(the item written)`.
    fn store_holding(
        held: impl Fn(Item) -> Item + Send + Sync + 'static,
    ) -> DynamoIdempotencyStore {
        let rule = mock!(aws_sdk_dynamodb::Client::put_item).then_compute_response(
            move |input: &PutItemInput| {
                let meta = ErrorMetadata::builder()
                    .code("ConditionalCheckFailedException")
                    .build();
                let refused = ConditionalCheckFailedException::builder()
                    .meta(meta)
                    .set_item(Some(held(input.item().cloned().unwrap_or_default())))
                    .build();
                MockResponse::Error(PutItemError::ConditionalCheckFailedException(refused))
            },
        );
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
        DynamoIdempotencyStore::new(client, "processed")
    }

    #[tokio::test]
    async fn when_a_retried_claim_finds_its_own_lease_should_hold_it() {
        // Given the SDK's retry of a lease write whose first answer was lost
        let store = store_holding(|written| written);

        let claim = store.begin("dashboard", Uuid::new_v4()).await.unwrap();

        assert_eq!(claim, Claim::Acquired);
    }

    #[tokio::test]
    async fn when_another_delivery_holds_the_lease_should_say_how_long_for() {
        let store = store_holding(|mut written| {
            written.insert("owner".into(), AttributeValue::S("someone else".into()));
            written.insert("lease_until".into(), epoch_secs(Duration::from_secs(100)));
            written
        });

        let claim = store.begin("dashboard", Uuid::new_v4()).await.unwrap();

        let Claim::InFlight {
            remaining: Some(remaining),
        } = claim
        else {
            panic!("{claim:?}");
        };
        assert!((98..=100).contains(&remaining.as_secs()), "{remaining:?}");
    }

    #[tokio::test]
    async fn when_the_event_was_applied_should_say_so() {
        let store = store_holding(|mut written| {
            written.insert("owner".into(), AttributeValue::S("someone else".into()));
            written.insert("status".into(), AttributeValue::S(COMPLETED.into()));
            written
        });

        let claim = store.begin("dashboard", Uuid::new_v4()).await.unwrap();

        assert_eq!(claim, Claim::AlreadyApplied);
    }
}
