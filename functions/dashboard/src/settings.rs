//! The dashboard's settings: `DASHBOARD_TABLE` and the toolkit's variables.

use std::sync::Arc;

use aws_config::SdkConfig;
use shared::adapters::clients;
use shared::consumer::{Consumer, ToolkitSettings};
use shared::settings::{ConfigError, Settings, Variables};

use crate::{Dashboard, DynamoDashboardStore};

/// The table of the statistics; the task API reads it too.
pub const DASHBOARD_TABLE: &str = "DASHBOARD_TABLE";

#[derive(Debug, Clone, PartialEq)]
pub struct DashboardSettings {
    pub table: String,
    pub toolkit: ToolkitSettings,
}

impl Settings for DashboardSettings {
    fn variables() -> Vec<&'static str> {
        [&[DASHBOARD_TABLE][..], &ToolkitSettings::VARIABLES].concat()
    }

    fn from_variables(variables: &Variables) -> Result<Self, ConfigError> {
        Ok(DashboardSettings {
            table: variables.required(DASHBOARD_TABLE)?,
            toolkit: ToolkitSettings::from_variables(variables)?,
        })
    }
}

impl DashboardSettings {
    pub fn build(&self, aws: &SdkConfig) -> Consumer {
        let store = DynamoDashboardStore::new(clients::dynamodb(aws), &self.table);
        self.toolkit
            .build(aws, Arc::new(Dashboard::new(Arc::new(store))))
    }
}
