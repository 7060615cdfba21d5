use std::sync::Arc;

use lambda_http::{service_fn, Error, Request};
use orchestration::adapters::{clients, DynamoTaskStore, SnsPublisher};
use orchestration::retry::Backoff;
use orchestration::service::TaskService;
use orchestration::{config, telemetry};
use task_api::{handle, identity, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let table = config::required("TASKS_TABLE")?;
    let topic_arn = config::required("EVENTS_TOPIC_ARN")?;

    let aws = clients::load_config().await;
    let backoff = Backoff::default();
    let store = Arc::new(DynamoTaskStore::new(clients::dynamodb(&aws), table));
    let publisher = Arc::new(SnsPublisher::new(
        clients::sns(&aws, &backoff),
        topic_arn,
        backoff,
    ));
    let deps = Deps {
        tasks: TaskService::new(store.clone(), store, publisher),
    };

    lambda_http::run(service_fn(|request: Request| {
        let deps = &deps;
        async move {
            let user_id = identity::from_authorizer(&request);
            Ok::<_, Error>(handle(deps, user_id.as_deref(), request).await)
        }
    }))
    .await
}
