//! The task API's router as the local server runs it: the identity headers stand in for
//! the JWT authorizer of AWS.

use axum::middleware;
use axum::Router;
use task_api::{identity, Deps};

pub use task_api::identity::{SCOPES_HEADER, USER_HEADER};

pub fn router(deps: Deps) -> Router {
    task_api::router(deps).layer(middleware::from_fn(identity::local_headers))
}
