//! Errors of the domain layer: refused input and refused transitions.
//! They know nothing of storage or HTTP; the task API maps them to responses.

use std::borrow::Cow;

use super::kinds::{Action, TaskStatus};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    #[error("{field} {reason}")]
    Validation {
        field: &'static str,
        reason: Cow<'static, str>,
    },
    #[error("cannot {} a task that is {}", action.as_str(), status.as_str())]
    InvalidTransition { action: Action, status: TaskStatus },
}

impl DomainError {
    pub fn validation(field: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        DomainError::Validation {
            field,
            reason: reason.into(),
        }
    }

    /// The input field at fault, for validation errors.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            DomainError::Validation { field, .. } => Some(field),
            DomainError::InvalidTransition { .. } => None,
        }
    }
}
