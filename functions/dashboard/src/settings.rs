//! The dashboard's settings: `DASHBOARD_TABLE`, `DASHBOARD_SHARDS` (default 64) and the
//! toolkit's variables.

use std::sync::Arc;

use shared::adapters::clients;
use shared::adapters::clients::SdkConfig;
use shared::consumer::{Consumer, ToolkitSettings};
use shared::settings::{ConfigError, Settings, Variables};

use crate::store::{DEFAULT_COUNTER_SHARDS, MAX_COUNTER_SHARDS};
use crate::{Dashboard, DynamoDashboardStore};

/// The table of the statistics; the task API reads it too.
pub const DASHBOARD_TABLE: &str = "DASHBOARD_TABLE";
/// Shards of the counters, on which the consumer and the task API agree.
pub const DASHBOARD_SHARDS: &str = "DASHBOARD_SHARDS";

/// `DASHBOARD_SHARDS`, from 1 to `MAX_COUNTER_SHARDS`, by default `DEFAULT_COUNTER_SHARDS`.
pub fn counter_shards(variables: &Variables) -> Result<u32, ConfigError> {
    let shards = variables.parsed_or(DASHBOARD_SHARDS, DEFAULT_COUNTER_SHARDS)?;
    if !(1..=MAX_COUNTER_SHARDS).contains(&shards) {
        return Err(ConfigError::invalid(
            DASHBOARD_SHARDS,
            format!("must be from 1 to {MAX_COUNTER_SHARDS}"),
        ));
    }
    Ok(shards)
}

#[derive(Debug, Clone, PartialEq)]
pub struct DashboardSettings {
    pub table: String,
    pub shards: u32,
    pub toolkit: ToolkitSettings,
}

impl Settings for DashboardSettings {
    fn variables() -> Vec<&'static str> {
        [
            &[DASHBOARD_TABLE, DASHBOARD_SHARDS][..],
            &ToolkitSettings::VARIABLES,
        ]
        .concat()
    }

    fn from_variables(variables: &Variables) -> Result<Self, ConfigError> {
        Ok(DashboardSettings {
            table: variables.required(DASHBOARD_TABLE)?,
            shards: counter_shards(variables)?,
            toolkit: ToolkitSettings::from_variables(variables)?,
        })
    }
}

impl DashboardSettings {
    pub fn build(&self, aws: &SdkConfig) -> Consumer {
        let store = DynamoDashboardStore::new(clients::dynamodb(aws), &self.table)
            .with_counter_shards(self.shards);
        self.toolkit
            .build(aws, Arc::new(Dashboard::new(Arc::new(store))))
    }
}
