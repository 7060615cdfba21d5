//! Lifecycle events on the wire: CloudEvents 1.0 envelopes around the domain's payloads.
//! The JSON produced here is the contract every consumer reads.

#[cfg(test)]
mod compat;
#[cfg(test)]
mod contract_tests;
mod envelope;
#[cfg(test)]
mod gate_tests;
mod kind;
pub mod schema;
mod sequence;
mod version;

pub use crate::domain::{TaskCompleted, TaskCreated, TaskEventData, TaskFailed, TaskStarted};
pub use envelope::{EventEnvelope, EventParseError, DATA_CONTENT_TYPE, EVENT_SOURCE, SPEC_VERSION};
pub use kind::EventKind;
pub use sequence::{Sequence, SequenceError};
pub use version::{Emission, EventType, TaskCompletedV2, EMITTED_EVENT_TYPES};
