//! The consumer toolkit: turns an SQS batch into per-record processing with idempotency,
//! typed failures (transient ones retried with back-off, permanent ones dead-lettered at
//! once) and a partial batch response naming only the messages to deliver again.

mod batch;
mod error;
mod idempotency;
mod queue;
mod wiring;

pub use batch::{Consumer, EventHandler, RetryBackoff};
pub use error::{BoxError, Chain, ConsumerError, Retry};
pub use idempotency::{Claim, IdempotencyStore, IdempotentEffect};
pub use queue::{QueueError, Redelivery};
pub use wiring::{run_lambda, ToolkitSettings};
