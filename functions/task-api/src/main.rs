use axum::middleware;
use lambda_http::{Adapter, Error};
use lambda_runtime::layers::OpenTelemetryFaasTrigger;
use shared::adapters::clients;
use shared::settings::{Settings, Variables};
use shared::{metrics, telemetry};
use task_api::{identity, router, staged, ApiSettings};

// One invocation at a time: one thread does all the work, with no hand-offs between threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let telemetry = telemetry::init("task-api");
    let settings = ApiSettings::from_variables(&Variables::from_env())?;
    let aws = clients::load_config().await?;
    let deps = settings.build(&aws);
    metrics::Measure::ColdStart("task-api").emit();

    // Only the JWT authorizer's claims name the caller here; identity headers count for
    // nothing.
    let app = staged(
        router(deps).layer(middleware::from_fn(identity::authorizer)),
        settings.stage.as_deref(),
    );
    lambda_runtime::Runtime::new(Adapter::from(app))
        .layer(telemetry.lambda_layer(OpenTelemetryFaasTrigger::Http))
        .run()
        .await
}
