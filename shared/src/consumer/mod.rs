//! The consumer toolkit: turns an SQS batch into per-record processing with idempotency,
//! retry back-off and a partial batch response naming only the failed messages.

mod batch;
mod idempotency;
mod wiring;

pub use batch::{Consumer, EventHandler, HandlerError, RetryBackoff, RetryScheduler};
pub use idempotency::{Claim, IdempotencyStore};
pub use wiring::{from_env, run_lambda};
