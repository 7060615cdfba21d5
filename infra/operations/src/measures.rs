//! What only the platform measures: the age of a queue's oldest message, and the ages at
//! which a consumer applied its events. In AWS both are CloudWatch metrics (SQS's
//! `ApproximateAgeOfOldestMessage`, the consumers' `EventAge`), read by the operations
//! function; locally there is no CloudWatch, and [`LocalMeasures`] keeps them in the
//! process that runs the consumers.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::objectives::AgeCount;
use crate::{Consumer, OpsError};

#[async_trait]
pub trait Measures: Send + Sync {
    /// How long the oldest message of the queue at `queue_url` has waited (none when empty
    /// or unknown).
    async fn oldest_message_age(&self, queue_url: &str) -> Result<Option<Duration>, OpsError>;

    /// Of the events `consumer` applied in the last `window`, how many, and how many
    /// within `within` of their emission.
    async fn event_ages(
        &self,
        consumer: Consumer,
        within: Duration,
        window: Duration,
    ) -> Result<AgeCount, OpsError>;
}

/// Ages kept per consumer at most: an hour of a busy local run.
const MAX_AGES: usize = 200_000;

/// The local run's measures, fed by the consumers' `EventAge` and by the local poller of
/// each queue: a message it received and has not deleted is waiting, until it is deleted
/// or, not received again within `forget_after` (its visibility timeout and a poll), moved
/// to the dead-letter queue by SQS.
#[derive(Debug)]
pub struct LocalMeasures {
    ages: Mutex<HashMap<Consumer, VecDeque<(Instant, Duration)>>>,
    waiting: Mutex<HashMap<String, HashMap<String, Waiting>>>,
    forget_after: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    sent_at: DateTime<Utc>,
    last_received: Instant,
}

impl LocalMeasures {
    pub fn new(forget_after: Duration) -> Self {
        LocalMeasures {
            ages: Mutex::default(),
            waiting: Mutex::default(),
            forget_after,
        }
    }

    /// A consumer applied an event `age` after its emission (its `EventAge` metric).
    pub fn applied(&self, consumer: &str, age: Duration) {
        let Ok(consumer) = Consumer::named(consumer) else {
            return;
        };
        let mut ages = self.ages.lock().unwrap_or_else(PoisonError::into_inner);
        let ages = ages.entry(consumer).or_default();
        if ages.len() == MAX_AGES {
            ages.pop_front();
        }
        ages.push_back((Instant::now(), age));
    }

    /// The poller of `queue_url` received the message `message_id`, first sent at `sent_at`.
    pub fn received(&self, queue_url: &str, message_id: &str, sent_at: DateTime<Utc>) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        waiting.entry(queue_url.to_owned()).or_default().insert(
            message_id.to_owned(),
            Waiting {
                sent_at,
                last_received: Instant::now(),
            },
        );
    }

    /// The poller deleted the message: it waits no more.
    pub fn deleted(&self, queue_url: &str, message_id: &str) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(queue) = waiting.get_mut(queue_url) {
            queue.remove(message_id);
        }
    }
}

#[async_trait]
impl Measures for LocalMeasures {
    async fn oldest_message_age(&self, queue_url: &str) -> Result<Option<Duration>, OpsError> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(queue) = waiting.get_mut(queue_url) else {
            return Ok(None);
        };
        queue.retain(|_, w| w.last_received.elapsed() < self.forget_after);
        let now = Utc::now();
        Ok(queue
            .values()
            .map(|w| w.sent_at)
            .min()
            .map(|oldest| (now - oldest).to_std().unwrap_or_default()))
    }

    async fn event_ages(
        &self,
        consumer: Consumer,
        within: Duration,
        window: Duration,
    ) -> Result<AgeCount, OpsError> {
        let ages = self.ages.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(ages) = ages.get(&consumer) else {
            return Ok(AgeCount::default());
        };
        let recent = ages.iter().filter(|(at, _)| at.elapsed() <= window);
        let (events, in_time) = recent.fold((0, 0), |(events, in_time), (_, age)| {
            (events + 1, in_time + u64::from(*age <= within))
        });
        Ok(AgeCount {
            events,
            within: in_time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn when_events_are_applied_should_count_those_within_the_objective() {
        // Given three dashboard events applied after 1 s, 2 s and 9 s, and one of a name
        // that is no consumer
        let measures = LocalMeasures::new(Duration::from_secs(60));
        for secs in [1, 2, 9] {
            measures.applied("dashboard", Duration::from_secs(secs));
        }
        measures.applied("billing", Duration::from_secs(1));
        // When counted against 5 s over an hour
        let count = measures
            .event_ages(
                Consumer::Dashboard,
                Duration::from_secs(5),
                Duration::from_secs(3_600),
            )
            .await
            .unwrap();
        // Then three were applied, two in time; other consumers applied none
        assert_eq!(
            count,
            AgeCount {
                events: 3,
                within: 2
            }
        );
        let none = measures
            .event_ages(
                Consumer::CicdMonitor,
                Duration::from_secs(5),
                Duration::from_secs(3_600),
            )
            .await
            .unwrap();
        assert_eq!(none, AgeCount::default());
    }

    #[tokio::test]
    async fn when_messages_wait_should_give_the_oldest_until_deleted_or_forgotten() {
        // Given two messages received from a queue, sent 30 s and 10 s ago
        let measures = LocalMeasures::new(Duration::from_millis(200));
        let now = Utc::now();
        measures.received("q", "old", now - chrono::Duration::seconds(30));
        measures.received("q", "new", now - chrono::Duration::seconds(10));
        // When asked, then the older one's age is the queue's
        let age = measures.oldest_message_age("q").await.unwrap().unwrap();
        assert!((30..32).contains(&age.as_secs()), "{age:?}");
        // And once it is deleted, the other's
        measures.deleted("q", "old");
        let age = measures.oldest_message_age("q").await.unwrap().unwrap();
        assert!((10..12).contains(&age.as_secs()), "{age:?}");
        // And once not received again for longer than a visibility timeout, none
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(measures.oldest_message_age("q").await.unwrap(), None);
        assert_eq!(measures.oldest_message_age("other").await.unwrap(), None);
    }
}
