//! What every DynamoDB adapter does with SDK errors and items, in one place; the
//! consumers' own stores use it too.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;

use crate::ports::StoreError;

pub type Item = HashMap<String, AttributeValue>;

/// Any failure of a call, with the SDK's full context.
pub fn backend(err: impl std::error::Error + 'static) -> StoreError {
    StoreError::Backend(DisplayErrorContext(err).to_string())
}

/// Whether a call failed only because its condition expression did not hold.
pub fn is_condition_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error()
        .and_then(|service| service.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

/// An item read back into `T`; `what` names it in the error.
pub fn read_item<T: DeserializeOwned>(item: Item, what: &str) -> Result<T, StoreError> {
    serde_dynamo::from_item(item)
        .map_err(|err| StoreError::Backend(format!("unreadable {what}: {err}")))
}

/// `value` as an item.
pub fn write_item<T: serde::Serialize>(value: &T, what: &str) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value)
        .map_err(|err| StoreError::Backend(format!("cannot serialise {what}: {err}")))
}

/// Writes `item` to `table` unless an item with its key (of which `key` is an attribute)
/// is there already: `true` when this call wrote it, `false` when one was there.
pub async fn put_if_absent(
    client: &Client,
    table: &str,
    item: Item,
    key: &str,
) -> Result<bool, StoreError> {
    let written = client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(#key)")
        .expression_attribute_names("#key", key)
        .send()
        .await;
    match written {
        Ok(_) => Ok(true),
        Err(err) if is_condition_failure(&err) => Ok(false),
        Err(err) => Err(backend(err)),
    }
}
