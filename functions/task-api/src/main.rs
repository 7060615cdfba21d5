use lambda_http::{service_fn, Error, Request};
use shared::adapters::clients;
use shared::settings::{Settings, Variables};
use shared::telemetry;
use task_api::{handle, identity, ApiSettings};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let settings = ApiSettings::from_variables(&Variables::from_env())?;
    let aws = clients::load_config().await;
    let deps = settings.build(&aws);

    lambda_http::run(service_fn(|request: Request| {
        let deps = &deps;
        async move {
            let user_id = identity::from_authorizer(&request);
            Ok::<_, Error>(handle(deps, user_id.as_deref(), request).await)
        }
    }))
    .await
}
