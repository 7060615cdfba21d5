//! The operations function: the task API's `/ops/…` routes (`task_api::ops`) in a Lambda
//! of their own, measured by CloudWatch: SQS's `ApproximateAgeOfOldestMessage` of each
//! queue, and the consumers' `EventAge`, whose percentile rank gives the share of events
//! applied within a latency objective.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use operations::measures::Measures;
use operations::objectives::AgeCount;
use operations::{Consumer, OpsError};
use shared::metrics::NAMESPACE;

pub use task_api::OpsSettings;

/// How far back the oldest message's age is looked for: SQS reports it every minute.
const RECENT: Duration = Duration::from_secs(300);

pub struct CloudWatchMeasures {
    cloudwatch: aws_sdk_cloudwatch::Client,
    /// The `Stack` dimension of the consumers' metrics (`STACK_NAME`).
    stack: Option<String>,
}

impl CloudWatchMeasures {
    pub fn new(cloudwatch: aws_sdk_cloudwatch::Client, stack: Option<String>) -> Self {
        CloudWatchMeasures { cloudwatch, stack }
    }

    /// The values of one statistic of `metric`, per `period`, over the last `window`.
    async fn values(
        &self,
        metric: Metric,
        stat: &str,
        period: Duration,
        window: Duration,
    ) -> Result<Vec<f64>, OpsError> {
        let end = chrono::Utc::now().timestamp();
        let start = end - window.as_secs() as i64;
        let query = MetricDataQuery::builder()
            .id("m")
            .metric_stat(
                MetricStat::builder()
                    .metric(metric)
                    .period(period.as_secs() as i32)
                    .stat(stat)
                    .build(),
            )
            .return_data(true)
            .build();
        let output = self
            .cloudwatch
            .get_metric_data()
            .start_time(DateTime::from_secs(start))
            .end_time(DateTime::from_secs(end))
            .metric_data_queries(query)
            .send()
            .await
            .map_err(|err| OpsError::aws("CloudWatch's metrics", err))?;
        Ok(output
            .metric_data_results()
            .iter()
            .flat_map(|result| result.values().iter().copied())
            .collect())
    }

    fn event_age(&self, consumer: Consumer) -> Metric {
        let dimension =
            |name: &str, value: &str| Dimension::builder().name(name).value(value).build();
        let mut metric = Metric::builder()
            .namespace(NAMESPACE)
            .metric_name("EventAge");
        if let Some(stack) = &self.stack {
            metric = metric.dimensions(dimension("Stack", stack));
        }
        metric
            .dimensions(dimension("Consumer", consumer.name()))
            .build()
    }
}

/// A queue's name, the last segment of its URL (`https://sqs.../123/stack-dashboard`).
pub fn queue_name(queue_url: &str) -> &str {
    queue_url.rsplit('/').next().unwrap_or(queue_url)
}

/// Of the events counted (`SampleCount`) and the share within (`PR(:ms)`, in percent),
/// how many were within.
pub fn count_within(events: f64, percent_within: f64) -> AgeCount {
    let events = events.max(0.0).round() as u64;
    let within = (events as f64 * percent_within.clamp(0.0, 100.0) / 100.0).round() as u64;
    AgeCount { events, within }
}

#[async_trait]
impl Measures for CloudWatchMeasures {
    async fn oldest_message_age(&self, queue_url: &str) -> Result<Option<Duration>, OpsError> {
        let metric = Metric::builder()
            .namespace("AWS/SQS")
            .metric_name("ApproximateAgeOfOldestMessage")
            .dimensions(
                Dimension::builder()
                    .name("QueueName")
                    .value(queue_name(queue_url))
                    .build(),
            )
            .build();
        // Newest first, as GetMetricData orders them by default.
        let values = self
            .values(metric, "Maximum", Duration::from_secs(60), RECENT)
            .await?;
        Ok(values
            .first()
            .map(|secs| Duration::from_secs_f64(secs.max(0.0))))
    }

    async fn event_ages(
        &self,
        consumer: Consumer,
        within: Duration,
        window: Duration,
    ) -> Result<AgeCount, OpsError> {
        let events = self
            .values(self.event_age(consumer), "SampleCount", window, window)
            .await?;
        let Some(&events) = events.first() else {
            return Ok(AgeCount::default());
        };
        let rank = format!("PR(:{})", within.as_millis());
        let percent = self
            .values(self.event_age(consumer), &rank, window, window)
            .await?;
        Ok(count_within(
            events,
            percent.first().copied().unwrap_or(0.0),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_a_queue_url_is_given_should_name_the_queue_as_its_metrics_do() {
        assert_eq!(
            queue_name("https://sqs.eu-west-1.amazonaws.com/123456789012/orchestration-dashboard"),
            "orchestration-dashboard"
        );
    }

    #[test]
    fn when_cloudwatch_gives_a_count_and_a_rank_should_count_the_events_within() {
        // Given 1,000 events, 98.5 % of them within the objective
        // Then 985 were within; a rank beyond 0..100 is held to it
        assert_eq!(
            count_within(1_000.0, 98.5),
            AgeCount {
                events: 1_000,
                within: 985
            }
        );
        assert_eq!(count_within(10.0, 140.0).within, 10);
        assert_eq!(count_within(-1.0, 50.0), AgeCount::default());
    }
}
