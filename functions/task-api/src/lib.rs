//! The task API: one HTTP Lambda serving the task lifecycle routes. `router` assembles the
//! axum router from `routes` (the handlers), `openapi` (their document) and `middleware`
//! (the request's span and id) over `deps`; `main` runs it in Lambda, and the local server
//! runs the same router.

mod deps;
mod errors;
pub mod idempotency;
pub mod identity;
mod middleware;
mod openapi;
pub mod ops;
pub mod page;
mod request_keys;
mod requests;
mod response_headers;
mod responses;
mod router;
mod routes;
mod settings;
#[cfg(test)]
mod testing;

pub use deps::{Deps, DEFAULT_OPERATOR_SCOPE};
pub use errors::ApiError;
pub use idempotency::{MemoryRequestKeys, RequestKeys};
pub use openapi::openapi;
pub use ops::{OpsDeps, OpsSettings};
pub use request_keys::DynamoRequestKeys;
pub use requests::MAX_BODY_BYTES;
pub use router::{ops_router, router, router_with_ops, staged};
pub use settings::ApiSettings;
