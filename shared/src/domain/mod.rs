//! The task domain: its vocabulary (status, type, complexity, strategy, actions), the
//! aggregate and its status machine, the payloads of the events its changes cause, and its
//! errors. Pure code with no knowledge of AWS or of the wire format.

mod error;
mod events;
mod kinds;
mod task;

pub use error::DomainError;
pub use events::{TaskCompleted, TaskCreated, TaskEventData, TaskFailed, TaskStarted};
pub use kinds::{Action, ExecutionStrategy, TaskComplexity, TaskStatus, TaskType};
pub use task::*;
