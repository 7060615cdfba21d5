//! The stack's consumers, and where each one's queue and dead-letter queue are.

use aws_sdk_sqs::types::QueueAttributeName;
use serde::{Deserialize, Serialize};

use crate::OpsError;

/// A consumer of the events topic, each with a queue and a dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Consumer {
    MlClassifier,
    Dashboard,
    CicdMonitor,
    EventArchive,
}

impl Consumer {
    pub const ALL: [Consumer; 4] = [
        Consumer::MlClassifier,
        Consumer::Dashboard,
        Consumer::CicdMonitor,
        Consumer::EventArchive,
    ];

    /// As its function's directory names it, and as its dead letters' `dead_letter_consumer`
    /// attribute does: `ml-classifier`.
    pub fn name(self) -> &'static str {
        match self {
            Consumer::MlClassifier => "ml-classifier",
            Consumer::Dashboard => "dashboard",
            Consumer::CicdMonitor => "cicd-monitor",
            Consumer::EventArchive => "event-archive",
        }
    }

    /// The stem of its template resources' logical ids: `MlClassifier` (`MlClassifierQueue`,
    /// `MlClassifierDeadLetterQueue`).
    pub fn stem(self) -> &'static str {
        match self {
            Consumer::MlClassifier => "MlClassifier",
            Consumer::Dashboard => "Dashboard",
            Consumer::CicdMonitor => "CicdMonitor",
            Consumer::EventArchive => "EventArchive",
        }
    }

    /// By either name: `ml-classifier` or `MlClassifier`.
    pub fn named(name: &str) -> Result<Consumer, OpsError> {
        Consumer::ALL
            .into_iter()
            .find(|c| c.name() == name || c.stem() == name)
            .ok_or_else(|| {
                OpsError::usage(format!(
                    "consumer: {name:?} is none of ours ({})",
                    Consumer::ALL.map(Consumer::name).join(", ")
                ))
            })
    }
}

impl std::fmt::Display for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where one consumer's messages are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queues {
    pub consumer: Consumer,
    pub queue_url: String,
    pub dlq_url: String,
}

/// How to find a consumer's queue: by its URL, or by its name in an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locate {
    /// Provisioned locally under a prefix: `<prefix>-<Stem>Queue` (infra/provision.py).
    Prefix(String),
    /// Deployed as a stack: `<stack>-<consumer>` (the template names the queues so).
    Stack(String),
    /// The queue's URL itself.
    Url(String),
}

impl Locate {
    fn queue_name(&self, consumer: Consumer) -> Option<String> {
        match self {
            Locate::Prefix(prefix) => Some(format!("{prefix}-{}Queue", consumer.stem())),
            Locate::Stack(stack) => Some(format!("{stack}-{}", consumer.name())),
            Locate::Url(_) => None,
        }
    }
}

impl Queues {
    /// The consumer's queue as `locate` says, and its dead-letter queue: `dlq_url` if given,
    /// else the one the queue's redrive policy names (as the consumer toolkit finds it).
    pub async fn find(
        sqs: &aws_sdk_sqs::Client,
        consumer: Consumer,
        locate: &Locate,
        dlq_url: Option<&str>,
    ) -> Result<Queues, OpsError> {
        let queue_url = match (locate, locate.queue_name(consumer)) {
            (Locate::Url(url), _) => url.clone(),
            (_, Some(name)) => url_of(sqs, &name).await?,
            (_, None) => unreachable!("a name for every locator but a URL"),
        };
        let dlq_url = match dlq_url {
            Some(url) => url.to_owned(),
            None => {
                let policy = sqs
                    .get_queue_attributes()
                    .queue_url(&queue_url)
                    .attribute_names(QueueAttributeName::RedrivePolicy)
                    .send()
                    .await
                    .map_err(|err| OpsError::aws(format!("the queue {queue_url}"), err))?
                    .attributes()
                    .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy).cloned())
                    .ok_or_else(|| {
                        OpsError::usage(format!(
                            "the queue {queue_url} has no redrive policy; name its DLQ with --dlq-url"
                        ))
                    })?;
                let arn = dead_letter_target(&policy).ok_or_else(|| {
                    OpsError::usage(format!(
                        "the redrive policy of {queue_url} names no dead-letter queue: {policy}"
                    ))
                })?;
                let name = arn.rsplit(':').next().unwrap_or_default().to_owned();
                url_of(sqs, &name).await?
            }
        };
        Ok(Queues {
            consumer,
            queue_url,
            dlq_url,
        })
    }
}

fn dead_letter_target(policy: &str) -> Option<String> {
    let policy: serde_json::Value = serde_json::from_str(policy).ok()?;
    policy["deadLetterTargetArn"].as_str().map(str::to_owned)
}

async fn url_of(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String, OpsError> {
    Ok(sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|err| OpsError::aws(format!("the queue named {name}"), err))?
        .queue_url()
        .unwrap_or_default()
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_a_consumer_is_named_either_way_should_find_it_and_refuse_others_by_field() {
        // Given its directory's name and its logical id's stem
        // When each is looked up
        // Then both name the same consumer, and an unknown one is refused naming the field
        assert_eq!(
            Consumer::named("ml-classifier").unwrap(),
            Consumer::MlClassifier
        );
        assert_eq!(
            Consumer::named("MlClassifier").unwrap(),
            Consumer::MlClassifier
        );
        let err = Consumer::named("billing").unwrap_err().to_string();
        assert!(
            err.starts_with("consumer: \"billing\"") && err.contains("cicd-monitor"),
            "{err}"
        );
    }

    #[test]
    fn when_a_queue_is_located_should_name_it_as_its_environment_does() {
        // Given a local prefix and a stack
        // When the dashboard's queue is named in each
        // Then locally it is <prefix>-DashboardQueue, in AWS <stack>-dashboard
        assert_eq!(
            Locate::Prefix("local".into()).queue_name(Consumer::Dashboard),
            Some("local-DashboardQueue".into())
        );
        assert_eq!(
            Locate::Stack("orchestration".into()).queue_name(Consumer::Dashboard),
            Some("orchestration-dashboard".into())
        );
        assert_eq!(
            dead_letter_target(
                r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:x-DLQ","maxReceiveCount":4}"#
            ),
            Some("arn:aws:sqs:us-east-1:1:x-DLQ".into())
        );
    }
}
