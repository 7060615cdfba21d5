//! Idempotent requests: a `POST` carrying an `Idempotency-Key` header runs once per caller
//! and key. A repeat with the same body gets the first answer (status, body, `Location`)
//! and writes nothing; the same key with another body is 422; a repeat while the first
//! runs is 409. Keys are kept 24 hours.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use shared::ports::StoreError;
use shared::service::TaskError;
use tracing::error;
use uuid::Uuid;

use crate::errors::ApiError;
use crate::identity::Identity;
use crate::requests::MAX_BODY_BYTES;

/// The request header naming a request for idempotency.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a response that repeats the first answer to a key.
pub const REPLAYED: &str = "idempotent-replayed";
/// Longest accepted key.
pub const MAX_KEY_CHARS: usize = 255;
/// How long a key is remembered.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How long a request's claim on its key is exclusive: longer than the function's
/// timeout, so a running request is never taken over.
pub const LEASE: Duration = Duration::from_secs(60);
/// Largest answer kept for a key; a task view is far smaller.
const MAX_STORED_BODY: usize = 256 * 1024;

/// The first answer to a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
}

/// What a key's record says about a new request carrying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// No answer yet: run the request, then `complete` (or `release`) with this token.
    Proceed { token: String },
    /// Answered before, to the same request: repeat the answer.
    Replay(StoredResponse),
    /// The key was used for a different request.
    Mismatch,
    /// A request with the key is still running.
    InProgress,
}

