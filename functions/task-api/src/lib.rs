//! The task API: one HTTP Lambda serving the task lifecycle routes.
//! `handler` adapts HTTP to the use cases; `main` wires it to AWS.

mod errors;
pub mod handler;
pub mod identity;
pub mod page;
mod requests;
mod responses;
mod routes;
mod settings;

pub use errors::ApiError;
pub use handler::{handle, Deps};
pub use requests::MAX_BODY_BYTES;
pub use settings::ApiSettings;

/// The JSON error response of `err`, for hosts that refuse a request before the handler.
pub fn error_response(err: &ApiError) -> lambda_http::Response<lambda_http::Body> {
    responses::error(err)
}
