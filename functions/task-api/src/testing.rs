//! What the tests of the routes share: the in-memory fakes behind a router, and requests as
//! the local server and API Gateway pass them on.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware;
use axum::response::Response;
use axum::Router;
use dashboard::memory::MemoryDashboard;
use serde_json::{json, Value};
use shared::memory::{MemoryArchive, MemoryStore, RecordingPublisher};
use shared::service::TaskService;
use tower::ServiceExt;

use crate::{identity, router, staged, Deps, MemoryRequestKeys};

pub(crate) struct Fixture {
    pub(crate) deps: Deps,
    pub(crate) store: Arc<MemoryStore>,
    pub(crate) publisher: Arc<RecordingPublisher>,
    pub(crate) dashboard: Arc<MemoryDashboard>,
    pub(crate) archive: Arc<MemoryArchive>,
}

pub(crate) fn fixture() -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let publisher = Arc::new(RecordingPublisher::new());
    let dashboard = Arc::new(MemoryDashboard::default());
    let archive = Arc::new(MemoryArchive::default());
    let deps = Deps::new(
        TaskService::new(store.clone(), store.clone(), publisher.clone()),
        dashboard.clone(),
        MemoryRequestKeys::new(),
        archive.clone(),
    );
    Fixture {
        deps,
        store,
        publisher,
        dashboard,
        archive,
    }
}

/// A request as the local server passes it on, `user` in the identity header.
pub(crate) fn request(user: Option<&str>, method: Method, path: &str, body: &str) -> Request {
    let mut builder = axum::http::Request::builder().method(method).uri(path);
    if !body.is_empty() {
        builder = builder.header("content-type", "application/json");
    }
    if let Some(user) = user {
        builder = builder.header(identity::USER_HEADER, user);
    }
    builder.body(Body::from(body.to_owned())).unwrap()
}

/// The router as the local server runs it.
pub(crate) fn local(f: &Fixture) -> Router {
    router(f.deps.clone()).layer(middleware::from_fn(identity::local_headers))
}

/// The status, headers and JSON body of a response.
pub(crate) async fn decode(response: Response) -> (u16, HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let body =
        serde_json::from_slice(&bytes).unwrap_or_else(|err| panic!("not JSON ({err}): {bytes:?}"));
    (status, headers, body)
}

pub(crate) async fn send(app: Router, request: Request) -> (u16, HeaderMap, Value) {
    decode(app.oneshot(request).await.unwrap()).await
}

pub(crate) async fn call(
    f: &Fixture,
    user: Option<&str>,
    method: Method,
    path: &str,
    body: &str,
) -> (u16, Value) {
    let (status, _, body) = send(local(f), request(user, method, path, body)).await;
    (status, body)
}

pub(crate) async fn created(f: &Fixture) -> String {
    let (status, body) = call(
        f,
        Some("alice"),
        Method::POST,
        "/tasks",
        r#"{"title":"Fix bug","description":"details"}"#,
    )
    .await;
    assert_eq!(status, 201);
    body["id"].as_str().unwrap().to_owned()
}

pub(crate) fn keyed(user: &str, path: &str, body: &str, key: &str) -> Request {
    let mut request = request(Some(user), Method::POST, path, body);
    request
        .headers_mut()
        .insert("idempotency-key", HeaderValue::from_str(key).unwrap());
    request
}

/// The router as Lambda runs it, on stage `dev`.
pub(crate) fn lambda(f: &Fixture) -> Router {
    staged(
        router(f.deps.clone()).layer(middleware::from_fn(identity::authorizer)),
        Some("dev"),
    )
}

/// An HTTP API (payload 2.0) event as API Gateway sends it on stage `dev`.
pub(crate) fn gateway_event(
    method: &str,
    path: &str,
    body: Option<&str>,
    claims: Option<Value>,
) -> lambda_http::Request {
    let mut context = json!({
        "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
        "domainPrefix": "api", "http": {"method": method, "path": format!("/dev{path}"),
        "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "test"},
        "requestId": "r", "routeKey": format!("{method} {path}"), "stage": "dev",
        "time": "27/Nov/2026:10:00:00 +0000", "timeEpoch": 1795000000000u64,
    });
    if let Some(claims) = claims {
        context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    let event = json!({
        "version": "2.0", "routeKey": format!("{method} {path}"), "rawPath": format!("/dev{path}"),
        "rawQueryString": "", "headers": {"content-type": "application/json", "x-user-id": "mallory"},
        "requestContext": context, "body": body, "isBase64Encoded": false,
    });
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway event")
}
