//! Replays archived events to one consumer: the events of a time window (optionally of some
//! types) read from the event archive's time index, kept to those the consumer's
//! subscription filter admits, and sent to that consumer's queue alone, with their original
//! ids, bodies and message attributes, so its inbox skips what it applied and applies what
//! it missed. An event archived in a version the consumer's filter does not admit is sent in
//! the version it does (`task.completed.v1` as `.v2`, say), rendered from the archived one
//! with the same id. Bounded in rate, counted first on a dry run, and resumable: a checkpoint file
//! records each shard's progress.

pub mod filter;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use shared::adapters::dynamo::Item;
use shared::adapters::dynamo_archive::{stamp, time_key};
use shared::adapters::DynamoEventArchive;
use shared::archive::ArchivedEvent;
use shared::events::{EventEnvelope, EventKind, EventType};

pub use filter::FilterPolicy;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0}")]
    Usage(String),
    #[error("the archive: {0}")]
    Archive(#[from] shared::ports::StoreError),
    #[error("{what}: {message}")]
    Aws { what: String, message: String },
    #[error("the checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("interrupted; run again with the same arguments to resume")]
    Interrupted,
}

impl ReplayError {
    pub fn aws(what: impl Into<String>, err: impl std::error::Error) -> Self {
        ReplayError::Aws {
            what: what.into(),
            message: aws_sdk_sqs::error::DisplayErrorContext(err).to_string(),
        }
    }
}

/// What to replay, and where to.
#[derive(Debug, Clone)]
pub struct Plan {
    /// From (inclusive) and to (exclusive).
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// CloudEvents types or SNS `event_type`s; empty: every type.
    pub types: Vec<String>,
    pub queue_url: String,
    pub filter: Option<FilterPolicy>,
    /// Events a second at most.
    pub rate: u32,
    pub dry_run: bool,
    pub checkpoint: Option<PathBuf>,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Archived events in the window.
    pub read: u64,
    /// Of those, the ones of the types asked for that the filter admits.
    pub matched: u64,
    /// Sent to the queue (0 on a dry run).
    pub sent: u64,
}

/// Each shard's progress: the time key of the last event sent, or done.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Checkpoint {
    window: String,
    queue_url: String,
    types: Vec<String>,
    shards: BTreeMap<String, Progress>,
    outcome: Outcome,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
enum Progress {
    After(String),
    Done,
}

impl Plan {
    pub fn check(&self) -> Result<(), ReplayError> {
        if self.from >= self.to {
            return Err(ReplayError::Usage("--from must be before --to".to_owned()));
        }
        if self.rate == 0 {
            return Err(ReplayError::Usage("--rate must be at least 1".to_owned()));
        }
        for wanted in &self.types {
            if kind_named(wanted).is_none() {
                return Err(ReplayError::Usage(format!(
                    "--types: {wanted} is no event type (TaskCreated, task.created.v1, ...)"
                )));
            }
        }
        Ok(())
    }

    /// What to send of `event`, if the plan wants it: as archived when the consumer's
    /// filter admits its type, else in the newest version of its kind the filter admits.
    fn delivery(&self, event: &ArchivedEvent) -> Result<Option<Delivery>, ReplayError> {
        let Some(archived) = EventType::named(&event.event_type) else {
            // A type this build does not know (a later version): only an unfiltered replay
            // of every type sends it, with the attributes it cannot name left out.
            let all = self.types.is_empty() && self.filter.is_none();
            return Ok(all.then(|| Delivery {
                body: event.body.clone(),
                attributes: None,
            }));
        };
        let kind = archived.kind();
        let typed = self.types.is_empty()
            || self
                .types
                .iter()
                .any(|wanted| kind_named(wanted) == Some(kind));
        if !typed {
            return Ok(None);
        }
        let admits = |ty: EventType| {
            self.filter
                .as_ref()
                .is_none_or(|filter| filter.admits(&ty.message_attributes()))
        };
        if admits(archived) {
            return Ok(Some(Delivery {
                body: event.body.clone(),
                attributes: Some(archived.message_attributes()),
            }));
        }
        let Some(ty) = EventType::versions(kind).filter(|ty| admits(*ty)).last() else {
            return Ok(None);
        };
        let envelope = EventEnvelope::from_json(&event.body).map_err(|err| {
            ReplayError::Usage(format!(
                "archived event {} cannot be read to send it as {}: {err}",
                event.event_id,
                ty.name()
            ))
        })?;
        let rendered = envelope.as_type(ty).expect("a version of its own kind");
        Ok(Some(Delivery {
            body: rendered.to_json(),
            attributes: Some(ty.message_attributes()),
        }))
    }

