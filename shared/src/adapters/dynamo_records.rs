//! DynamoDB adapter of `RecordStore`: one item per task id, written only if absent.

use std::marker::PhantomData;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use super::dynamo::{get_consistent, put_if_absent, read_item, write_item};
use crate::ports::StoreError;
use crate::records::RecordStore;

pub struct DynamoRecordStore<T> {
    client: Client,
    table: String,
    record: PhantomData<fn() -> T>,
}

impl<T> DynamoRecordStore<T> {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoRecordStore {
            client,
            table: table.into(),
            record: PhantomData,
        }
    }
}

#[async_trait]
impl<T> RecordStore<T> for DynamoRecordStore<T>
where
    T: Serialize + DeserializeOwned + Send + Sync,
{
    async fn record(&self, task_id: Uuid, record: &T) -> Result<bool, StoreError> {
        let mut item = write_item(record, "record")?;
        item.insert("task_id".into(), AttributeValue::S(task_id.to_string()));
        put_if_absent(&self.client, &self.table, item, "task_id").await
    }

    async fn get(&self, task_id: Uuid) -> Result<Option<T>, StoreError> {
        let key = AttributeValue::S(task_id.to_string());
        get_consistent(&self.client, &self.table, "task_id", key, None)
            .await?
            .map(|item| read_item(item, "record"))
            .transpose()
    }
}
