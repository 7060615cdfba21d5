//! The functions the dev server runs, each built by its own settings type from the same
//! variables Lambda would give it.

use std::error::Error;

use cicd_monitor::CicdSettings;
use dashboard::DashboardSettings;
use event_archive::ArchiveSettings;
use ml_classifier::ClassifierSettings;
use shared::adapters::clients::SdkConfig;
use shared::consumer::Consumer;
use shared::settings::{Settings, Variables};

/// The consumer built from the function crate at `code_uri` (as template.yaml names it).
pub async fn consumer(
    code_uri: &str,
    variables: &Variables,
    aws: &SdkConfig,
) -> Result<Consumer, Box<dyn Error>> {
    Ok(match crate_name(code_uri) {
        "ml-classifier" => ClassifierSettings::from_variables(variables)?.build(aws),
        "dashboard" => DashboardSettings::from_variables(variables)?.build(aws),
        "cicd-monitor" => CicdSettings::from_variables(variables)?.build(aws).await?,
        "event-archive" => ArchiveSettings::from_variables(variables)?.build(aws),
        _ => return Err(format!("no consumer is built from {code_uri}").into()),
    })
}

/// The crate a template function's `CodeUri` points at: its last path segment.
pub fn crate_name(code_uri: &str) -> &str {
    code_uri
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
}
