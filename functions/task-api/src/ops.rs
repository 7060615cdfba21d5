//! The operations routes, `/ops/…`, for callers with the operator scope: each consumer's
//! queue, dead letters and latency objective and the outbox in one view; dead letters
//! listed by consumer, reason, event type and age, redriven (after a dry run that counts)
//! at a bounded rate, or discarded on an operator's explicit word, logged with who asked.
//!
//! In AWS a function of its own serves them (`functions/ops-api`), with a role that can
//! only read the queues' attributes, move the dead letters and query the outbox index;
//! locally the dev server serves them beside the task API. They are in the API's one
//! OpenAPI document.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use operations::dead_letters::{self, Listing, Redrive, Scan};
use operations::objectives::{self, Objective};
use operations::{
    Consumer, DeadLetter, Filter, FilterText, Measures, OpsError, Overview, Queues, RedriveOutcome,
    Sources,
};
use serde::{Deserialize, Serialize};
use shared::adapters::clients::{self, SdkConfig};
use shared::settings::{
    outbox_shards, ConfigError, Settings, Variables, OUTBOX_SHARDS, STACK_NAME,
};
use tracing::{error, warn};
use utoipa::openapi::OpenApi as Document;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::errors::ApiError;
use crate::identity::{Authenticated, Identity};
use crate::requests::JsonBody;
use crate::responses::{self, ErrorBody};
use crate::DEFAULT_OPERATOR_SCOPE;

/// Dead letters one request reads at most: a listing or a redrive answers within API
/// Gateway's 30 seconds.
pub const MAX_SCAN: usize = 500;
/// The fastest redrive, messages a second, and the longest one a request may take.
pub const MAX_RATE: u32 = 100;
const MAX_REDRIVE_TIME: Duration = Duration::from_secs(20);
const DEFAULT_SCAN: usize = 100;
const DEFAULT_RATE: u32 = 50;

/// What the operations routes need, built once per process.
#[derive(Clone)]
pub struct OpsDeps {
    pub sqs: aws_sdk_sqs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub queues: Arc<Vec<Queues>>,
    pub tasks_table: String,
    pub outbox_shards: u32,
    pub objectives: Arc<Vec<Objective>>,
    pub measures: Arc<dyn Measures>,
    pub operator_scope: String,
}

const TASKS_TABLE: &str = "TASKS_TABLE";
const OPERATOR_SCOPE: &str = "OPERATOR_SCOPE";
const API_STAGE: &str = "API_STAGE";
const LATENCY_OBJECTIVE_PERCENT: &str = "LATENCY_OBJECTIVE_PERCENT";
const LATENCY_OBJECTIVES: &str = "LATENCY_OBJECTIVES";
/// Each consumer's queue and dead-letter queue, as the template passes their URLs.
const QUEUE_URLS: [(Consumer, &str, &str); 4] = [
    (
        Consumer::MlClassifier,
        "ML_CLASSIFIER_QUEUE_URL",
        "ML_CLASSIFIER_DEAD_LETTER_QUEUE_URL",
    ),
    (
        Consumer::Dashboard,
        "DASHBOARD_QUEUE_URL",
        "DASHBOARD_DEAD_LETTER_QUEUE_URL",
    ),
    (
        Consumer::CicdMonitor,
        "CICD_MONITOR_QUEUE_URL",
        "CICD_MONITOR_DEAD_LETTER_QUEUE_URL",
    ),
    (
        Consumer::EventArchive,
        "EVENT_ARCHIVE_QUEUE_URL",
        "EVENT_ARCHIVE_DEAD_LETTER_QUEUE_URL",
    ),
];

/// The operations function's settings: `TASKS_TABLE` and `OUTBOX_SHARDS` (the outbox),
/// each consumer's `<CONSUMER>_QUEUE_URL` and `<CONSUMER>_DEAD_LETTER_QUEUE_URL`,
/// `LATENCY_OBJECTIVE_PERCENT` and `LATENCY_OBJECTIVES` (see `operations::objectives`),
/// `OPERATOR_SCOPE` and `API_STAGE` as the task API reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct OpsSettings {
    pub tasks_table: String,
    pub outbox_shards: u32,
    pub queues: Vec<Queues>,
    pub objectives: Vec<Objective>,
    pub operator_scope: String,
    pub stage: Option<String>,
    pub stack: Option<String>,
}

