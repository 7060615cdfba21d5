//! The classifier's settings: `TASKS_TABLE`, `TRAINING_EXAMPLES_TABLE` and the toolkit's
//! variables.

use std::sync::Arc;

use shared::adapters::clients::SdkConfig;
use shared::adapters::{clients, DynamoRecordStore, DynamoTaskStore};
use shared::consumer::{Consumer, ToolkitSettings};
use shared::settings::{ConfigError, Settings, Variables};

use crate::Classifier;

const TASKS_TABLE: &str = "TASKS_TABLE";
const TRAINING_EXAMPLES_TABLE: &str = "TRAINING_EXAMPLES_TABLE";

#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierSettings {
    pub tasks_table: String,
    pub training_examples_table: String,
    pub toolkit: ToolkitSettings,
}

impl Settings for ClassifierSettings {
    fn variables() -> Vec<&'static str> {
        [
            &[TASKS_TABLE, TRAINING_EXAMPLES_TABLE][..],
            &ToolkitSettings::VARIABLES,
        ]
        .concat()
    }

    fn from_variables(variables: &Variables) -> Result<Self, ConfigError> {
        Ok(ClassifierSettings {
            tasks_table: variables.required(TASKS_TABLE)?,
            training_examples_table: variables.required(TRAINING_EXAMPLES_TABLE)?,
            toolkit: ToolkitSettings::from_variables(variables)?,
        })
    }
}

impl ClassifierSettings {
    pub fn build(&self, aws: &SdkConfig) -> Consumer {
        let classifier = Classifier::new(
            Arc::new(DynamoTaskStore::new(
                clients::dynamodb(aws),
                &self.tasks_table,
            )),
            Arc::new(DynamoRecordStore::new(
                clients::dynamodb(aws),
                &self.training_examples_table,
            )),
        );
        // Both effects count once by themselves: the classification is a write conditional
        // on the task still being pending and unclassified, the example a put-if-absent.
        self.toolkit.build(aws, Arc::new(classifier))
    }
}
