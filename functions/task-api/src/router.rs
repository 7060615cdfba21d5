//! The task API as one axum `Router`, which Lambda (through `lambda_http`) and the local
//! server (through `axum::serve`) both run: the routes and their document, the dashboard
//! page, the errors for unknown paths and methods, and the layers around them all.

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::Method;
use axum::middleware;
use axum::{Extension, Router};

use crate::deps::Deps;
use crate::errors::ApiError;
use crate::idempotency::idempotent;
use crate::middleware::{trace_request, PathPrefix};
use crate::openapi::{documented_routes, served};
use crate::ops::{self, OpsDeps};
use crate::page;
use crate::requests::MAX_BODY_BYTES;
use crate::response_headers::response_headers;

/// The routes, their errors for unknown paths and methods, the body limit and the
/// request's span. Identity comes from a layer of the host: [`crate::identity::authorizer`]
/// in Lambda, [`crate::identity::local_headers`] locally.
pub fn router(deps: Deps) -> Router {
    with_fallbacks(task_routes(deps))
}

/// The task API and the operations routes in one router, as the local server serves them.
pub fn router_with_ops(deps: Deps, ops: OpsDeps) -> Router {
    with_fallbacks(task_routes(deps).merge(ops::router(ops)))
}

/// The operations routes alone, as their own function serves them in AWS.
pub fn ops_router(ops: OpsDeps) -> Router {
    with_fallbacks(ops::router(ops))
}

/// The task routes, their document (with the operations routes', one API's) and the page.
fn task_routes(deps: Deps) -> Router {
    let (routes, document) = documented_routes().split_for_parts();
    routes
        .route("/openapi.json", served(document))
        .route_layer(middleware::from_fn_with_state(
            deps.request_keys.clone(),
            idempotent,
        ))
        // The dashboard page's files need no identity (its data requests do).
        .merge(page::router(deps.page_identity))
        .with_state(deps)
}

fn with_fallbacks(routes: Router) -> Router {
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Outside the routes and their fallbacks, so every answer has them, 404 and 413 too.
        .layer(middleware::from_fn(response_headers))
        .layer(middleware::from_fn(trace_request))
}

/// The router under a named API stage's path (`/dev/tasks`), as API Gateway passes HTTP
/// API paths on; at the root for the `$default` stage or none.
pub fn staged(router: Router, stage: Option<&str>) -> Router {
    match stage.filter(|stage| !stage.is_empty() && *stage != "$default") {
        Some(stage) => {
            let prefix = format!("/{stage}");
            Router::new()
                .nest(&prefix, router)
                .layer(Extension(PathPrefix(prefix)))
        }
        None => router,
    }
}

async fn not_found(request: Request) -> ApiError {
    ApiError::route_not_found(request.uri().path())
}

/// The router adds the `Allow` header.
async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::method_not_allowed(&method, &[])
}

#[cfg(test)]
mod tests {
    use axum::http::{Method, StatusCode};
    use serde_json::json;
    use tower::ServiceExt;
    use uuid::Uuid;

    use crate::identity;
    use crate::page;
    use crate::requests::MAX_BODY_BYTES;
    use crate::testing::{
        call, created, decode, fixture, gateway_event, lambda, local, request, send,
    };

