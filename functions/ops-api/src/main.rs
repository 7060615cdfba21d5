use std::sync::Arc;

use axum::middleware;
use lambda_http::{Adapter, Error};
use lambda_runtime::layers::OpenTelemetryFaasTrigger;
use ops_api::CloudWatchMeasures;
use shared::adapters::clients;
use shared::settings::{Settings, Variables, STACK_NAME};
use shared::{metrics, telemetry};
use task_api::{identity, ops_router, staged, OpsSettings};

// One invocation at a time: one thread does all the work.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let telemetry = telemetry::init("ops-api");
    let variables = Variables::from_env();
    let settings = OpsSettings::from_variables(&variables)?;
    let aws = clients::load_config().await?;
    let measures = CloudWatchMeasures::new(
        aws_sdk_cloudwatch::Client::new(&aws),
        variables.optional(STACK_NAME),
    );
    let deps = settings.build(&aws, Arc::new(measures));
    metrics::Measure::ColdStart("ops-api").emit();

    // Only the JWT authorizer's claims name the caller here, as in the task API.
    let app = staged(
        ops_router(deps).layer(middleware::from_fn(identity::authorizer)),
        settings.stage.as_deref(),
    );
    lambda_runtime::Runtime::new(Adapter::from(app))
        .layer(telemetry.lambda_layer(OpenTelemetryFaasTrigger::Http))
        .run()
        .await
}
