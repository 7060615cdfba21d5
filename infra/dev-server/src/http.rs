//! The task API's router (and the operations routes) as the local server runs it: the identity headers stand in for
//! the JWT authorizer of AWS.

use axum::middleware;
use axum::Router;
use task_api::{identity, Deps, OpsDeps};

pub use task_api::identity::{SCOPES_HEADER, USER_HEADER};

/// What the dashboard page is told here: name the caller with the headers this server
/// reads, not with a bearer token (the Lambda answers `page::BEARER_IDENTITY`).
pub const LOCAL_IDENTITY: &str =
    r#"{"scheme":"local-headers","user_header":"X-User-Id","scopes_header":"X-User-Scopes"}"#;

pub fn router(deps: Deps) -> Router {
    task_api::router(local(deps)).layer(middleware::from_fn(identity::local_headers))
}

/// The task API and the operations routes, which in AWS a function of their own serves.
pub fn router_with_ops(deps: Deps, ops: OpsDeps) -> Router {
    task_api::router_with_ops(local(deps), ops).layer(middleware::from_fn(identity::local_headers))
}

fn local(deps: Deps) -> Deps {
    Deps {
        page_identity: LOCAL_IDENTITY,
        ..deps
    }
}