    #[tokio::test]
    async fn when_the_api_answers_should_forbid_sniffing_and_storing_every_answer() {
        // Given a created task
        let f = fixture();
        let id = created(&f).await;

        // When it is read, an unknown route is asked for, a body is too large, and the
        // dashboard page is fetched
        let answers = [
            request(Some("alice"), Method::GET, &format!("/tasks/{id}"), ""),
            request(Some("alice"), Method::GET, "/nowhere", ""),
            request(
                Some("alice"),
                Method::POST,
                "/tasks",
                &"x".repeat(MAX_BODY_BYTES + 1),
            ),
        ];
        // Then each JSON answer says nosniff and no-store
        for request in answers {
            let path = request.uri().to_string();
            let response = local(&f).oneshot(request).await.unwrap();
            let headers = response.headers();
            assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(headers["cache-control"], "no-store", "{path}");
        }
        // And the page keeps its own caching, with nosniff
        let page = local(&f)
            .oneshot(request(None, Method::GET, "/dashboard", ""))
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()["x-content-type-options"], "nosniff");
        assert_eq!(page.headers()["cache-control"], "no-cache");
    }

    #[tokio::test]
    async fn when_the_dashboard_page_is_asked_for_without_identity_should_serve_it() {
        // Given no caller identity at all
        let f = fixture();

        // When the page is asked for
        let response = local(&f)
            .oneshot(request(None, Method::GET, "/dashboard", ""))
            .await
            .unwrap();

        // Then it is served, under its policy, while its data still needs an identity
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8"
        );
        assert_eq!(
            response.headers()["content-security-policy"],
            page::CONTENT_SECURITY_POLICY
        );
        let (status, body) = call(&f, None, Method::GET, "/dashboard/stats", "").await;
        assert_eq!(status, 401, "{body}");
        let (status, _) = call(&f, None, Method::POST, "/dashboard", "").await;
        assert_eq!(status, 405);
        let (status, _, identity) = send(
            local(&f),
            request(None, Method::GET, "/dashboard/identity.json", ""),
        )
        .await;
        assert_eq!((status, identity["scheme"].as_str()), (200, Some("bearer")));
    }

    #[tokio::test]
    async fn when_no_route_matches_should_answer_404_or_405_with_allow() {
        let f = fixture();
        let id = Uuid::new_v4();
        let cases = [
            (Method::GET, "/nothing".to_owned(), 404, "not_found"),
            (Method::POST, format!("/tasks/{id}/pause"), 404, "not_found"),
            (
                Method::DELETE,
                "/tasks".to_owned(),
                405,
                "method_not_allowed",
            ),
            (
                Method::GET,
                format!("/tasks/{id}/start"),
                405,
                "method_not_allowed",
            ),
            (
                Method::PUT,
                format!("/tasks/{id}"),
                405,
                "method_not_allowed",
            ),
        ];
        for (method, path, status, code) in cases {
            let (got, headers, body) =
                send(local(&f), request(Some("alice"), method.clone(), &path, "")).await;
            assert_eq!(
                (got, body["error"].as_str()),
                (status, Some(code)),
                "{method} {path}"
            );
            if status == 405 {
                let allow = headers["allow"].to_str().unwrap();
                assert!(
                    !allow.contains(method.as_str()) && !allow.is_empty(),
                    "{allow}"
                );
            }
        }
        let (_, headers, _) =
            send(local(&f), request(Some("a"), Method::DELETE, "/tasks", "")).await;
        let allow = headers["allow"].to_str().unwrap();
        assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    }

    #[tokio::test]
    async fn when_api_gateway_calls_on_a_named_stage_should_route_and_locate_under_it() {
        let f = fixture();
        let request = gateway_event(
            "POST",
            "/tasks",
            Some(r#"{"title":"t","description":"d"}"#),
            Some(json!({"sub": "alice"})),
        );

        let (status, headers, task) = decode(lambda(&f).oneshot(request).await.unwrap()).await;

        assert_eq!(status, 201);
        let location = headers["location"].to_str().unwrap();
        assert!(location.starts_with("/dev/tasks/"), "{location}");
        assert_eq!(task["user_id"], "alice");
    }

    #[tokio::test]
    async fn when_no_jwt_claims_arrive_should_answer_401_whatever_the_headers_say() {
        let f = fixture();
        let request = gateway_event("GET", "/tasks", None, None);
        assert_eq!(
            identity::from_authorizer(&request),
            None,
            "X-User-Id must not count as identity in Lambda"
        );

        let (status, _, _) = decode(lambda(&f).oneshot(request).await.unwrap()).await;

        assert_eq!(status, 401);
    }
}
