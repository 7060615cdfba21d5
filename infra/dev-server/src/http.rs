//! Bridges plain HTTP requests to the task API handler, as API Gateway does in AWS.

use axum::body::{to_bytes, Body as AxumBody};
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::{Body, RequestExt};
use task_api::{ApiError, Deps, MAX_BODY_BYTES};

/// Header naming the caller locally, in place of the JWT authorizer's `sub` claim.
pub const USER_HEADER: &str = "x-user-id";

/// What the dashboard page is told here: name the caller with the headers this server
/// reads, not with a bearer token (the Lambda answers `page::BEARER_IDENTITY`).
pub const LOCAL_IDENTITY: &str =
    r#"{"scheme":"local-headers","user_header":"X-User-Id","scopes_header":"X-User-Scopes"}"#;

pub fn router(deps: Deps) -> Router {
    Router::new()
        .route("/dashboard/identity.json", get(local_identity))
        .fallback(serve)
        .with_state(deps)
}

async fn local_identity() -> Response {
    let mut response = Response::new(AxumBody::from(LOCAL_IDENTITY));
    for (name, value) in task_api::page::headers("application/json") {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn serve(State(deps): State<Deps>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return into_axum(task_api::error_response(&ApiError::payload_too_large(
                MAX_BODY_BYTES,
            )))
        }
    };
    let user_id = parts
        .headers
        .get(USER_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let query: QueryMap = parts
        .uri
        .query()
        .unwrap_or_default()
        .parse()
        .unwrap_or_default();
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        Body::Binary(bytes.to_vec())
    };
    let request = lambda_http::Request::from_parts(parts, body).with_query_string_parameters(query);
    into_axum(task_api::handle(&deps, user_id.as_deref(), request).await)
}

fn into_axum(response: lambda_http::Response<Body>) -> Response {
    let (parts, body) = response.into_parts();
    let body = match body {
        Body::Text(text) => AxumBody::from(text),
        Body::Binary(bytes) => AxumBody::from(bytes),
        _ => AxumBody::empty(),
    };
    Response::from_parts(parts, body)
}
