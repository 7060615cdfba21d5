//! The task API's router as the local server runs it: the identity headers stand in for
//! the JWT authorizer of AWS.

use axum::middleware;
use axum::Router;
use task_api::{identity, Deps};

pub use task_api::identity::{SCOPES_HEADER, USER_HEADER};

/// What the dashboard page is told here: name the caller with the headers this server
/// reads, not with a bearer token (the Lambda answers `page::BEARER_IDENTITY`).
pub const LOCAL_IDENTITY: &str =
    r#"{"scheme":"local-headers","user_header":"X-User-Id","scopes_header":"X-User-Scopes"}"#;

pub fn router(deps: Deps) -> Router {
    let deps = Deps {
        page_identity: LOCAL_IDENTITY,
        ..deps
    };
    task_api::router(deps).layer(middleware::from_fn(identity::local_headers))
}
