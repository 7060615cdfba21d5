use lambda_http::{service_fn, Error, Request};
use orchestration::adapters::clients;
use orchestration::telemetry;
use task_api::{handle, identity, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let aws = clients::load_config().await;
    let deps = Deps::from_env(&aws)?;

    lambda_http::run(service_fn(|request: Request| {
        let deps = &deps;
        async move {
            let user_id = identity::from_authorizer(&request);
            Ok::<_, Error>(handle(deps, user_id.as_deref(), request).await)
        }
    }))
    .await
}
