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

/// The item whose key attribute `key` is `value`, read strongly consistent (as the last
/// write left it): every attribute, or those `projection` names.
pub async fn get_consistent(
    client: &Client,
    table: &str,
    key: &str,
    value: AttributeValue,
    projection: Option<&str>,
) -> Result<Option<Item>, StoreError> {
    let output = client
        .get_item()
        .table_name(table)
        .key(key, value)
        .set_projection_expression(projection.map(str::to_owned))
        .consistent_read(true)
        .send()
        .await
        .map_err(backend)?;
    Ok(output.item)
}

/// The items of `keys` (at most 100, BatchGetItem's limit) that exist in `table`, read
/// consistently; what a call leaves unprocessed is asked for again after `backoff`'s
/// jittered delays, and still unread after its retries is an error naming `what`.
pub async fn batch_get_consistent(
    client: &Client,
    table: &str,
    keys: Vec<Item>,
    backoff: crate::retry::Backoff,
    what: &str,
) -> Result<Vec<Item>, StoreError> {
    let mut request = Some(
        aws_sdk_dynamodb::types::KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|err| StoreError::Backend(format!("cannot build the request: {err}")))?,
    );
    let mut items = Vec::new();
    let mut attempt = 0;
    while let Some(keys) = request.take() {
        let output = client
            .batch_get_item()
            .request_items(table, keys)
            .send()
            .await
            .map_err(backend)?;
        if let Some(mut found) = output.responses {
            items.extend(found.remove(table).unwrap_or_default());
        }
        request = output
            .unprocessed_keys
            .and_then(|mut left| left.remove(table))
            .filter(|left| !left.keys().is_empty());
        if request.is_some() {
            if attempt >= backoff.retries {
                return Err(StoreError::Backend(format!("{what} stayed unread")));
            }
            tokio::time::sleep(backoff.jittered(attempt)).await;
            attempt += 1;
        }
    }
    Ok(items)
}

/// Where a query or scan read page by page stands:
///
/// ```ignore
/// let mut pages = Pages::default();
/// while let Some(start) = pages.next() {
///     let output = query.set_exclusive_start_key(start).send().await?;
///     pages.read(output.last_evaluated_key);
/// }
/// ```
///
/// The first page starts at the beginning, each other where the one before ended; the
/// last is the one without a `LastEvaluatedKey` (or the one after which `read` was given
/// none because enough was read).
#[derive(Debug, Default)]
pub struct Pages {
    start: Option<Item>,
    done: bool,
}

impl Iterator for Pages {
    /// Where the next page starts: `None` for the beginning.
    type Item = Option<Item>;

    /// Where the next page starts, or `None` after the last page.
    fn next(&mut self) -> Option<Option<Item>> {
        (!self.done).then(|| self.start.take())
    }
}

impl Pages {
    /// A page was read; `last_evaluated_key` is where it ended, `None` for the last.
    pub fn read(&mut self, last_evaluated_key: Option<Item>) {
        self.done = last_evaluated_key.is_none();
        self.start = last_evaluated_key;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_pages_are_read_should_start_each_where_the_last_ended_and_stop_after_the_last() {
        let key = |id: &str| Item::from([("id".to_owned(), AttributeValue::S(id.to_owned()))]);
        let mut pages = Pages::default();
        let mut starts = Vec::new();
        let mut ends = vec![None, Some(key("b")), Some(key("a"))];
        while let Some(start) = pages.next() {
            starts.push(start);
            pages.read(ends.pop().expect("no page after the last"));
        }
        assert_eq!(starts, [None, Some(key("a")), Some(key("b"))]);
    }
}
