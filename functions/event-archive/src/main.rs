use event_archive::ArchiveSettings;
use shared::adapters::clients;
use shared::settings::{Settings, Variables};
use shared::{consumer, metrics, telemetry};

// One invocation at a time: one thread does all the work, with no hand-offs between threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = telemetry::init("event-archive");
    let settings = ArchiveSettings::from_variables(&Variables::from_env())?;
    let aws = clients::load_config().await?;
    let consumer = settings.build(&aws);
    metrics::Measure::ColdStart("event-archive").emit();
    consumer::run_lambda(consumer, &telemetry).await
}
