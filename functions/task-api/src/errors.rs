//! The one mapping from failures to HTTP errors: a status, a stable code, a message and
//! the field at fault; `responses` writes them as `{"error", "message", "field"?}`.

use axum::http::{Method, StatusCode};
use shared::domain::DomainError;
use shared::service::TaskError;
use tracing::error;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Methods to name in an `Allow` header (405 only).
    pub allow: Vec<Method>,
    /// The request's id, for a 5xx answer, so the caller can quote it.
    pub request_id: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: status.as_u16(),
            code,
            message: message.into(),
            field: None,
            allow: Vec::new(),
            request_id: None,
        }
    }

    pub fn bad_request(code: &'static str, field: &str, reason: impl std::fmt::Display) -> Self {
        ApiError {
            field: Some(field.to_owned()),
            ..Self::new(StatusCode::BAD_REQUEST, code, format!("{field} {reason}"))
        }
    }

    pub fn malformed(message: impl Into<String>, field: Option<String>) -> Self {
        ApiError {
            field,
            ..Self::new(StatusCode::BAD_REQUEST, "malformed_request", message)
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the request carries no caller identity",
        )
    }

    pub fn forbidden(scope: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs the {scope} scope"),
        )
    }

    pub fn idempotency_key_reused() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request; use a new key",
        )
    }

    pub fn request_in_progress() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "request_in_progress",
            "a request with this Idempotency-Key is still running; retry in a moment",
        )
    }

    pub fn route_not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {path}"),
        )
    }

    pub fn method_not_allowed(method: &Method, allow: &[Method]) -> Self {
        ApiError {
            allow: allow.to_vec(),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed here"),
            )
        }
    }

    /// Also used by hosts that enforce the body limit before the handler.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body must be at most {limit} bytes"),
        )
    }

    /// A service behind the API failed (the queues, say); the cause is logged, not told.
    pub fn upstream() -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "a service behind the API failed; try again later",
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON (content-type application/json)",
        )
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::Validation { field, reason } => {
                ApiError::bad_request("validation_error", field, reason)
            }
            DomainError::InvalidTransition { .. } => {
                Self::new(StatusCode::CONFLICT, "invalid_transition", err.to_string())
            }
        }
    }
}

impl From<TaskError> for ApiError {
    fn from(err: TaskError) -> Self {
        match err {
            TaskError::Domain(domain) => domain.into(),
            TaskError::NotFound => Self::new(StatusCode::NOT_FOUND, "not_found", "task not found"),
            TaskError::Conflict => {
                Self::new(StatusCode::CONFLICT, "version_conflict", err.to_string())
            }
            TaskError::InvalidCursor => ApiError::bad_request(
                "invalid_cursor",
                "cursor",
                "is not a cursor this API issued",
            ),
            TaskError::Store(source) => {
                error!(error = %source, "request failed in storage");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the request could not be completed; try again later",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use shared::domain::{Action, TaskStatus};
    use shared::ports::StoreError;

    use super::*;

    #[test]
    fn when_use_cases_fail_should_map_to_status_and_code() {
        let cases: Vec<(TaskError, u16, &str)> = vec![
            (
                DomainError::validation("title", "must not be empty").into(),
                400,
                "validation_error",
            ),
            (
                DomainError::InvalidTransition {
                    action: Action::Start,
                    status: TaskStatus::Pending,
                }
                .into(),
                409,
                "invalid_transition",
            ),
            (TaskError::NotFound, 404, "not_found"),
            (TaskError::Conflict, 409, "version_conflict"),
            (TaskError::InvalidCursor, 400, "invalid_cursor"),
            (
                TaskError::Store(StoreError::Backend("timeout".into())),
                500,
                "internal_error",
            ),
        ];
        for (err, status, code) in cases {
            let api: ApiError = err.into();
            assert_eq!((api.status, api.code), (status, code));
        }
    }

    #[test]
    fn when_storage_fails_should_not_leak_the_cause() {
        let api: ApiError =
            TaskError::Store(StoreError::Backend("secret table name".into())).into();
        assert!(!api.message.contains("secret"));
    }

    #[test]
    fn when_validation_fails_should_name_the_field() {
        let api: ApiError = DomainError::validation("title", "must not be empty").into();
        assert_eq!(api.field.as_deref(), Some("title"));
        assert_eq!(api.message, "title must not be empty");
    }
}
