use ml_classifier::ClassifierSettings;
use shared::adapters::clients;
use shared::settings::{Settings, Variables};
use shared::{consumer, metrics, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = telemetry::init("ml-classifier");
    let settings = ClassifierSettings::from_variables(&Variables::from_env())?;
    let aws = clients::load_config().await;
    let consumer = settings.build(&aws);
    metrics::Measure::ColdStart("ml-classifier").emit();
    consumer::run_lambda(consumer, &telemetry).await
}
