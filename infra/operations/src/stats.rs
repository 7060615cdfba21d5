//! Counts: a queue's messages (visible, in flight, delayed), and the outbox's pending and
//! parked tasks with the age of the oldest pending event.

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use aws_sdk_sqs::types::QueueAttributeName;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use shared::adapters::OUTBOX_INDEX;

use crate::OpsError;

/// The outbox markers' partition keys are `<state>#<shard>` (`DynamoTaskStore`).
const PENDING: &str = "PENDING";
const PARKED: &str = "PARKED";
/// Shards queried at once.
const SHARD_QUERIES: usize = 8;

/// A queue's approximate counts, as SQS reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueStats {
    /// Waiting to be received (`ApproximateNumberOfMessages`).
    pub visible: u64,
    /// Received and not yet deleted (`ApproximateNumberOfMessagesNotVisible`).
    pub in_flight: u64,
    /// Sent with a delay not yet over (`ApproximateNumberOfMessagesDelayed`).
    pub delayed: u64,
}

impl QueueStats {
    pub fn depth(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

pub async fn queue(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<QueueStats, OpsError> {
    let output = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|err| OpsError::aws(format!("the queue {url}"), err))?;
    let count = |name: QueueAttributeName| {
        output
            .attributes()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(QueueStats {
        visible: count(QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
    })
}

/// The outbox: tasks with unpublished events, those the sweeper parked, and the oldest
/// pending event's time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutboxStats {
    pub pending: u64,
    pub parked: u64,
    pub oldest_pending_since: Option<DateTime<Utc>>,
    pub oldest_pending_age_secs: Option<u64>,
}

/// Reads the task table's sparse outbox index, shard by shard (`shards`: the stack's
/// `OUTBOX_SHARDS`): a count of each state, and the first key of each pending shard.
pub async fn outbox(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    shards: u32,
) -> Result<OutboxStats, OpsError> {
    if shards == 0 {
        return Err(OpsError::usage("outbox_shards: must be at least 1"));
    }
    let per_shard = |state: &'static str| {
        stream::iter(0..shards)
            .map(move |shard| {
                shard_stats(
                    dynamodb,
                    table,
                    format!("{state}#{shard}"),
                    state == PENDING,
                )
            })
            .buffer_unordered(SHARD_QUERIES)
            .try_collect::<Vec<_>>()
    };
    let pending = per_shard(PENDING).await?;
    let parked = per_shard(PARKED).await?;
    let oldest = pending.iter().filter_map(|(_, since)| since.clone()).min();
    let now = Utc::now();
    let oldest_since = oldest
        .as_deref()
        .and_then(|since| DateTime::parse_from_rfc3339(since).ok())
        .map(|since| since.with_timezone(&Utc));
    Ok(OutboxStats {
        pending: pending.iter().map(|(count, _)| count).sum(),
        parked: parked.iter().map(|(count, _)| count).sum(),
        oldest_pending_since: oldest_since,
        oldest_pending_age_secs: oldest_since
            .map(|since| (now - since).num_seconds().max(0).unsigned_abs()),
    })
}

/// One marker's count, and (with `oldest`) its oldest `outbox_since`, the index's sort key.
async fn shard_stats(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    marker: String,
    oldest: bool,
) -> Result<(u64, Option<String>), OpsError> {
    let failed = |err| OpsError::aws(format!("the outbox index of {table}"), err);
    let mut count = 0;
    let mut start = None;
    loop {
        let output = dynamodb
            .query()
            .table_name(table)
            .index_name(OUTBOX_INDEX)
            .key_condition_expression("outbox_pending = :marker")
            .expression_attribute_values(":marker", AttributeValue::S(marker.clone()))
            .select(Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|err| failed(aws_sdk_dynamodb::Error::from(err)))?;
        count += u64::try_from(output.count).unwrap_or(0);
        start = output.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    if count == 0 || !oldest {
        return Ok((count, None));
    }
    let first = dynamodb
        .query()
        .table_name(table)
        .index_name(OUTBOX_INDEX)
        .key_condition_expression("outbox_pending = :marker")
        .expression_attribute_values(":marker", AttributeValue::S(marker))
        .scan_index_forward(true)
        .limit(1)
        .send()
        .await
        .map_err(|err| failed(aws_sdk_dynamodb::Error::from(err)))?;
    let since = first
        .items()
        .first()
        .and_then(|item| item.get("outbox_since")?.as_s().ok().cloned());
    Ok((count, since))
}
