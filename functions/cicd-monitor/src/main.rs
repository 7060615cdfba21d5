use cicd_monitor::CicdSettings;
use shared::adapters::clients;
use shared::settings::{Settings, Variables};
use shared::{consumer, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = telemetry::init("cicd-monitor");
    let settings = CicdSettings::from_variables(&Variables::from_env())?;
    let aws = clients::load_config().await;
    consumer::run_lambda(settings.build(&aws), &telemetry).await
}
