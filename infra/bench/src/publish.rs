//! Events a second that one caller publishes to the topic: k events in one
//! `PublishBatch` against the same k events in k `Publish` calls, one after another.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

/// An event to publish: its body and its string message attributes.
pub struct Event {
    pub body: String,
    pub attributes: HashMap<String, (String, String)>,
}

pub struct PublishFigures {
    pub k: usize,
    pub rounds: usize,
    pub single: Duration,
    pub batch: Duration,
}

impl PublishFigures {
    pub fn events(&self) -> usize {
        self.k * self.rounds
    }

    pub fn single_per_sec(&self) -> f64 {
        self.events() as f64 / self.single.as_secs_f64()
    }

    pub fn batch_per_sec(&self) -> f64 {
        self.events() as f64 / self.batch.as_secs_f64()
    }

    /// The table of one topic, `topic` describing it.
    pub fn table(&self, topic: &str) -> String {
        format!(
            "| publishing {k} events to {topic} | calls | events/s | ×single |\n\
             | --- | --- | --- | --- |\n\
             | {k} × `Publish`, one after another | {single_calls} | {single:.0} | 1.0x |\n\
             | 1 × `PublishBatch` of {k} | {rounds} | {batch:.0} | {ratio:.1}x |\n",
            k = self.k,
            rounds = self.rounds,
            single_calls = self.events(),
            single = self.single_per_sec(),
            batch = self.batch_per_sec(),
            ratio = self.batch_per_sec() / self.single_per_sec(),
        )
    }
}

fn attributes(event: &Event) -> Result<HashMap<String, MessageAttributeValue>, String> {
    event
        .attributes
        .iter()
        .map(|(name, (data_type, value))| {
            MessageAttributeValue::builder()
                .data_type(data_type)
                .string_value(value)
                .build()
                .map(|value| (name.clone(), value))
                .map_err(|err| err.to_string())
        })
        .collect()
}

/// Publishes `rounds` times k events each way, alternating the two ways round by round
/// so that a drift of the emulator's speed falls on both alike.
pub async fn measure(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    events: &[Event],
    rounds: usize,
) -> Result<PublishFigures, String> {
    let k = events.len();
    let mut single = Duration::ZERO;
    let mut batch = Duration::ZERO;
    for round in 0..rounds {
        let ways: [bool; 2] = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for batched in ways {
            let started = Instant::now();
            if batched {
                publish_batch(sns, topic_arn, events).await?;
                batch += started.elapsed();
            } else {
                for event in events {
                    sns.publish()
                        .topic_arn(topic_arn)
                        .message(&event.body)
                        .set_message_attributes(Some(attributes(event)?))
                        .send()
                        .await
                        .map_err(|err| format!("Publish: {err:?}"))?;
                }
                single += started.elapsed();
            }
        }
    }
    Ok(PublishFigures {
        k,
        rounds,
        single,
        batch,
    })
}

async fn publish_batch(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    events: &[Event],
) -> Result<(), String> {
    let entries = events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            PublishBatchRequestEntry::builder()
                .id(i.to_string())
                .message(&event.body)
                .set_message_attributes(Some(attributes(event)?))
                .build()
                .map_err(|err| err.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let output = sns
        .publish_batch()
        .topic_arn(topic_arn)
        .set_publish_batch_request_entries(Some(entries))
        .send()
        .await
        .map_err(|err| format!("PublishBatch: {err:?}"))?;
    if !output.failed().is_empty() {
        return Err(format!("PublishBatch refused {:?}", output.failed()));
    }
    if output.successful().len() != events.len() {
        return Err(format!(
            "PublishBatch accepted {} of {}",
            output.successful().len(),
            events.len()
        ));
    }
    Ok(())
}
