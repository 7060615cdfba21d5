//! What the audit reads straight from the emulators: items by key, table sizes, queue
//! depths. The configuration is the SDK's default (`AWS_ENDPOINT_URL_*`, `AWS_PROFILE`, ...);
//! a fault run names the endpoints of the emulators it started.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Select};
use aws_sdk_sqs::types::QueueAttributeName;
use shared::adapters::clients;
use shared::adapters::dynamo::Pages;
use shared::settings::ConfigError;

pub type Item = HashMap<String, AttributeValue>;

/// A call to an emulator that failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct AwsError {
    what: String,
    message: String,
}

impl AwsError {
    fn new(what: impl Into<String>, err: impl std::error::Error) -> Self {
        AwsError {
            what: what.into(),
            message: DisplayErrorContext(err).to_string(),
        }
    }
}

/// The emulators behind a prefix's resources.
#[derive(Clone)]
pub struct Aws {
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    prefix: String,
}

/// The consumers' queues, as template.yaml names them.
pub const QUEUES: [&str; 4] = [
    "MlClassifierQueue",
    "DashboardQueue",
    "CicdMonitorQueue",
    "EventArchiveQueue",
];
pub const DEAD_LETTER_QUEUES: [&str; 4] = [
    "MlClassifierDeadLetterQueue",
    "DashboardDeadLetterQueue",
    "CicdMonitorDeadLetterQueue",
    "EventArchiveDeadLetterQueue",
];

/// Endpoints that replace the configuration's, per service.
#[derive(Debug, Default)]
pub struct Endpoints {
    pub dynamodb: Option<String>,
    pub sqs: Option<String>,
}

impl Aws {
    /// Clients of the default configuration, at `endpoints` where they name one.
    pub async fn connect(prefix: &str, endpoints: &Endpoints) -> Result<Self, ConfigError> {
        let config = clients::load_config().await?;
        let dynamodb = match &endpoints.dynamodb {
            Some(url) => aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&config)
                    .endpoint_url(url)
                    .build(),
            ),
            None => clients::dynamodb(&config),
        };
        let sqs = match &endpoints.sqs {
            Some(url) => aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(&config)
                    .endpoint_url(url)
                    .build(),
            ),
            None => clients::sqs(&config),
        };
        Ok(Aws {
            dynamodb,
            sqs,
            prefix: prefix.to_owned(),
        })
    }

    pub fn name(&self, logical_id: &str) -> String {
        format!("{}-{logical_id}", self.prefix)
    }

    /// The items of `table` under string keys `ids` (attribute `key`), by key.
    pub async fn items(
        &self,
        logical_id: &str,
        key: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Item>, AwsError> {
        let table = self.name(logical_id);
        let mut found = HashMap::new();
        for chunk in ids.chunks(100) {
            let mut request = KeysAndAttributes::builder().consistent_read(true);
            for id in chunk {
                request = request.keys(HashMap::from([(
                    key.to_owned(),
                    AttributeValue::S(id.clone()),
                )]));
            }
            let mut pending = Some(request.build().map_err(|e| AwsError::new(&table, e))?);
            let mut tries = 0;
            while let Some(keys) = pending.take() {
                let output = self
                    .dynamodb
                    .batch_get_item()
                    .request_items(&table, keys)
                    .send()
                    .await
                    .map_err(|e| AwsError::new(format!("reading {table}"), e))?;
                for item in output
                    .responses
                    .unwrap_or_default()
                    .remove(&table)
                    .unwrap_or_default()
                {
                    if let Some(AttributeValue::S(id)) = item.get(key) {
                        found.insert(id.clone(), item);
                    }
                }
                pending = output
                    .unprocessed_keys
                    .unwrap_or_default()
                    .remove(&table)
                    .filter(|keys| !keys.keys.is_empty());
                tries += 1;
                if pending.is_some() {
                    if tries > 20 {
                        return Err(AwsError {
                            what: format!("reading {table}"),
                            message: "keys stayed unprocessed after 20 tries".into(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        Ok(found)
    }

    /// Each task's archived events as `(sequence, event id)`, in sequence order.
    pub async fn archived(
        &self,
        task_ids: &[String],
    ) -> Result<HashMap<String, Vec<(String, String)>>, AwsError> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let table = self.name("EventArchiveTable");
        let table = &table;
        stream::iter(task_ids.iter().cloned())
            .map(|id| async move {
                let mut events = Vec::new();
                let mut pages = Pages::default();
                while let Some(start) = pages.next() {
                    let output = self
                        .dynamodb
                        .query()
                        .table_name(table)
                        .key_condition_expression("task_id = :task")
                        .expression_attribute_values(":task", AttributeValue::S(id.clone()))
                        .projection_expression("#s, event_id")
                        .expression_attribute_names("#s", "sequence")
                        .consistent_read(true)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(|e| AwsError::new(format!("reading {table}"), e))?;
                    for item in output.items() {
                        let field = |name: &str| text(item, name).unwrap_or_default().to_owned();
                        events.push((field("sequence"), field("event_id")));
                    }
                    pages.read(output.last_evaluated_key);
                }
                Ok::<_, AwsError>((id, events))
            })
            .buffer_unordered(16)
            .try_collect()
            .await
    }

    /// How many items `table` holds.
    pub async fn count(&self, logical_id: &str) -> Result<u64, AwsError> {
        let table = self.name(logical_id);
        let mut total = 0;
        let mut pages = Pages::default();
        while let Some(start) = pages.next() {
            let output = self
                .dynamodb
                .scan()
                .table_name(&table)
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| AwsError::new(format!("counting {table}"), e))?;
            total += output.count.max(0) as u64;
            pages.read(output.last_evaluated_key);
        }
        Ok(total)
    }

    async fn queue_url(&self, logical_id: &str) -> Result<String, AwsError> {
        let name = self.name(logical_id);
        self.sqs
            .get_queue_url()
            .queue_name(&name)
            .send()
            .await
            .map_err(|e| AwsError::new(format!("finding queue {name}"), e))?
            .queue_url
            .ok_or_else(|| AwsError {
                what: name,
                message: "no queue URL".into(),
            })
    }

    /// Messages waiting in a queue and messages in flight.
    pub async fn depth(&self, logical_id: &str) -> Result<(u64, u64), AwsError> {
        let url = self.queue_url(logical_id).await?;
        let output = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| AwsError::new(format!("reading queue {url}"), e))?;
        let attributes = output.attributes.unwrap_or_default();
        let number = |name: QueueAttributeName| {
            attributes
                .get(&name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            number(QueueAttributeName::ApproximateNumberOfMessages),
            number(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }
}

/// Whether a task item's outbox holds no event (absent counts as empty).
pub fn outbox_empty(item: &Item) -> bool {
    match item.get("outbox") {
        None | Some(AttributeValue::Null(_)) => true,
        Some(AttributeValue::M(entries)) => entries.is_empty(),
        Some(_) => false,
    }
}

/// A string attribute of an item.
pub fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value),
        _ => None,
    }
}