/// Where keys and their answers are kept.
#[async_trait]
pub trait RequestKeys: Send + Sync {
    /// Claims `key` for a request whose fingerprint is `fingerprint`, or reports why not.
    async fn begin(
        &self,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Begin, StoreError>;
    /// Keeps `answer` as the key's answer.
    async fn complete(
        &self,
        key: &str,
        token: &str,
        answer: &StoredResponse,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Gives the key up after a failure the caller may retry (a 5xx).
    async fn release(&self, key: &str, token: &str) -> Result<(), StoreError>;
}

/// The key's record name: scoped to the caller, so two callers' keys never meet. The
/// caller's id goes first with its length (`5:alice#key`), so no pair of id and key reads
/// as another: a `#` in either cannot move the boundary between them.
fn scoped(identity: &Identity, key: &str) -> String {
    let user = &identity.user_id;
    format!("{}:{user}#{key}", user.len())
}

/// The request as far as idempotency goes: method, route path and body.
pub(crate) fn fingerprint(method: &Method, path: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(method.as_str().as_bytes());
    hash.update([0]);
    hash.update(path.as_bytes());
    hash.update([0]);
    hash.update(body);
    hash.finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The key a request carries, checked: 1 to 255 visible ASCII characters.
fn key_of(request: &Request) -> Result<Option<String>, ApiError> {
    let Some(value) = request.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::bad_request(
            "validation_error",
            "Idempotency-Key",
            format!("must be 1 to {MAX_KEY_CHARS} visible ASCII characters"),
        )
    };
    let key = value.to_str().map_err(|_| invalid())?;
    if key.is_empty()
        || key.len() > MAX_KEY_CHARS
        || !key.bytes().all(|byte| byte.is_ascii_graphic())
    {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

fn store_failed(err: StoreError) -> ApiError {
    TaskError::Store(err).into()
}

/// Middleware of the `POST` routes: runs a keyed request once, repeats its answer after.
pub async fn idempotent(
    State(keys): State<Arc<dyn RequestKeys>>,
    request: Request,
    next: Next,
) -> Response {
    match run_once(keys.as_ref(), request, next).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn run_once(
    keys: &dyn RequestKeys,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if request.method() != Method::POST {
        return Ok(next.run(request).await);
    }
    let Some(key) = key_of(&request)? else {
        return Ok(next.run(request).await);
    };
    // Without an identity the route answers 401 by itself.
    let Some(identity) = request.extensions().get::<Identity>().cloned() else {
        return Ok(next.run(request).await);
    };
    let path = request.uri().path().to_owned();
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::payload_too_large(MAX_BODY_BYTES))?;
    let key = scoped(&identity, &key);
    let print = fingerprint(&parts.method, &path, &bytes);

    let token = match keys
        .begin(&key, &print, Utc::now())
        .await
        .map_err(store_failed)?
    {
        Begin::Proceed { token } => token,
        Begin::Replay(answer) => return Ok(replay(answer)),
        Begin::Mismatch => return Err(ApiError::idempotency_key_reused()),
        Begin::InProgress => return Err(ApiError::request_in_progress()),
    };

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if response.status().is_server_error() {
        // The request may be retried with the same key.
        if let Err(err) = keys.release(&key, &token).await {
            error!(error = %err, "cannot release an idempotency key; it frees itself when its lease ends");
        }
        return Ok(response);
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match to_bytes(body, MAX_STORED_BODY).await {
        Ok(bytes) => bytes,
        Err(err) => {
            error!(error = %err, "cannot read an answer to keep for its idempotency key");
            return Err(store_failed(StoreError::Backend(err.to_string())));
        }
    };
    let answer = StoredResponse {
        status: parts.status.as_u16(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        location: parts
            .headers
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
    };
    if let Err(err) = keys.complete(&key, &token, &answer, Utc::now()).await {
        // The request did its work; its answer stands. A repeat after the lease ends
        // would run it again, which the log makes visible.
        error!(error = %err, "cannot keep the answer of an idempotency key");
    }
    parts.extensions.remove::<ApiError>();
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

fn replay(answer: StoredResponse) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (
        status,
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (
                axum::http::HeaderName::from_static(REPLAYED),
                HeaderValue::from_static("true"),
            ),
        ],
        answer.body,
    )
        .into_response();
    if let Some(location) = answer.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

/// Keys in memory, for tests and the handler's unit tests.
#[derive(Default)]
pub struct MemoryRequestKeys {
    records: Mutex<HashMap<String, Record>>,
}

#[derive(Clone)]
struct Record {
    fingerprint: String,
    token: String,
    lease_until: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    answer: Option<StoredResponse>,
}

impl MemoryRequestKeys {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
}

/// `duration` after `now`; the end of time rather than an overflow.
pub(crate) fn after(now: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|duration| now.checked_add_signed(duration))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[async_trait]
impl RequestKeys for MemoryRequestKeys {
    async fn begin(
        &self,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Begin, StoreError> {
        let mut records = self.records.lock().expect("no panics while held");
        if let Some(held) = records.get(key).filter(|r| r.expires_at > now) {
            if held.fingerprint != fingerprint {
                return Ok(Begin::Mismatch);
            }
            if let Some(answer) = &held.answer {
                return Ok(Begin::Replay(answer.clone()));
            }
            if held.lease_until > now {
                return Ok(Begin::InProgress);
            }
        }
        let token = Uuid::new_v4().to_string();
        records.insert(
            key.to_owned(),
            Record {
                fingerprint: fingerprint.to_owned(),
                token: token.clone(),
                lease_until: after(now, LEASE),
                expires_at: after(now, RETENTION),
                answer: None,
            },
        );
        Ok(Begin::Proceed { token })
    }

    async fn complete(
        &self,
        key: &str,
        token: &str,
        answer: &StoredResponse,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut records = self.records.lock().expect("no panics while held");
        match records.get_mut(key).filter(|r| r.token == token) {
            Some(record) => {
                record.answer = Some(answer.clone());
                record.expires_at = after(now, RETENTION);
                Ok(())
            }
            None => Err(StoreError::Backend("the key's lease was lost".into())),
        }
    }

    async fn release(&self, key: &str, token: &str) -> Result<(), StoreError> {
        let mut records = self.records.lock().expect("no panics while held");
        if records
            .get(key)
            .is_some_and(|r| r.token == token && r.answer.is_none())
        {
            records.remove(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(user: &str) -> Identity {
        Identity::new(user, "").expect("an identity")
    }

    #[test]
    fn when_a_caller_or_a_key_holds_the_separator_should_name_records_apart() {
        // Given pairs of caller and key that read the same once joined by '#'
        let pairs = [(("a#b", "c"), ("a", "b#c")), (("a", "#b"), ("a#", "b"))];

        // Then their records are named apart
        for ((user1, key1), (user2, key2)) in pairs {
            assert_ne!(
                scoped(&caller(user1), key1),
                scoped(&caller(user2), key2),
                "{user1}/{key1} and {user2}/{key2}"
            );
        }
        // And one caller's key names one record
        assert_eq!(scoped(&caller("alice"), "k-1"), "5:alice#k-1");
    }
}

/// Keyed requests through the router as the local server runs it.
#[cfg(test)]
mod through_the_router {
    use axum::http::Method;

    use crate::testing::{call, created, fixture, keyed, local, send};

    #[tokio::test]
    async fn when_a_create_is_repeated_with_its_key_should_answer_the_same_and_write_nothing() {
        let f = fixture();
        let body = r#"{"title":"Fix bug","description":"details"}"#;

        let (first_status, first_headers, first) =
            send(local(&f), keyed("alice", "/tasks", body, "create-1")).await;
        let (again_status, again_headers, again) =
            send(local(&f), keyed("alice", "/tasks", body, "create-1")).await;

        assert_eq!((first_status, again_status), (201, 201), "{again}");
        assert_eq!(first, again);
        assert_eq!(first_headers["location"], again_headers["location"]);
        assert_eq!(again_headers["idempotent-replayed"], "true");
        assert!(first_headers.get("idempotent-replayed").is_none());
        assert_eq!(f.store.task_count(), 1);
        assert_eq!(f.publisher.published().len(), 1);
        // Another caller's equal key is another key.
        let (status, _, other) = send(local(&f), keyed("bob", "/tasks", body, "create-1")).await;
        assert_eq!(status, 201);
        assert_ne!(other["id"], first["id"]);
    }

    #[tokio::test]
    async fn when_a_key_is_reused_for_another_request_should_answer_422_and_write_nothing() {
        let f = fixture();
        let id = created(&f).await;
        let start = format!("/tasks/{id}/classify");
        let body = r#"{"task_type":"BugFix","complexity":"Simple"}"#;
        let (status, _, _) = send(local(&f), keyed("alice", &start, body, "k")).await;
        assert_eq!(status, 200);

        let other = r#"{"task_type":"Feature","complexity":"Simple"}"#;
        let (status, _, err) = send(local(&f), keyed("alice", &start, other, "k")).await;
        let (elsewhere, _, _) = send(
            local(&f),
            keyed("alice", "/tasks", r#"{"title":"t","description":""}"#, "k"),
        )
        .await;

        assert_eq!(
            (status, err["error"].as_str()),
            (422, Some("idempotency_key_reused"))
        );
        assert_eq!(elsewhere, 422);
        let (_, task) = call(&f, Some("alice"), Method::GET, &format!("/tasks/{id}"), "").await;
        assert_eq!(
            (task["task_type"].as_str(), task["version"].as_u64()),
            (Some("BugFix"), Some(2))
        );
        assert_eq!(f.store.task_count(), 1);
    }

    #[tokio::test]
    async fn when_the_first_request_still_runs_should_answer_409_request_in_progress() {
        let f = fixture();
        let body = r#"{"title":"t","description":"d"}"#;
        let print = crate::idempotency::fingerprint(&Method::POST, "/tasks", body.as_bytes());
        let claimed = f
            .deps
            .request_keys
            .begin("5:alice#slow", &print, chrono::Utc::now())
            .await
            .unwrap();
        assert!(matches!(claimed, crate::idempotency::Begin::Proceed { .. }));

        let (status, _, err) = send(local(&f), keyed("alice", "/tasks", body, "slow")).await;

        assert_eq!(
            (status, err["error"].as_str()),
            (409, Some("request_in_progress"))
        );
        assert_eq!(f.store.task_count(), 0);
    }

    #[tokio::test]
    async fn when_a_keyed_request_fails_on_the_server_should_let_the_retry_run() {
        let f = fixture();
        let body = r#"{"title":"t","description":"d"}"#;
        f.store.set_down(true);
        let (status, _, _) = send(local(&f), keyed("alice", "/tasks", body, "retry-me")).await;
        assert_eq!(status, 500);
        f.store.set_down(false);

        let (status, headers, _) =
            send(local(&f), keyed("alice", "/tasks", body, "retry-me")).await;

        assert_eq!(status, 201);
        assert!(headers.get("idempotent-replayed").is_none());
        assert_eq!(f.store.task_count(), 1);
    }

    #[tokio::test]
    async fn when_a_key_is_malformed_should_answer_400_naming_the_header() {
        let f = fixture();
        let long = "k".repeat(256);
        for key in ["", "has space", long.as_str()] {
            let (status, _, err) = send(
                local(&f),
                keyed("alice", "/tasks", r#"{"title":"t","description":""}"#, key),
            )
            .await;
            assert_eq!(
                (status, err["field"].as_str()),
                (400, Some("Idempotency-Key")),
                "{key:?}: {err}"
            );
        }
        assert_eq!(f.store.task_count(), 0);
    }
}
