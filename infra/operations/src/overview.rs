//! The operations view in one read: for each consumer its queue (visible, in flight, the
//! age of the oldest message), its dead-letter queue's depth and its latency objective as
//! measured; and the outbox.

use chrono::{DateTime, Utc};
use futures::future::try_join_all;
use serde::{Deserialize, Serialize};

use crate::measures::Measures;
use crate::objectives::{Attainment, Objective, WINDOW};
use crate::stats::{self, OutboxStats, QueueStats};
use crate::{Consumer, OpsError, Queues};

/// One consumer as the view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsumerView {
    pub consumer: Consumer,
    pub queue: QueueStats,
    /// How long the queue's oldest message has waited (none when empty or unknown).
    pub oldest_message_age_secs: Option<u64>,
    pub dead_letters: QueueStats,
    pub objective: Attainment,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Overview {
    pub at: DateTime<Utc>,
    pub consumers: Vec<ConsumerView>,
    pub outbox: OutboxStats,
}

/// Where the view reads from.
pub struct Sources<'a> {
    pub sqs: &'a aws_sdk_sqs::Client,
    pub dynamodb: &'a aws_sdk_dynamodb::Client,
    pub queues: &'a [Queues],
    pub objectives: &'a [Objective],
    pub measures: &'a dyn Measures,
    pub tasks_table: &'a str,
    pub outbox_shards: u32,
}

pub async fn overview(sources: &Sources<'_>) -> Result<Overview, OpsError> {
    let consumers = try_join_all(
        sources
            .queues
            .iter()
            .map(|queues| consumer(sources, queues)),
    );
    let outbox = stats::outbox(sources.dynamodb, sources.tasks_table, sources.outbox_shards);
    let (consumers, outbox) = futures::try_join!(consumers, outbox)?;
    Ok(Overview {
        at: Utc::now(),
        consumers,
        outbox,
    })
}

async fn consumer(sources: &Sources<'_>, queues: &Queues) -> Result<ConsumerView, OpsError> {
    let objective = sources
        .objectives
        .iter()
        .find(|o| o.consumer == queues.consumer)
        .copied()
        .ok_or_else(|| OpsError::usage(format!("{}: no latency objective", queues.consumer)))?;
    let (queue, dead_letters, oldest, ages) = futures::try_join!(
        stats::queue(sources.sqs, &queues.queue_url),
        stats::queue(sources.sqs, &queues.dlq_url),
        sources.measures.oldest_message_age(&queues.queue_url),
        sources
            .measures
            .event_ages(queues.consumer, objective.within, WINDOW),
    )?;
    Ok(ConsumerView {
        consumer: queues.consumer,
        queue,
        // An empty queue has no oldest message, whatever a metric last said.
        oldest_message_age_secs: oldest
            .filter(|_| queue.depth() > 0)
            .map(|age| age.as_secs()),
        dead_letters,
        objective: objective.attainment(ages, WINDOW),
    })
}