impl Settings for OpsSettings {
    fn variables() -> Vec<&'static str> {
        let mut names = vec![
            TASKS_TABLE,
            OUTBOX_SHARDS,
            LATENCY_OBJECTIVE_PERCENT,
            LATENCY_OBJECTIVES,
            OPERATOR_SCOPE,
            API_STAGE,
            STACK_NAME,
        ];
        for (_, queue, dlq) in QUEUE_URLS {
            names.extend([queue, dlq]);
        }
        names
    }

    fn from_variables(variables: &Variables) -> Result<Self, ConfigError> {
        let queues = QUEUE_URLS
            .into_iter()
            .map(|(consumer, queue, dlq)| {
                Ok(Queues {
                    consumer,
                    queue_url: variables.required(queue)?,
                    dlq_url: variables.required(dlq)?,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let percent = variables.optional(LATENCY_OBJECTIVE_PERCENT);
        let within = variables.optional(LATENCY_OBJECTIVES);
        let objectives =
            objectives::parse(percent.as_deref(), within.as_deref()).map_err(|err| {
                let message = err.to_string();
                let name = if message.starts_with(LATENCY_OBJECTIVE_PERCENT) {
                    LATENCY_OBJECTIVE_PERCENT
                } else {
                    LATENCY_OBJECTIVES
                };
                ConfigError::invalid(name, message)
            })?;
        Ok(OpsSettings {
            tasks_table: variables.required(TASKS_TABLE)?,
            outbox_shards: outbox_shards(variables)?,
            queues,
            objectives,
            operator_scope: variables
                .optional(OPERATOR_SCOPE)
                .unwrap_or_else(|| DEFAULT_OPERATOR_SCOPE.to_owned()),
            stage: variables.optional(API_STAGE),
            stack: variables.optional(STACK_NAME),
        })
    }
}

impl OpsSettings {
    /// The routes' dependencies over AWS, measured by `measures` (CloudWatch in AWS, the
    /// local server's own locally).
    pub fn build(&self, aws: &SdkConfig, measures: Arc<dyn Measures>) -> OpsDeps {
        shared::metrics::init(self.stack.clone());
        OpsDeps {
            sqs: clients::sqs(aws),
            dynamodb: clients::dynamodb(aws),
            queues: Arc::new(self.queues.clone()),
            tasks_table: self.tasks_table.clone(),
            outbox_shards: self.outbox_shards,
            objectives: Arc::new(self.objectives.clone()),
            measures,
            operator_scope: self.operator_scope.clone(),
        }
    }
}

/// The operations routes, documented into `document`.
pub(crate) fn routes(document: Document) -> OpenApiRouter<OpsDeps> {
    OpenApiRouter::with_openapi(document)
        .routes(routes!(ops_overview))
        .routes(routes!(list_dead_letters))
        .routes(routes!(redrive_dead_letters))
        .routes(routes!(discard_dead_letters))
}

/// The routes' document alone, for the API's one document: the task API's function serves
/// it without linking the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    ops_overview,
    list_dead_letters,
    redrive_dead_letters,
    discard_dead_letters
))]
pub(crate) struct OpsDoc;

/// The routes over `deps`, without fallbacks or layers (`crate::router` adds them).
pub(crate) fn router(deps: OpsDeps) -> Router {
    routes(Document::default())
        .split_for_parts()
        .0
        .with_state(deps)
}

/// The caller, if it holds the operator scope.
fn operator(ops: &OpsDeps, identity: &Identity) -> Result<(), ApiError> {
    if identity.has_scope(&ops.operator_scope) {
        Ok(())
    } else {
        Err(ApiError::forbidden(&ops.operator_scope))
    }
}

