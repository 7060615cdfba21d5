//! Lifecycle events: CloudEvents 1.0 envelopes around typed task payloads.
//! The JSON produced here is the contract every consumer reads.

mod envelope;
mod payloads;
mod trace;

pub use envelope::{EventEnvelope, EventParseError, DATA_CONTENT_TYPE, EVENT_SOURCE, SPEC_VERSION};
pub use payloads::{EventKind, TaskCompleted, TaskCreated, TaskEventData, TaskFailed, TaskStarted};
pub use trace::traceparent;
