//! The task API's settings: `TASKS_TABLE`, `EVENTS_TOPIC_ARN`, `DASHBOARD_TABLE`,
//! `REQUEST_KEYS_TABLE` (the `Idempotency-Key`s), `EVENT_ARCHIVE_TABLE` (the timelines),
//! `DASHBOARD_SHARDS` (default 64), `OUTBOX_SHARDS` (default 32), `EMITTED_EVENT_TYPES`
//! (the types events are published as, default every kind's v1), `OPERATOR_SCOPE` (the
//! scope the statistics need, default `orchestration/operator`) and `API_STAGE` (the HTTP
//! API's stage, whose name prefixes the paths API Gateway passes on).

use std::sync::Arc;

use dashboard::{counter_shards, DynamoDashboardStore, DASHBOARD_SHARDS, DASHBOARD_TABLE};
use shared::adapters::clients::SdkConfig;
use shared::adapters::{clients, DynamoEventArchive, DynamoTaskStore, SnsPublisher};
use shared::events::{Emission, EMITTED_EVENT_TYPES};
use shared::retry::Backoff;
use shared::service::TaskService;
use shared::settings::{
    outbox_shards, ConfigError, Settings, Variables, OUTBOX_SHARDS, STACK_NAME,
};

use crate::{Deps, DynamoRequestKeys, DEFAULT_OPERATOR_SCOPE};

const TASKS_TABLE: &str = "TASKS_TABLE";
const EVENTS_TOPIC_ARN: &str = "EVENTS_TOPIC_ARN";
const OPERATOR_SCOPE: &str = "OPERATOR_SCOPE";
const REQUEST_KEYS_TABLE: &str = "REQUEST_KEYS_TABLE";
const API_STAGE: &str = "API_STAGE";
const EVENT_ARCHIVE_TABLE: &str = "EVENT_ARCHIVE_TABLE";

#[derive(Debug, Clone, PartialEq)]
pub struct ApiSettings {
    pub tasks_table: String,
    pub topic_arn: String,
    pub dashboard_table: String,
    pub request_keys_table: String,
    pub archive_table: String,
    pub dashboard_shards: u32,
    pub outbox_shards: u32,
    pub emission: Emission,
    pub operator_scope: String,
    pub stage: Option<String>,
    /// Retries of publishing; not a variable.
    pub backoff: Backoff,
    pub stack: Option<String>,
}

impl Settings for ApiSettings {
    fn variables() -> Vec<&'static str> {
        vec![
            TASKS_TABLE,
            EVENTS_TOPIC_ARN,
            DASHBOARD_TABLE,
            REQUEST_KEYS_TABLE,
            EVENT_ARCHIVE_TABLE,
            DASHBOARD_SHARDS,
            OUTBOX_SHARDS,
            EMITTED_EVENT_TYPES,
            OPERATOR_SCOPE,
            API_STAGE,
            STACK_NAME,
        ]
    }

    fn from_variables(variables: &Variables) -> Result<Self, ConfigError> {
        Ok(ApiSettings {
            tasks_table: variables.required(TASKS_TABLE)?,
            topic_arn: variables.required(EVENTS_TOPIC_ARN)?,
            dashboard_table: variables.required(DASHBOARD_TABLE)?,
            request_keys_table: variables.required(REQUEST_KEYS_TABLE)?,
            archive_table: variables.required(EVENT_ARCHIVE_TABLE)?,
            dashboard_shards: counter_shards(variables)?,
            outbox_shards: outbox_shards(variables)?,
            emission: Emission::from_variables(variables)?,
            operator_scope: variables
                .optional(OPERATOR_SCOPE)
                .unwrap_or_else(|| DEFAULT_OPERATOR_SCOPE.to_owned()),
            stage: variables.optional(API_STAGE),
            backoff: Backoff::default(),
            stack: variables.optional(STACK_NAME),
        })
    }
}

impl ApiSettings {
    /// The handler's dependencies over AWS.
    pub fn build(&self, aws: &SdkConfig) -> Deps {
        shared::metrics::init(self.stack.clone());
        // One client for every table: each SDK client built costs start-up time, and a
        // clone shares the first one's connections.
        let dynamodb = clients::dynamodb(aws);
        let store = Arc::new(DynamoTaskStore::new(dynamodb.clone(), &self.tasks_table));
        let publisher = Arc::new(
            SnsPublisher::new(
                clients::sns(aws, &self.backoff),
                &self.topic_arn,
                self.backoff,
            )
            .emitting(self.emission.clone()),
        );
        Deps {
            tasks: TaskService::new(store.clone(), store, publisher),
            dashboard: Arc::new(
                DynamoDashboardStore::new(dynamodb.clone(), &self.dashboard_table)
                    .with_counter_shards(self.dashboard_shards),
            ),
            request_keys: Arc::new(DynamoRequestKeys::new(
                dynamodb.clone(),
                &self.request_keys_table,
            )),
            archive: Arc::new(DynamoEventArchive::reader(dynamodb, &self.archive_table)),
            operator_scope: self.operator_scope.clone(),
            page_identity: crate::page::BEARER_IDENTITY,
        }
    }
}