/// A failure of the operations model: bad input names its field (400); the queues or the
/// table failing is the upstream's (502), logged with its cause, answered without it.
fn ops_error(err: OpsError) -> ApiError {
    match err {
        OpsError::Usage(message) => {
            let field = message
                .split_once(':')
                .map(|(field, _)| field.trim().to_owned())
                .filter(|field| field.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            ApiError::malformed(message, field)
        }
        OpsError::Aws { what, message } => {
            error!(what, error = %message, "an operations request failed upstream");
            ApiError::upstream()
        }
    }
}

fn queues_of(ops: &OpsDeps, consumer: Consumer) -> Result<Queues, ApiError> {
    ops.queues
        .iter()
        .find(|q| q.consumer == consumer)
        .cloned()
        .ok_or_else(|| {
            ops_error(OpsError::usage(format!(
                "consumer: {consumer} has no queue here"
            )))
        })
}

/// Each consumer's queue, dead letters and latency objective, and the outbox.
///
/// The queue's counts are SQS's approximate ones; the age of its oldest message and the
/// objective's measure come from CloudWatch in AWS (from the local server's own
/// observation locally). The objective is measured over the last hour.
#[utoipa::path(
    get,
    path = "/ops/overview",
    tag = "operations",
    operation_id = "opsOverview",
    responses(
        (status = 200, description = "The view", body = Overview),
        (status = 401, description = "No caller identity", body = ErrorBody),
        (status = 403, description = "The caller lacks the operator scope", body = ErrorBody),
        (status = 502, description = "A queue, the table or the metrics could not be read; quote `request_id`", body = ErrorBody),
    )
)]
async fn ops_overview(
    State(ops): State<OpsDeps>,
    Authenticated(identity, _): Authenticated,
) -> Result<Response, ApiError> {
    operator(&ops, &identity)?;
    let sources = Sources {
        sqs: &ops.sqs,
        dynamodb: &ops.dynamodb,
        queues: &ops.queues,
        objectives: &ops.objectives,
        measures: ops.measures.as_ref(),
        tasks_table: &ops.tasks_table,
        outbox_shards: ops.outbox_shards,
    };
    let view = operations::overview(&sources).await.map_err(ops_error)?;
    Ok(responses::json(StatusCode::OK, &view))
}

/// Which dead letters a request is about; each criterion left out admits all.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterFilter {
    /// An event type: every version of a kind (`TaskCompleted`) or one (`task.completed.v2`).
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// Part of the reason, in any case (`max receives`: moved by SQS after its receives).
    pub reason: Option<String>,
    /// At least this old: `90s`, `15m`, `2h`, `3d`.
    pub min_age: Option<String>,
    /// At most this old.
    pub max_age: Option<String>,
    /// This one message, by its id in the dead-letter queue.
    pub message_id: Option<String>,
}

impl DeadLetterFilter {
    /// The filter, or a 400 naming the field at fault under `prefix` (`filter.` in a body).
    fn filter(&self, prefix: &str) -> Result<Filter, ApiError> {
        Filter::parse(FilterText {
            event_type: self.event_type.as_deref(),
            reason: self.reason.as_deref(),
            min_age: self.min_age.as_deref(),
            max_age: self.max_age.as_deref(),
            message_id: self.message_id.as_deref(),
        })
        .map_err(|err| {
            let mut answer = ops_error(err);
            answer.field = answer.field.map(|field| format!("{prefix}{field}"));
            answer
        })
    }
}

fn bounded(
    field: &str,
    value: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match value.unwrap_or(default) {
        n if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(
            "validation_error",
            field,
            format!("must be a whole number from 1 to {max}"),
        )),
    }
}

