//! Idempotency per consumer and event id: a lease taken before applying an event and made
//! permanent after, so a redelivered event is acknowledged without being applied again.

use async_trait::async_trait;
use uuid::Uuid;

use crate::ports::StoreError;

/// The outcome of trying to claim an event for processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nobody applied it yet: apply it, then `complete` (or `release` on failure).
    Acquired,
    /// It was applied before: acknowledge without applying.
    AlreadyApplied,
    /// Another delivery holds an unexpired lease, which ends in `remaining` (when known):
    /// retry once it has.
    InFlight {
        remaining: Option<std::time::Duration>,
    },
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    async fn begin(&self, consumer: &str, event_id: Uuid) -> Result<Claim, StoreError>;
    /// Records the event as applied; the record expires after the retention period.
    async fn complete(&self, consumer: &str, event_id: Uuid) -> Result<(), StoreError>;
    /// Gives the lease up after a failure, so the next delivery can apply the event.
    async fn release(&self, consumer: &str, event_id: Uuid) -> Result<(), StoreError>;
}

/// For a consumer whose effect is itself a conditional write that a repeat leaves as it
/// was (the event archive's put-if-absent): no record of its own, every delivery applied.
pub struct IdempotentEffect;

#[async_trait]
impl IdempotencyStore for IdempotentEffect {
    async fn begin(&self, _: &str, _: Uuid) -> Result<Claim, StoreError> {
        Ok(Claim::Acquired)
    }

    async fn complete(&self, _: &str, _: Uuid) -> Result<(), StoreError> {
        Ok(())
    }

    async fn release(&self, _: &str, _: Uuid) -> Result<(), StoreError> {
        Ok(())
    }
}
