//! The ML classifier consumer: classifies new tasks by `rules` unless their owner already
//! did, and records every finished task as a training example.

pub mod handler;
pub mod rules;

use std::sync::Arc;

use aws_config::SdkConfig;
use orchestration::adapters::{clients, DynamoRecordStore, DynamoTaskStore};
use orchestration::config::{self, ConfigError};
use orchestration::consumer::{self, Consumer};

pub use handler::Classifier;

/// Wires the consumer over AWS from `TASKS_TABLE`, `TRAINING_EXAMPLES_TABLE` and the
/// toolkit's variables.
pub fn consumer(aws: &SdkConfig) -> Result<Consumer, ConfigError> {
    let tasks = config::required("TASKS_TABLE")?;
    let examples = config::required("TRAINING_EXAMPLES_TABLE")?;
    let classifier = Classifier::new(
        Arc::new(DynamoTaskStore::new(clients::dynamodb(aws), tasks)),
        Arc::new(DynamoRecordStore::new(clients::dynamodb(aws), examples)),
    );
    consumer::from_env(aws, Arc::new(classifier))
}