/// A consumer's dead letters the filter admits, oldest first, without their bodies unless
/// asked; they stay where they are.
///
/// Reading a dead letter counts as a receive (`receive_count` grows by one).
#[utoipa::path(
    get,
    path = "/ops/dead-letters",
    tag = "operations",
    operation_id = "listDeadLetters",
    params(
        ("consumer" = Consumer, Query, description = "The consumer whose dead letters to read"),
        ("type" = Option<String>, Query, description = "An event type: a kind (TaskCompleted) or one version (task.completed.v2)"),
        ("reason" = Option<String>, Query, description = "Part of the reason, in any case"),
        ("min_age" = Option<String>, Query, description = "At least this old (90s, 15m, 2h, 3d)"),
        ("max_age" = Option<String>, Query, description = "At most this old"),
        ("message_id" = Option<String>, Query, description = "One message"),
        ("body" = Option<bool>, Query, description = "With each one's body (default false)"),
        ("max" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Dead letters read at most (default 100)"),
    ),
    responses(
        (status = 200, description = "The dead letters admitted, of those read", body = Listing),
        (status = 400, description = "A bad consumer, type, age or max, named in `field`", body = ErrorBody),
        (status = 401, description = "No caller identity", body = ErrorBody),
        (status = 403, description = "The caller lacks the operator scope", body = ErrorBody),
        (status = 502, description = "The queue could not be read; quote `request_id`", body = ErrorBody),
    )
)]
async fn list_dead_letters(
    State(ops): State<OpsDeps>,
    Authenticated(identity, _): Authenticated,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    operator(&ops, &identity)?;
    let query: QueryMap = query.unwrap_or_default().parse().unwrap_or_default();
    const KNOWN: [&str; 8] = [
        "consumer",
        "type",
        "reason",
        "min_age",
        "max_age",
        "message_id",
        "body",
        "max",
    ];
    if let Some(unknown) = query
        .iter()
        .map(|(name, _)| name)
        .find(|n| !KNOWN.contains(n))
    {
        return Err(ApiError::bad_request(
            "validation_error",
            unknown,
            "is no parameter of this route",
        ));
    }
    let text = |name: &str| query.first(name).map(str::to_owned);
    let consumer = text("consumer")
        .ok_or_else(|| ApiError::bad_request("validation_error", "consumer", "is required"))?;
    let filter = DeadLetterFilter {
        event_type: text("type"),
        reason: text("reason"),
        min_age: text("min_age"),
        max_age: text("max_age"),
        message_id: text("message_id"),
    }
    .filter("")?;
    let with_body = match query.first("body") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "validation_error",
                "body",
                "must be true or false",
            ))
        }
    };
    let max = query
        .first("max")
        .map(|raw| raw.parse::<usize>().unwrap_or(0))
        .map_or(Ok(DEFAULT_SCAN), |n| {
            bounded("max", Some(n), DEFAULT_SCAN, MAX_SCAN)
        })?;
    let consumer = Consumer::named(&consumer).map_err(ops_error)?;
    let queues = queues_of(&ops, consumer)?;
    let listing = dead_letters::list(
        &ops.sqs,
        &queues,
        &Scan {
            filter,
            max,
            with_body,
        },
    )
    .await
    .map_err(ops_error)?;
    Ok(responses::json(StatusCode::OK, &listing))
}

/// A redrive of a consumer's dead letters.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    pub consumer: Consumer,
    #[serde(default)]
    pub filter: DeadLetterFilter,
    /// True counts what would move and moves nothing; false moves them.
    pub dry_run: bool,
    /// Messages a second at most (default 50).
    #[schema(minimum = 1, maximum = 100)]
    pub rate: Option<u32>,
    /// Dead letters read at most (default 100); at the rate, within 20 s.
    #[schema(minimum = 1, maximum = 500)]
    pub max: Option<usize>,
}

