use cicd_monitor::CicdSettings;
use shared::adapters::clients;
use shared::settings::{Settings, Variables};
use shared::{consumer, metrics, telemetry};

// One invocation at a time: one thread does all the work, with no hand-offs between threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = telemetry::init("cicd-monitor");
    let settings = CicdSettings::from_variables(&Variables::from_env())?;
    let aws = clients::load_config().await?;
    // The webhook URL is read from its secret here, once per cold start.
    let consumer = settings.build(&aws).await?;
    metrics::Measure::ColdStart("cicd-monitor").emit();
    consumer::run_lambda(consumer, &telemetry).await
}
