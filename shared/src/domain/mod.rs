//! The task domain: the aggregate, its status machine, the payloads of the events its
//! changes cause, and its errors. Pure code with no knowledge of AWS or of the wire format.

mod error;
mod events;
mod task;

pub use error::DomainError;
pub use events::{TaskCompleted, TaskCreated, TaskEventData, TaskFailed, TaskStarted};
pub use task::*;
