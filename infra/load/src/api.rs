//! The task API as the load tool calls it: one `reqwest` client, typed answers, and the
//! latency of every call recorded under its route.

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::domain::{ExecutionStrategy, TaskComplexity, TaskStatus, TaskType};
use uuid::Uuid;

use crate::latency::{Latencies, Route};

/// A task as `GET /tasks/{id}` shows it; only the fields the audit reads.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskView {
    pub id: Uuid,
    pub title: String,
    pub status: TaskStatus,
    pub task_type: Option<TaskType>,
    pub complexity: Option<TaskComplexity>,
    pub strategy: Option<ExecutionStrategy>,
    pub tokens_used: Option<u64>,
    pub cost_usd: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Page {
    items: Vec<TaskView>,
    next_cursor: Option<String>,
}

/// `GET /dashboard/stats`, as the dashboard writes it.
pub type Stats = dashboard::DashboardStats;

/// A call that got no answer the caller can use.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No HTTP answer: refused, reset or timed out.
    #[error("{route}: no answer: {source}")]
    Transport {
        route: Route,
        #[source]
        source: reqwest::Error,
    },
    /// An answer with another status than the route's success.
    #[error("{route}: HTTP {status}: {body}")]
    Status {
        route: Route,
        status: StatusCode,
        body: String,
    },
    /// A success whose body is not what the contract says.
    #[error("{route}: unreadable answer: {reason}")]
    Body { route: Route, reason: String },
}

impl ApiError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// 409: a refused transition or a version conflict.
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(StatusCode::CONFLICT)
    }

    /// No answer at all, or a 5xx: the write may or may not have happened.
    pub fn is_unknown_outcome(&self) -> bool {
        match self {
            ApiError::Transport { .. } => true,
            ApiError::Status { status, .. } => status.is_server_error(),
            ApiError::Body { .. } => false,
        }
    }
}

/// A transition's request body.
#[derive(Debug, Clone)]
pub enum Transition {
    Start(ExecutionStrategy),
    Complete {
        tokens: u64,
        cost: f64,
    },
    Fail {
        message: String,
        tokens: u64,
        cost: f64,
    },
}

impl Transition {
    fn route(&self) -> Route {
        match self {
            Transition::Start(_) => Route::Start,
            Transition::Complete { .. } => Route::Complete,
            Transition::Fail { .. } => Route::Fail,
        }
    }

    fn body(&self) -> Value {
        match self {
            Transition::Start(strategy) => json!({ "strategy": strategy }),
            Transition::Complete { tokens, cost } => {
                json!({ "tokens_used": tokens, "cost_usd": cost })
            }
            Transition::Fail {
                message,
                tokens,
                cost,
            } => json!({ "error_message": message, "tokens_used": tokens, "cost_usd": cost }),
        }
    }

    /// The status a committed transition leaves.
    pub fn target(&self) -> TaskStatus {
        match self {
            Transition::Start(_) => TaskStatus::InProgress,
            Transition::Complete { .. } => TaskStatus::Completed,
            Transition::Fail { .. } => TaskStatus::Failed,
        }
    }

    /// The status the transition needs.
    pub fn precondition(&self) -> TaskStatus {
        match self {
            Transition::Start(_) => TaskStatus::Classified,
            _ => TaskStatus::InProgress,
        }
    }
}

/// The task API at `base_url`.
#[derive(Clone)]
pub struct Api {
    http: Client,
    base_url: String,
    latencies: Latencies,
}

const USER_HEADER: &str = "X-User-Id";
/// Statistics of all tasks need the operator scope.
const SCOPES_HEADER: &str = "X-User-Scopes";
const OPERATOR_SCOPE: &str = "orchestration/operator";

impl Api {
    pub fn new(base_url: &str, latencies: Latencies) -> Result<Self, reqwest::Error> {
        // reqwest brings no TLS crypto of its own here: the functions' one.
        shared::adapters::tls::install_crypto_provider();
        let http = Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(Api {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            latencies,
        })
    }

    pub fn latencies(&self) -> &Latencies {
        &self.latencies
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub async fn create(
        &self,
        user: &str,
        title: &str,
        description: &str,
    ) -> Result<TaskView, ApiError> {
        let request = self
            .http
            .post(format!("{}/tasks", self.base_url))
            .header(USER_HEADER, user)
            .json(&json!({ "title": title, "description": description }));
        self.call(Route::Create, StatusCode::CREATED, request).await
    }

    pub async fn get(&self, user: &str, id: Uuid) -> Result<TaskView, ApiError> {
        let request = self
            .http
            .get(format!("{}/tasks/{id}", self.base_url))
            .header(USER_HEADER, user);
        self.call(Route::Get, StatusCode::OK, request).await
    }

    pub async fn transition(
        &self,
        user: &str,
        id: Uuid,
        transition: &Transition,
    ) -> Result<TaskView, ApiError> {
        let route = transition.route();
        let request = self
            .http
            .post(format!("{}/tasks/{id}/{}", self.base_url, route.action()))
            .header(USER_HEADER, user)
            .json(&transition.body());
        self.call(route, StatusCode::OK, request).await
    }

    /// One page of the caller's tasks, newest first.
    pub async fn list(
        &self,
        user: &str,
        cursor: Option<&str>,
    ) -> Result<(Vec<TaskView>, Option<String>), ApiError> {
        let mut url = reqwest::Url::parse(&format!("{}/tasks", self.base_url)).map_err(|err| {
            ApiError::Body {
                route: Route::List,
                reason: format!("bad base URL: {err}"),
            }
        })?;
        url.query_pairs_mut().append_pair("limit", "100");
        if let Some(cursor) = cursor {
            url.query_pairs_mut().append_pair("cursor", cursor);
        }
        let request = self.http.get(url).header(USER_HEADER, user);
        let page: Page = self.call(Route::List, StatusCode::OK, request).await?;
        Ok((page.items, page.next_cursor))
    }

    /// All of the caller's tasks.
    pub async fn list_all(&self, user: &str) -> Result<Vec<TaskView>, ApiError> {
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let (items, next) = self.list(user, cursor.as_deref()).await?;
            let empty = items.is_empty();
            all.extend(items);
            match next {
                Some(next) if !empty => cursor = Some(next),
                _ => return Ok(all),
            }
        }
    }

    pub async fn stats(&self) -> Result<Stats, ApiError> {
        let request = self
            .http
            .get(format!("{}/dashboard/stats", self.base_url))
            .header(USER_HEADER, "load-audit")
            .header(SCOPES_HEADER, OPERATOR_SCOPE);
        self.call(Route::Stats, StatusCode::OK, request).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        route: Route,
        success: StatusCode,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ApiError> {
        let started = Instant::now();
        let answer = request.send().await;
        let result = match answer {
            Err(source) => Err(ApiError::Transport { route, source }),
            Ok(response) => {
                let status = response.status();
                match response.bytes().await {
                    Err(source) => Err(ApiError::Transport { route, source }),
                    Ok(bytes) if status == success => {
                        serde_json::from_slice(&bytes).map_err(|err| ApiError::Body {
                            route,
                            reason: err.to_string(),
                        })
                    }
                    Ok(bytes) => Err(ApiError::Status {
                        route,
                        status,
                        body: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
                    }),
                }
            }
        };
        self.latencies.record(route, started.elapsed());
        result
    }
}