    fn window(&self) -> String {
        format!("{}/{}", stamp(self.from), stamp(self.to))
    }
}

/// One message a replay sends: a body and the attributes it travels with.
#[derive(Debug, Clone, PartialEq)]
struct Delivery {
    body: String,
    attributes: Option<[(&'static str, &'static str); 2]>,
}

/// The kind an SNS `event_type` (`TaskCompleted`) or a CloudEvents type of any version
/// (`task.completed.v2`) names.
fn kind_named(name: &str) -> Option<EventKind> {
    EventKind::ALL
        .into_iter()
        .find(|kind| kind.name() == name)
        .or_else(|| EventKind::of_cloud_event_type(name))
}

/// The days the window touches.
fn days(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<NaiveDate> {
    let last = (to - chrono::Duration::milliseconds(1)).date_naive();
    let mut day = from.date_naive();
    let mut days = Vec::new();
    while day <= last {
        days.push(day);
        day = day.succ_opt().expect("a day after");
    }
    days
}

fn load_checkpoint(plan: &Plan) -> Result<Checkpoint, ReplayError> {
    let fresh = Checkpoint {
        window: plan.window(),
        queue_url: plan.queue_url.clone(),
        types: plan.types.clone(),
        ..Checkpoint::default()
    };
    let Some(path) = &plan.checkpoint else {
        return Ok(fresh);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(fresh),
        Err(err) => {
            return Err(ReplayError::Checkpoint {
                path: path.clone(),
                message: err.to_string(),
            })
        }
    };
    let saved: Checkpoint = serde_json::from_str(&text).map_err(|err| ReplayError::Checkpoint {
        path: path.clone(),
        message: err.to_string(),
    })?;
    if (&saved.window, &saved.queue_url, &saved.types)
        != (&fresh.window, &fresh.queue_url, &fresh.types)
    {
        return Err(ReplayError::Checkpoint {
            path: path.clone(),
            message: format!(
                "it is of another replay ({} to {}); remove it to start this one",
                saved.window, saved.queue_url
            ),
        });
    }
    Ok(saved)
}

fn save_checkpoint(plan: &Plan, checkpoint: &Checkpoint) -> Result<(), ReplayError> {
    let Some(path) = &plan.checkpoint else {
        return Ok(());
    };
    let failed = |err: std::io::Error| ReplayError::Checkpoint {
        path: path.clone(),
        message: err.to_string(),
    };
    let partial = path.with_extension("partial");
    let text = serde_json::to_string_pretty(checkpoint).expect("a checkpoint serialises");
    std::fs::write(&partial, text).map_err(failed)?;
    std::fs::rename(&partial, path).map_err(failed)
}

/// Runs `plan` against `archive` and `sqs`; `progress` is told of each event read.
/// Stops at the next batch once `stop` resolves, saving where it was.
pub async fn run(
    plan: &Plan,
    archive: &DynamoEventArchive,
    sqs: &aws_sdk_sqs::Client,
    progress: &indicatif::ProgressBar,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Outcome, ReplayError> {
    plan.check()?;
    let mut checkpoint = load_checkpoint(plan)?;
    let mut stop = std::pin::pin!(stop);
    let pause = Duration::from_secs_f64(10.0 / f64::from(plan.rate));
    let mut ticks = tokio::time::interval(pause.min(Duration::from_secs(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    progress.set_position(checkpoint.outcome.read);
    for day in days(plan.from, plan.to) {
        for shard in 0..archive.shards() {
            let name = shared::adapters::dynamo_archive::time_shard(day, shard);
            let lower = match checkpoint.shards.get(&name) {
                Some(Progress::Done) => continue,
                // Just past the last event sent.
                Some(Progress::After(key)) => format!("{key}\u{0}"),
                None => stamp(plan.from),
            };
            let mut start: Option<Item> = None;
            loop {
                let (events, next) = archive.window(day, shard, &lower, plan.to, start).await?;
                for chunk in events.chunks(10) {
                    checkpoint.outcome.read += chunk.len() as u64;
                    progress.inc(chunk.len() as u64);
                    let mut wanted = Vec::new();
                    for event in chunk {
                        wanted.extend(plan.delivery(event)?);
                    }
                    checkpoint.outcome.matched += wanted.len() as u64;
                    if !plan.dry_run && !wanted.is_empty() {
                        tokio::select! {
                            biased;
                            _ = &mut stop => {
                                save_checkpoint(plan, &checkpoint)?;
                                return Err(ReplayError::Interrupted);
                            }
                            _ = ticks.tick() => {}
                        }
                        send(sqs, &plan.queue_url, &wanted).await?;
                        checkpoint.outcome.sent += wanted.len() as u64;
                    }
                    if let Some(last) = chunk.last() {
                        let key = time_key(last.time, last.event_id);
                        checkpoint.shards.insert(name.clone(), Progress::After(key));
                    }
                }
                save_checkpoint(plan, &checkpoint)?;
                match next {
                    Some(key) => start = Some(key),
                    None => break,
                }
            }
            checkpoint.shards.insert(name, Progress::Done);
            save_checkpoint(plan, &checkpoint)?;
        }
    }
    progress.finish();
    if let Some(path) = &plan.checkpoint {
        // A finished replay leaves nothing to resume; a file left behind would make the
        // same replay, run again, send nothing.
        if let Err(err) = std::fs::remove_file(path).or_else(|err| {
            (err.kind() == std::io::ErrorKind::NotFound)
                .then_some(())
                .ok_or(err)
        }) {
            return Err(ReplayError::Checkpoint {
                path: path.clone(),
                message: format!("the replay finished, but its checkpoint stays: {err}; remove it"),
            });
        }
    }
    Ok(checkpoint.outcome)
}

/// Sends up to ten events as one batch, each with its event id as the entry id's source and
/// the attributes it was published with; entries SQS failed are sent again, three times.
async fn send(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    events: &[Delivery],
) -> Result<(), ReplayError> {
    let mut pending: Vec<&Delivery> = events.iter().collect();
    for attempt in 0..4 {
        let entries = pending
            .iter()
            .enumerate()
            .map(|(i, event)| {
                let attributes: HashMap<String, MessageAttributeValue> = event
                    .attributes
                    .map(|attributes| {
                        attributes
                            .into_iter()
                            .map(|(name, value)| {
                                let attribute = MessageAttributeValue::builder()
                                    .data_type("String")
                                    .string_value(value)
                                    .build()
                                    .expect("data_type is set");
                                (name.to_owned(), attribute)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                SendMessageBatchRequestEntry::builder()
                    .id(format!("e{i}"))
                    .message_body(&event.body)
                    .set_message_attributes(Some(attributes).filter(|a| !a.is_empty()))
                    .build()
                    .expect("id and body are set")
            })
            .collect::<Vec<_>>();
        let output = sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|err| ReplayError::aws(format!("sending to {queue_url}"), err))?;
        if output.failed().is_empty() {
            return Ok(());
        }
        let failed: Vec<usize> = output
            .failed()
            .iter()
            .filter_map(|entry| entry.id().strip_prefix('e')?.parse().ok())
            .collect();
        if attempt == 3 {
            return Err(ReplayError::Aws {
                what: format!("sending to {queue_url}"),
                message: format!("{} entries refused: {:?}", failed.len(), output.failed()),
            });
        }
        pending = failed
            .into_iter()
            .filter_map(|i| pending.get(i).copied())
            .collect();
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
    }
    Ok(())
}

/// The filter policy of the subscription that delivers `topic_arn`'s events to the queue
/// of `queue_arn`: `None` when it has none (every event), an error when there is no such
/// subscription.
pub async fn subscription_filter(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    queue_arn: &str,
) -> Result<Option<FilterPolicy>, ReplayError> {
    let mut token = None;
    loop {
        let page = sns
            .list_subscriptions_by_topic()
            .topic_arn(topic_arn)
            .set_next_token(token)
            .send()
            .await
            .map_err(|err| ReplayError::aws(format!("the subscriptions of {topic_arn}"), err))?;
        for subscription in page.subscriptions() {
            if subscription.endpoint() != Some(queue_arn) {
                continue;
            }
            let arn = subscription.subscription_arn().unwrap_or_default();
            let attributes = sns
                .get_subscription_attributes()
                .subscription_arn(arn)
                .send()
                .await
                .map_err(|err| ReplayError::aws(format!("the subscription {arn}"), err))?;
            let attributes = attributes.attributes().cloned().unwrap_or_default();
            if attributes.get("FilterPolicyScope").map(String::as_str) == Some("MessageBody") {
                return Err(ReplayError::Usage(format!(
                    "the subscription {arn} filters on the message body, which replays do not evaluate"
                )));
            }
            return match attributes.get("FilterPolicy") {
                Some(policy) if !policy.trim().is_empty() => FilterPolicy::parse(policy)
                    .map(Some)
                    .map_err(ReplayError::Usage),
                _ => Ok(None),
            };
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Err(ReplayError::Usage(format!(
                "no subscription of {topic_arn} delivers to {queue_arn}"
            )));
        }
    }
}
