//! The task API: one HTTP Lambda serving the task lifecycle routes. `handler` holds the
//! axum router and its OpenAPI document; `main` runs it in Lambda, and the local server
//! runs the same router.

mod errors;
pub mod handler;
pub mod idempotency;
pub mod identity;
pub mod page;
mod request_keys;
mod requests;
mod response_headers;
mod responses;
mod settings;

pub use errors::ApiError;
pub use handler::{openapi, router, staged, Deps, DEFAULT_OPERATOR_SCOPE};
pub use idempotency::{MemoryRequestKeys, RequestKeys};
pub use request_keys::DynamoRequestKeys;
pub use requests::MAX_BODY_BYTES;
pub use settings::ApiSettings;
