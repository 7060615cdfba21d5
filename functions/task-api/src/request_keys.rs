//! DynamoDB adapter of `RequestKeys`: one item per caller and key (`pk`), claimed with a
//! lease while the request runs, then holding the answer until its TTL (`expires_at`)
//! removes it.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use shared::adapters::dynamo::{backend, is_condition_failure};
use shared::ports::StoreError;
use uuid::Uuid;

use crate::idempotency::{after, Begin, RequestKeys, StoredResponse, LEASE, RETENTION};

#[derive(Clone)]
pub struct DynamoRequestKeys {
    client: Client,
    table: String,
}

impl DynamoRequestKeys {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoRequestKeys {
            client,
            table: table.into(),
        }
    }
}

fn secs(at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(at.timestamp().to_string())
}

fn millis(at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(at.timestamp_millis().to_string())
}

type Item = HashMap<String, AttributeValue>;

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

#[async_trait]
impl RequestKeys for DynamoRequestKeys {
    async fn begin(
        &self,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Begin, StoreError> {
        let token = Uuid::new_v4().to_string();
        // A new key, an expired one (TTL removes items late), or one whose request ran
        // out of its lease without an answer.
        let claimed = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(key.to_owned()))
            .item("fingerprint", AttributeValue::S(fingerprint.to_owned()))
            .item("token", AttributeValue::S(token.clone()))
            .item("lease_until", millis(after(now, LEASE)))
            .item("expires_at", secs(after(now, RETENTION)))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now_secs \
                 OR (attribute_not_exists(answer_status) AND fingerprint = :fingerprint \
                     AND lease_until < :now_millis)",
            )
            .expression_attribute_values(":now_secs", secs(now))
            .expression_attribute_values(":now_millis", millis(now))
            .expression_attribute_values(":fingerprint", AttributeValue::S(fingerprint.to_owned()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match claimed {
            Ok(_) => return Ok(Begin::Proceed { token }),
            Err(err) if is_condition_failure(&err) => err,
            Err(err) => return Err(backend(err)),
        };
        let held = match err.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(failure)) => failure.item(),
            _ => None,
        };
        let Some(held) = held else {
            return Err(StoreError::Backend(
                "the key's record was not returned".into(),
            ));
        };
        if text(held, "fingerprint") != Some(fingerprint) {
            return Ok(Begin::Mismatch);
        }
        match number(held, "answer_status").and_then(|s| u16::try_from(s).ok()) {
            Some(status) => Ok(Begin::Replay(StoredResponse {
                status,
                body: text(held, "answer_body").unwrap_or_default().to_owned(),
                location: text(held, "answer_location").map(str::to_owned),
            })),
            None => Ok(Begin::InProgress),
        }
    }

    async fn complete(
        &self,
        key: &str,
        token: &str,
        answer: &StoredResponse,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":token", AttributeValue::S(token.to_owned()))
            .expression_attribute_values(":status", AttributeValue::N(answer.status.to_string()))
            .expression_attribute_values(":body", AttributeValue::S(answer.body.clone()))
            .expression_attribute_values(":expires", secs(after(now, RETENTION)));
        update = match &answer.location {
            Some(location) => update
                .update_expression(
                    "SET answer_status = :status, answer_body = :body, \
                     answer_location = :location, expires_at = :expires",
                )
                .expression_attribute_values(":location", AttributeValue::S(location.clone())),
            None => update.update_expression(
                "SET answer_status = :status, answer_body = :body, expires_at = :expires",
            ),
        };
        update.send().await.map_err(backend)?;
        Ok(())
    }

    async fn release(&self, key: &str, token: &str) -> Result<(), StoreError> {
        let released = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .condition_expression("#token = :token AND attribute_not_exists(answer_status)")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":token", AttributeValue::S(token.to_owned()))
            .send()
            .await;
        match released {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => Ok(()),
            Err(err) => Err(backend(err)),
        }
    }
}
