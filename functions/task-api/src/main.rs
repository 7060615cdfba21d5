use lambda_http::{service_fn, Adapter, Error, Request};
use lambda_runtime::layers::OpenTelemetryFaasTrigger;
use shared::adapters::clients;
use shared::settings::{Settings, Variables};
use shared::{metrics, telemetry};
use task_api::{handle, identity, ApiSettings};

// One invocation at a time: one thread does all the work, with no hand-offs between threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let telemetry = telemetry::init("task-api");
    let settings = ApiSettings::from_variables(&Variables::from_env())?;
    let aws = clients::load_config().await;
    let deps = settings.build(&aws);
    metrics::Measure::ColdStart("task-api").emit();

    let handler = service_fn(|request: Request| {
        let deps = &deps;
        async move {
            let user_id = identity::from_authorizer(&request);
            Ok::<_, Error>(handle(deps, user_id.as_deref(), request).await)
        }
    });
    lambda_runtime::Runtime::new(Adapter::from(handler))
        .layer(telemetry.lambda_layer(OpenTelemetryFaasTrigger::Http))
        .run()
        .await
}
