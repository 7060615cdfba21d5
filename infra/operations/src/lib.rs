//! The operations read model, shared by the `ops` command and the operations function:
//! each consumer's queue and dead-letter queue, the outbox, and the dead letters triaged
//! (by reason, event type and age) and redriven, one by one or as a filtered set, at a
//! bounded rate, or discarded on an operator's explicit word.
//!
//! A dead letter's reason is the `dead_letter_reason` attribute the consumer toolkit sets
//! when it dead-letters a message no retry can help; a message SQS itself moved after
//! `maxReceiveCount` receives carries none (a move adds no attribute), and its reason is
//! [`MAX_RECEIVES`].

pub mod consumers;
pub mod dead_letters;
pub mod filter;
pub mod letter;
pub mod measures;
pub mod objectives;
pub mod overview;
pub mod stats;

pub use consumers::{Consumer, Queues};
pub use dead_letters::{Discarded, Redrive, RedriveOutcome, Scan};
pub use filter::{parse_age, Filter, FilterText, TypeFilter};
pub use letter::DeadLetter;
pub use measures::{LocalMeasures, Measures};
pub use objectives::{Attainment, Objective};
pub use overview::{overview, Overview, Sources};
pub use stats::{OutboxStats, QueueStats};

/// The reason of a dead letter that SQS moved after its receives.
pub const MAX_RECEIVES: &str = "max receives";

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Bad input; the message names the field.
    #[error("{0}")]
    Usage(String),
    #[error("{what}: {message}")]
    Aws { what: String, message: String },
}

impl OpsError {
    pub fn usage(message: impl Into<String>) -> Self {
        OpsError::Usage(message.into())
    }

    pub fn aws(what: impl Into<String>, err: impl std::error::Error) -> Self {
        OpsError::Aws {
            what: what.into(),
            message: aws_sdk_sqs::error::DisplayErrorContext(err).to_string(),
        }
    }
}
