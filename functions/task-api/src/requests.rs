//! Request bodies and query parameters, parsed strictly: unknown fields, wrong types and
//! unknown enum values are refused with the offending field named.

use lambda_http::http::header::CONTENT_TYPE;
use lambda_http::{Body, Request, RequestExt};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use shared::domain::{ExecutionStrategy, TaskComplexity, TaskType, Usage};
use shared::service::Command;

use crate::errors::ApiError;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    pub title: String,
    pub description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Classify {
    task_type: TaskType,
    complexity: TaskComplexity,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Start {
    strategy: ExecutionStrategy,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Complete {
    tokens_used: u64,
    cost_usd: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fail {
    error_message: String,
    tokens_used: Option<u64>,
    cost_usd: Option<f64>,
}

/// Parses the JSON body of a request into `T`.
pub fn body<T: DeserializeOwned>(request: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = match request.body() {
        Body::Empty => b"",
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => b"",
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
    }
    if let Some(content_type) = request.headers().get(CONTENT_TYPE) {
        let is_json = content_type
            .to_str()
            .map(|v| {
                v.trim()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::unsupported_media_type());
        }
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|err| ApiError::malformed(format!("the body is not valid JSON: {err}"), None))?;
    // Structs also deserialise from arrays; the contract only has objects.
    if !value.is_object() {
        return Err(ApiError::malformed("the body must be a JSON object", None));
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let field = if path == "." {
            named_in(&inner.to_string())
        } else {
            Some(path)
        };
        let message = match &field {
            Some(field) if !inner.to_string().contains(field.as_str()) => {
                format!("{field}: {inner}")
            }
            _ => inner.to_string(),
        };
        ApiError::malformed(message, field)
    })
}

/// The field a serde message names between backticks (missing or unknown fields).
fn named_in(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split('`').next().map(str::to_owned)
}

/// The command a transition route's body describes.
pub fn command(action: shared::domain::Action, request: &Request) -> Result<Command, ApiError> {
    use shared::domain::Action;
    Ok(match action {
        Action::Classify => {
            let Classify {
                task_type,
                complexity,
            } = body(request)?;
            Command::Classify {
                task_type,
                complexity,
            }
        }
        Action::Start => {
            let Start { strategy } = body(request)?;
            Command::Start { strategy }
        }
        Action::Complete => {
            let Complete {
                tokens_used,
                cost_usd,
            } = body(request)?;
            Command::Complete(Usage {
                tokens_used,
                cost_usd,
            })
        }
        Action::Fail => {
            let Fail {
                error_message,
                tokens_used,
                cost_usd,
            } = body(request)?;
            Command::Fail {
                error_message,
                usage: Usage {
                    tokens_used: tokens_used.unwrap_or(0),
                    cost_usd: cost_usd.unwrap_or(0.0),
                },
            }
        }
    })
}

/// `limit` and `cursor` of a listing.
pub fn page(request: &Request) -> Result<(Option<u32>, Option<String>), ApiError> {
    let query = request.query_string_parameters();
    let limit = query
        .first("limit")
        .map(|raw| {
            raw.parse::<u32>().map_err(|_| {
                ApiError::bad_request(
                    "validation_error",
                    "limit",
                    "must be a whole number from 1 to 100",
                )
            })
        })
        .transpose()?;
    let cursor = query.first("cursor").map(str::to_owned);
    Ok((limit, cursor))
}
