use lambda_runtime::layers::OpenTelemetryFaasTrigger;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use outbox_sweeper::SweeperSettings;
use serde_json::{json, Value};
use shared::adapters::clients;
use shared::settings::{Settings, Variables};
use shared::{metrics, telemetry};

// One invocation at a time: one thread does all the work, with no hand-offs between threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let telemetry = telemetry::init("outbox-sweeper");
    let settings = SweeperSettings::from_variables(&Variables::from_env())?;
    let aws = clients::load_config().await?;
    let sweeper = settings.build(&aws);
    metrics::Measure::ColdStart("outbox-sweeper").emit();

    let handler = service_fn(|_: LambdaEvent<Value>| {
        let sweeper = &sweeper;
        async move {
            let report = sweeper.run_once().await?;
            Ok::<_, Error>(json!({
                "tasks": report.tasks,
                "published": report.published,
                "failed": report.failed,
                "errors": report.errors,
                "deferred": report.deferred,
            }))
        }
    });
    lambda_runtime::Runtime::new(handler)
        .layer(telemetry.lambda_layer(OpenTelemetryFaasTrigger::Timer))
        .run()
        .await
}
