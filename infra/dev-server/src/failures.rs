//! Local only, for fault runs: `CONSUMER_FAILURE_SHARE` makes each consumer fail that
//! share of events transiently, once per event and process, before applying them. The
//! events are picked by their id, so a redelivery of a failed one is applied.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use shared::consumer::{Consumer, ConsumerError, EventHandler};
use shared::events::EventEnvelope;
use shared::settings::{ConfigError, Variables};
use uuid::Uuid;

pub const CONSUMER_FAILURE_SHARE: &str = "CONSUMER_FAILURE_SHARE";

/// The share from the variables: 0 (the default) to 1.
pub fn share(variables: &Variables) -> Result<f64, ConfigError> {
    let share: f64 = variables.parsed_or(CONSUMER_FAILURE_SHARE, 0.0)?;
    if !(0.0..=1.0).contains(&share) {
        return Err(ConfigError::invalid(
            CONSUMER_FAILURE_SHARE,
            "must be from 0 to 1",
        ));
    }
    Ok(share)
}

/// `consumer`, failing `share` of its events once; unchanged when `share` is 0.
pub fn inject(consumer: Consumer, share: f64) -> Consumer {
    if share <= 0.0 {
        return consumer;
    }
    consumer.map_handler(|inner| {
        Arc::new(FailingShare {
            inner,
            share,
            failed: Mutex::new(HashSet::new()),
        })
    })
}

struct FailingShare {
    inner: Arc<dyn EventHandler>,
    share: f64,
    failed: Mutex<HashSet<Uuid>>,
}

/// Whether the event falls in the share, from its id and the consumer's name.
fn picked(event: Uuid, consumer: &str, share: f64) -> bool {
    // FNV-1a over the id and the name: each consumer picks its own events.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in event.as_bytes().iter().chain(consumer.as_bytes()) {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    (hash as f64 / u64::MAX as f64) < share
}

#[async_trait]
impl EventHandler for FailingShare {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn handle(&self, event: &EventEnvelope) -> Result<(), ConsumerError> {
        self.fail_once(event)?;
        self.inner.handle(event).await
    }

    async fn handle_body(&self, event: &EventEnvelope, body: &str) -> Result<(), ConsumerError> {
        self.fail_once(event)?;
        self.inner.handle_body(event, body).await
    }

    fn applies_batches(&self) -> bool {
        self.inner.applies_batches()
    }

    /// The events of the share fail; the others go to the handler together.
    async fn handle_batch(
        &self,
        events: &[(&EventEnvelope, &str)],
    ) -> Vec<Result<(), ConsumerError>> {
        let failed: Vec<Result<(), ConsumerError>> = events
            .iter()
            .map(|(event, _)| self.fail_once(event))
            .collect();
        let rest: Vec<(&EventEnvelope, &str)> = events
            .iter()
            .zip(&failed)
            .filter(|(_, failed)| failed.is_ok())
            .map(|(event, _)| *event)
            .collect();
        let mut applied = self.inner.handle_batch(&rest).await.into_iter();
        failed
            .into_iter()
            .map(|failed| match failed {
                Ok(()) => applied.next().unwrap_or(Ok(())),
                Err(err) => Err(err),
            })
            .collect()
    }
}

impl FailingShare {
    /// Fails the event the first time, if it is in the share.
    fn fail_once(&self, event: &EventEnvelope) -> Result<(), ConsumerError> {
        if picked(event.id, self.name(), self.share) {
            let first = self
                .failed
                .lock()
                .map(|mut failed| failed.insert(event.id))
                .unwrap_or(false);
            if first {
                return Err(ConsumerError::transient(format!(
                    "failure injected by {CONSUMER_FAILURE_SHARE}"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_about_the_share_of_events() {
        let picked = (0..10_000)
            .filter(|_| picked(Uuid::new_v4(), "dashboard", 0.1))
            .count();
        assert!((800..1200).contains(&picked), "{picked}");
    }

    #[test]
    fn a_share_outside_zero_to_one_is_refused() {
        let variables = Variables::new([(CONSUMER_FAILURE_SHARE, "1.5")]);
        assert!(share(&variables).is_err());
        assert_eq!(share(&Variables::new([("X", "1")])).unwrap(), 0.0);
    }
}
