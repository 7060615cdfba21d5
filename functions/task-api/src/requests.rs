//! Request bodies and query parameters, parsed strictly: unknown fields, wrong types and
//! unknown enum values are refused with the offending field named.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use shared::domain::{ExecutionStrategy, TaskComplexity, TaskType, Usage};
use shared::domain::{MAX_COST_USD, MIN_NONZERO_COST_USD};
use shared::service::Command;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::ToSchema;

use crate::errors::ApiError;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// 1 to 200 characters after trimming whitespace (stored trimmed); no control
    /// characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    pub title: String,
    /// Up to 10,000 characters; no control characters but tab and line breaks.
    #[schema(
        max_length = 10000,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    pub description: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Classify {
    task_type: TaskType,
    complexity: TaskComplexity,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Start {
    strategy: ExecutionStrategy,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Complete {
    /// A whole number from 0 to 10^12.
    #[schema(maximum = 1_000_000_000_000_u64)]
    #[serde(deserialize_with = "whole_number")]
    tokens_used: u64,
    /// 0, or a number from 0.000000001 to 1,000,000.
    #[schema(schema_with = cost_usd_schema)]
    cost_usd: f64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Fail {
    /// 1 to 4,000 characters, not blank; no control characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 4000,
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
    )]
    error_message: String,
    /// As for `complete`; 0 when omitted.
    #[schema(maximum = 1_000_000_000_000_u64)]
    #[serde(default, deserialize_with = "optional_whole_number")]
    tokens_used: Option<u64>,
    /// As for `complete`; 0 when omitted.
    #[schema(schema_with = optional_cost_usd_schema)]
    cost_usd: Option<f64>,
}

/// A JSON request body, parsed strictly into `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let headers = request.headers().clone();
        // The router's body limit refuses longer bodies while reading them.
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|_| ApiError::payload_too_large(MAX_BODY_BYTES))?;
        body(&headers, &bytes).map(JsonBody)
    }
}

/// 0, or a number from 0.000000001 to 1,000,000 (DynamoDB keeps no smaller number).
fn cost_usd_schema() -> Schema {
    let number = |min: f64, max: f64| {
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .minimum(Some(min))
            .maximum(Some(max))
    };
    AnyOfBuilder::new()
        .item(number(0.0, 0.0))
        .item(number(MIN_NONZERO_COST_USD, MAX_COST_USD))
        .description(Some("0, or a number from 0.000000001 to 1,000,000"))
        .into()
}

fn optional_cost_usd_schema() -> Schema {
    let mut schema = cost_usd_schema();
    if let Schema::AnyOf(any_of) = &mut schema {
        any_of
            .items
            .push(ObjectBuilder::new().schema_type(Type::Null).into());
    }
    schema
}

/// A whole number, written `223` or `223.0` (JSON does not tell them apart).
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(whole) = number.as_u64() {
        return Ok(whole);
    }
    match number.as_f64() {
        // Exact below 2^53; larger values are refused as out of range later anyway.
        Some(float) if float >= 0.0 && float.fract() == 0.0 && float < 9_007_199_254_740_992.0 => {
            Ok(float as u64)
        }
        _ => Err(serde::de::Error::custom(format!(
            "invalid value: {number}, expected a whole number from 0"
        ))),
    }
}

fn optional_whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    Option::<serde_json::Number>::deserialize(deserializer)?
        .map(|number| whole_number(number).map_err(serde::de::Error::custom))
        .transpose()
}

/// Parses a JSON body into `T`.
pub fn body<T: DeserializeOwned>(headers: &HeaderMap, bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
    }
    if let Some(content_type) = headers.get(CONTENT_TYPE) {
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

impl From<Classify> for Command {
    fn from(
        Classify {
            task_type,
            complexity,
        }: Classify,
    ) -> Self {
        Command::Classify {
            task_type,
            complexity,
        }
    }
}

impl From<Start> for Command {
    fn from(Start { strategy }: Start) -> Self {
        Command::Start { strategy }
    }
}

impl From<Complete> for Command {
    fn from(
        Complete {
            tokens_used,
            cost_usd,
        }: Complete,
    ) -> Self {
        Command::Complete(Usage {
            tokens_used,
            cost_usd,
        })
    }
}

impl From<Fail> for Command {
    fn from(
        Fail {
            error_message,
            tokens_used,
            cost_usd,
        }: Fail,
    ) -> Self {
        Command::Fail {
            error_message,
            usage: Usage {
                tokens_used: tokens_used.unwrap_or(0),
                cost_usd: cost_usd.unwrap_or(0.0),
            },
        }
    }
}

/// `limit` and `cursor` of a listing.
pub fn page(query: Option<&str>) -> Result<(Option<u32>, Option<String>), ApiError> {
    let query: QueryMap = query.unwrap_or_default().parse().unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    use super::*;

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers
    }

    #[test]
    fn when_a_count_is_written_as_a_whole_float_should_take_it_and_refuse_fractions() {
        let parse = |body: &str| super::body::<Complete>(&json_headers(), body.as_bytes());

        assert_eq!(
            parse(r#"{"tokens_used":223.0,"cost_usd":0}"#)
                .unwrap()
                .tokens_used,
            223
        );
        for bad in [
            r#"{"tokens_used":223.5,"cost_usd":0}"#,
            r#"{"tokens_used":-1.0,"cost_usd":0}"#,
            r#"{"tokens_used":"223","cost_usd":0}"#,
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(
                (err.status, err.field.as_deref()),
                (400, Some("tokens_used")),
                "{bad}"
            );
        }
        let fail = super::body::<Fail>(
            &json_headers(),
            br#"{"error_message":"e","tokens_used":7.0}"#,
        )
        .unwrap();
        assert_eq!(fail.tokens_used, Some(7));
    }

    proptest! {
        #[test]
        fn any_body_should_parse_or_be_refused_with_a_4xx(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            match body::<CreateTask>(&json_headers(), &bytes) {
                Ok(_) => {}
                Err(err) => prop_assert!(err.status == 400, "{err:?}"),
            }
        }

        #[test]
        fn any_strings_should_come_back_as_they_were_sent(title in ".{0,64}", description in ".{0,64}") {
            let sent = serde_json::json!({"title": title, "description": description}).to_string();
            let parsed: CreateTask = body(&json_headers(), sent.as_bytes()).unwrap();
            prop_assert_eq!((parsed.title, parsed.description), (title, description));
        }

        #[test]
        fn any_object_with_other_fields_should_name_the_field_at_fault(name in "[a-z_]{1,12}") {
            prop_assume!(name != "title" && name != "description");
            let sent = serde_json::json!({"title": "t", "description": "d", name.clone(): 1}).to_string();
            let err = body::<CreateTask>(&json_headers(), sent.as_bytes()).unwrap_err();
            prop_assert_eq!(err.field, Some(name));
        }

        #[test]
        fn any_query_should_give_a_page_or_a_400_naming_limit(query in "[ -~]{0,64}") {
            match page(Some(&query)) {
                Ok((limit, _)) => prop_assert!(limit.is_none() || query.contains("limit=")),
                Err(err) => prop_assert_eq!((err.status, err.field.as_deref()), (400, Some("limit"))),
            }
        }
    }
}
