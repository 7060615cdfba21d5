//! A stub of the Lambda Runtime API on loopback: hands one event at a time to the
//! function's `GET .../invocation/next` and reports when the function asks for it and
//! what it answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, Mutex};

/// One event for the function.
pub struct Invocation {
    pub request_id: String,
    pub body: Vec<u8>,
    /// Whether the X-Ray trace header asks for the invocation to be sampled.
    pub sampled: bool,
}

/// What the stub saw, in order.
#[derive(Debug)]
pub enum Seen {
    /// The function asked for its next event (it is idle until it gets one).
    Next(Instant),
    /// The function answered an invocation.
    Answer {
        request_id: String,
        at: Instant,
        body: Bytes,
        ok: bool,
    },
    /// The function reported that it could not start.
    InitError(Bytes),
}

struct Shared {
    invocations: Mutex<mpsc::Receiver<Invocation>>,
    seen: mpsc::UnboundedSender<Seen>,
    function_arn: String,
}

/// A running stub: push events with `invoke`, read what happened with `seen`.
pub struct RuntimeApi {
    pub address: SocketAddr,
    invocations: mpsc::Sender<Invocation>,
    pub seen: mpsc::UnboundedReceiver<Seen>,
    server: tokio::task::JoinHandle<()>,
}

const PREFIX: &str = "/2018-06-01/runtime";
/// The function's timeout in the template, for the deadline header.
const TIMEOUT_MS: u128 = 30_000;

impl RuntimeApi {
    pub async fn start(function_name: &str) -> std::io::Result<RuntimeApi> {
        let (invocations, invocations_rx) = mpsc::channel(1);
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            invocations: Mutex::new(invocations_rx),
            seen: seen_tx,
            function_arn: format!("arn:aws:lambda:us-east-1:000000000000:function:{function_name}"),
        });
        let app = Router::new()
            .route(&format!("{PREFIX}/invocation/next"), get(next))
            .route(
                &format!("{PREFIX}/invocation/{{id}}/response"),
                post(response),
            )
            .route(&format!("{PREFIX}/invocation/{{id}}/error"), post(error))
            .route(&format!("{PREFIX}/init/error"), post(init_error))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let server = tokio::spawn(async move {
            // Ends when the task is aborted; an accept error here ends the run's figures.
            if let Err(err) = axum::serve(listener, app).await {
                eprintln!("[bench] the stub runtime API stopped: {err}");
            }
        });
        Ok(RuntimeApi {
            address,
            invocations,
            seen,
            server,
        })
    }

    /// Queues `invocation` for the function's next `GET .../next`.
    pub async fn invoke(&self, invocation: Invocation) {
        // The receiver lives as long as the server, which lives as long as `self`.
        let _ = self.invocations.send(invocation).await;
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let _ = shared.seen.send(Seen::Next(Instant::now()));
    let mut invocations = shared.invocations.lock().await;
    let Some(invocation) = invocations.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|now| now.as_millis() + TIMEOUT_MS)
        .unwrap_or(TIMEOUT_MS);
    let trace = format!(
        "Root=1-{:08x}-{};Parent={};Sampled={}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|now| now.as_secs())
            .unwrap_or(0),
        &uuid::Uuid::new_v4().simple().to_string()[..24],
        &uuid::Uuid::new_v4().simple().to_string()[..16],
        u8::from(invocation.sampled)
    );
    let mut headers = HeaderMap::new();
    let mut insert = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    insert("lambda-runtime-aws-request-id", invocation.request_id);
    insert("lambda-runtime-deadline-ms", deadline.to_string());
    insert(
        "lambda-runtime-invoked-function-arn",
        shared.function_arn.clone(),
    );
    insert("lambda-runtime-trace-id", trace);
    insert("content-type", "application/json".to_owned());
    (headers, invocation.body).into_response()
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> StatusCode {
    answered(&shared, request_id, body, true)
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> StatusCode {
    answered(&shared, request_id, body, false)
}

fn answered(shared: &Shared, request_id: String, body: Bytes, ok: bool) -> StatusCode {
    let at = Instant::now();
    let _ = shared.seen.send(Seen::Answer {
        request_id,
        at,
        body,
        ok,
    });
    StatusCode::ACCEPTED
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    let _ = shared.seen.send(Seen::InitError(body));
    StatusCode::ACCEPTED
}
