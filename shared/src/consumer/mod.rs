//! The consumer toolkit: turns an SQS batch into per-record processing (a batch's copies
//! of one event applied once), typed failures (transient ones retried with back-off,
//! permanent ones dead-lettered at once) and a partial batch response naming only the
//! messages to deliver again. Each handler applies an event once by itself: its effects
//! are writes conditional on what they record.

mod batch;
mod error;
mod queue;
mod wiring;

pub use batch::{Consumer, EventHandler, RetryBackoff};
pub use error::{BoxError, Chain, ConsumerError, Retry};
pub use queue::{QueueError, Redelivery};
pub use wiring::{run_lambda, ToolkitSettings};