/// Send a consumer's dead letters the filter admits back to its queue, or count them.
///
/// Each is sent with its body and attributes, then deleted from the dead-letter queue;
/// one that fails stays there (`failed`). The consumer's inbox skips an event it applied
/// already, so a redrive repeated after a failure applies nothing twice. `truncated` says
/// `max` was reached with more perhaps left: ask again.
#[utoipa::path(
    post,
    path = "/ops/dead-letters/redrive",
    tag = "operations",
    operation_id = "redriveDeadLetters",
    request_body = RedriveRequest,
    responses(
        (status = 200, description = "What moved (or, on a dry run, would)", body = RedriveBody),
        (status = 400, description = "A bad consumer, filter, rate or max, named in `field`", body = ErrorBody),
        (status = 413, description = "A body over the API's limit", body = ErrorBody),
        (status = 415, description = "A content type other than JSON", body = ErrorBody),
        (status = 401, description = "No caller identity", body = ErrorBody),
        (status = 403, description = "The caller lacks the operator scope", body = ErrorBody),
        (status = 502, description = "The queues could not be used; quote `request_id`", body = ErrorBody),
    )
)]
async fn redrive_dead_letters(
    State(ops): State<OpsDeps>,
    Authenticated(identity, _): Authenticated,
    JsonBody(request): JsonBody<RedriveRequest>,
) -> Result<Response, ApiError> {
    operator(&ops, &identity)?;
    let filter = request.filter.filter("filter.")?;
    let rate = request.rate.unwrap_or(DEFAULT_RATE);
    if !(1..=MAX_RATE).contains(&rate) {
        return Err(ApiError::bad_request(
            "validation_error",
            "rate",
            format!("must be a whole number from 1 to {MAX_RATE}"),
        ));
    }
    let max = bounded("max", request.max, DEFAULT_SCAN, MAX_SCAN)?;
    if Duration::from_secs((max as u64).div_ceil(u64::from(rate))) > MAX_REDRIVE_TIME {
        return Err(ApiError::bad_request(
            "validation_error",
            "max",
            format!(
                "{max} at {rate} a second takes over {}s; lower max or raise rate",
                MAX_REDRIVE_TIME.as_secs()
            ),
        ));
    }
    let queues = queues_of(&ops, request.consumer)?;
    let outcome = dead_letters::redrive(
        &ops.sqs,
        &queues,
        &Redrive {
            filter,
            max,
            rate,
            dry_run: request.dry_run,
        },
    )
    .await
    .map_err(ops_error)?;
    if !request.dry_run {
        warn!(
            consumer = %queues.consumer,
            by = identity.user_id,
            moved = outcome.moved,
            failed = outcome.failed,
            "dead letters redriven"
        );
    }
    Ok(responses::json(
        StatusCode::OK,
        &RedriveBody {
            consumer: queues.consumer,
            outcome,
        },
    ))
}

/// A discard of dead letters: one by `filter.message_id`, or every one the filter admits
/// with `all_matching`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscardRequest {
    pub consumer: Consumer,
    #[serde(default)]
    pub filter: DeadLetterFilter,
    /// Every dead letter the filter admits, not one by its id.
    #[serde(default)]
    pub all_matching: bool,
}

/// Delete dead letters for good, each logged with the caller who asked.
///
/// Only an explicit request discards: one message by `filter.message_id`, or every one the
/// filter admits with `all_matching: true`.
#[utoipa::path(
    post,
    path = "/ops/dead-letters/discard",
    tag = "operations",
    operation_id = "discardDeadLetters",
    request_body = DiscardRequest,
    responses(
        (status = 200, description = "The dead letters discarded", body = DiscardBody),
        (status = 400, description = "A bad consumer or filter, or neither a message_id nor all_matching", body = ErrorBody),
        (status = 413, description = "A body over the API's limit", body = ErrorBody),
        (status = 415, description = "A content type other than JSON", body = ErrorBody),
        (status = 401, description = "No caller identity", body = ErrorBody),
        (status = 403, description = "The caller lacks the operator scope", body = ErrorBody),
        (status = 502, description = "The queue could not be used; quote `request_id`", body = ErrorBody),
    )
)]
async fn discard_dead_letters(
    State(ops): State<OpsDeps>,
    Authenticated(identity, _): Authenticated,
    JsonBody(request): JsonBody<DiscardRequest>,
) -> Result<Response, ApiError> {
    operator(&ops, &identity)?;
    let filter = request.filter.filter("filter.")?;
    if filter.message_id.is_none() && !request.all_matching {
        return Err(ApiError::bad_request(
            "validation_error",
            "filter.message_id",
            "names the dead letter to discard (or say all_matching: true)",
        ));
    }
    let queues = queues_of(&ops, request.consumer)?;
    let discarded = dead_letters::discard(
        &ops.sqs,
        &queues,
        &filter,
        request.all_matching,
        &identity.user_id,
    )
    .await
    .map_err(ops_error)?;
    Ok(responses::json(
        StatusCode::OK,
        &DiscardBody {
            consumer: queues.consumer,
            discarded: discarded.into_iter().map(|d| d.dead_letter).collect(),
            discarded_by: identity.user_id,
        },
    ))
}

