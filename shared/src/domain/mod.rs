//! The task domain: the aggregate, its status machine and its errors.
//! Pure code with no knowledge of AWS; adapters and handlers build on it.

mod error;
mod task;

pub use error::DomainError;
pub use task::*;