/// `POST /ops/dead-letters/redrive`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedriveBody {
    pub consumer: Consumer,
    #[serde(flatten)]
    pub outcome: RedriveOutcome,
}

/// `POST /ops/dead-letters/discard`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscardBody {
    pub consumer: Consumer,
    pub discarded: Vec<DeadLetter>,
    pub discarded_by: String,
}

#[cfg(test)]
mod tests {
    use axum::http::Method;
    use axum::middleware;
    use operations::LocalMeasures;

    use super::*;
    use crate::identity::{self, SCOPES_HEADER};
    use crate::testing::{request, send};

    /// The routes over clients that are never called: each case fails before any call.
    fn unreachable_ops() -> Router {
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::Config::builder()
                .behavior_version_latest()
                .region(aws_sdk_sqs::config::Region::new("us-east-1"))
                .build(),
        );
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version_latest()
                .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
                .build(),
        );
        let queues = operations::Consumer::ALL
            .map(|consumer| Queues {
                consumer,
                queue_url: format!("http://127.0.0.1:9/{consumer}"),
                dlq_url: format!("http://127.0.0.1:9/{consumer}-dlq"),
            })
            .to_vec();
        let deps = OpsDeps {
            sqs,
            dynamodb,
            queues: Arc::new(queues),
            tasks_table: "tasks".into(),
            outbox_shards: 4,
            objectives: Arc::new(objectives::parse(None, None).unwrap()),
            measures: Arc::new(LocalMeasures::new(Duration::from_secs(60))),
            operator_scope: DEFAULT_OPERATOR_SCOPE.into(),
        };
        crate::ops_router(deps).layer(middleware::from_fn(identity::local_headers))
    }

    fn as_operator(method: Method, path: &str, body: &str) -> axum::extract::Request {
        let mut request = request(Some("ops-person"), method, path, body);
        request.headers_mut().insert(
            SCOPES_HEADER,
            DEFAULT_OPERATOR_SCOPE.parse().expect("a header value"),
        );
        request
    }

    #[tokio::test]
    async fn when_a_caller_lacks_identity_or_the_operator_scope_should_answer_401_or_403() {
        // Given every operations route
        let routes = [
            (Method::GET, "/ops/overview", ""),
            (Method::GET, "/ops/dead-letters?consumer=dashboard", ""),
            (
                Method::POST,
                "/ops/dead-letters/redrive",
                r#"{"consumer":"dashboard","dry_run":true}"#,
            ),
            (
                Method::POST,
                "/ops/dead-letters/discard",
                r#"{"consumer":"dashboard","all_matching":true}"#,
            ),
        ];
        for (method, path, body) in routes {
            // When asked without identity, then as a caller without the scope
            let (anonymous, _, _) =
                send(unreachable_ops(), request(None, method.clone(), path, body)).await;
            let (user, _, answer) = send(
                unreachable_ops(),
                request(Some("someone"), method.clone(), path, body),
            )
            .await;
            // Then 401, then 403 naming the scope
            assert_eq!((anonymous, user), (401, 403), "{method} {path}");
            assert!(
                answer["message"]
                    .as_str()
                    .unwrap()
                    .contains(DEFAULT_OPERATOR_SCOPE),
                "{answer}"
            );
        }
    }

    #[tokio::test]
    async fn when_an_operator_asks_badly_should_answer_400_naming_the_field_before_any_call() {
        // Given an operator's requests, each wrong in one field
        let cases = [
            (Method::GET, "/ops/dead-letters", "", "consumer"),
            (
                Method::GET,
                "/ops/dead-letters?consumer=billing",
                "",
                "consumer",
            ),
            (
                Method::GET,
                "/ops/dead-letters?consumer=dashboard&type=task.exploded.v1",
                "",
                "type",
            ),
            (
                Method::GET,
                "/ops/dead-letters?consumer=dashboard&min_age=soon",
                "",
                "min_age",
            ),
            (
                Method::GET,
                "/ops/dead-letters?consumer=dashboard&min_age=2h&max_age=1m",
                "",
                "min_age",
            ),
            (
                Method::GET,
                "/ops/dead-letters?consumer=dashboard&max=0",
                "",
                "max",
            ),
            (
                Method::GET,
                "/ops/dead-letters?consumer=dashboard&body=yes",
                "",
                "body",
            ),
            (
                Method::GET,
                "/ops/dead-letters?consumer=dashboard&colour=red",
                "",
                "colour",
            ),
            (
                Method::POST,
                "/ops/dead-letters/redrive",
                r#"{"consumer":"dashboard","dry_run":false,"rate":0}"#,
                "rate",
            ),
            (
                Method::POST,
                "/ops/dead-letters/redrive",
                r#"{"consumer":"dashboard","dry_run":false,"rate":1,"max":500}"#,
                "max",
            ),
            (
                Method::POST,
                "/ops/dead-letters/redrive",
                r#"{"consumer":"dashboard","filter":{"reason":" "},"dry_run":true}"#,
                "filter.reason",
            ),
            (
                Method::POST,
                "/ops/dead-letters/discard",
                r#"{"consumer":"dashboard","filter":{"type":"TaskCreated"}}"#,
                "filter.message_id",
            ),
        ];
        for (method, path, body, field) in cases {
            // When sent
            let (status, _, answer) =
                send(unreachable_ops(), as_operator(method.clone(), path, body)).await;
            // Then each is refused with its field named, and no queue was asked
            assert_eq!(status, 400, "{method} {path} {body}: {answer}");
            assert_eq!(answer["field"], field, "{method} {path} {body}: {answer}");
        }
        // And a redrive must say whether it is a dry run
        let (status, _, answer) = send(
            unreachable_ops(),
            as_operator(
                Method::POST,
                "/ops/dead-letters/redrive",
                r#"{"consumer":"dashboard"}"#,
            ),
        )
        .await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains("dry_run"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn when_the_queues_cannot_be_reached_should_answer_502_without_the_cause() {
        // Given queues at an address where nothing listens
        // When an operator asks for the view
        let (status, _, answer) = send(
            unreachable_ops(),
            as_operator(Method::GET, "/ops/overview", ""),
        )
        .await;
        // Then the answer is the upstream's failure, saying nothing of where or why
        assert_eq!(status, 502, "{answer}");
        assert_eq!(answer["error"], "upstream_error");
        assert!(!answer.to_string().contains("127.0.0.1"), "{answer}");
    }

    #[test]
    fn when_the_template_passes_the_queues_should_read_them_and_refuse_a_bad_objective() {
        // Given every variable the operations function reads
        let mut values: std::collections::HashMap<String, String> = OpsSettings::variables()
            .into_iter()
            .map(|name| (name.to_owned(), format!("https://sqs.example/1/{name}")))
            .collect();
        values.insert(OUTBOX_SHARDS.into(), "8".into());
        values.insert(LATENCY_OBJECTIVE_PERCENT.into(), "99.5".into());
        values.insert(LATENCY_OBJECTIVES.into(), "dashboard:3".into());
        values.remove(STACK_NAME);
        values.remove(API_STAGE);
        // When read
        let settings = OpsSettings::from_variables(&Variables::new(values.clone())).unwrap();
        // Then each consumer has its queues, and the objectives their values
        assert_eq!(settings.queues.len(), 4);
        assert!(settings.queues[1]
            .dlq_url
            .ends_with("DASHBOARD_DEAD_LETTER_QUEUE_URL"));
        let dashboard = settings
            .objectives
            .iter()
            .find(|o| o.consumer == Consumer::Dashboard)
            .unwrap();
        assert_eq!((dashboard.percent, dashboard.within.as_secs()), (99.5, 3));
        // And a bad objective is refused naming its variable
        values.insert(LATENCY_OBJECTIVES.into(), "dashboard:soon".into());
        let err = OpsSettings::from_variables(&Variables::new(values))
            .unwrap_err()
            .to_string();
        assert!(err.contains(LATENCY_OBJECTIVES), "{err}");
    }
}
