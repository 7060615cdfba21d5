use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use dashboard::Dashboard;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use orchestration::adapters::{clients, DynamoDashboardStore};
use orchestration::{config, consumer, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let aws = clients::load_config().await;
    let table = config::required("DASHBOARD_TABLE")?;
    let dashboard = Dashboard::new(Arc::new(DynamoDashboardStore::new(
        clients::dynamodb(&aws),
        table,
    )));
    let consumer = consumer::from_env(&aws, Arc::new(dashboard))?;

    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let consumer = &consumer;
        async move { Ok::<_, Error>(consumer.process(event.payload).await) }
    }))
    .await
}
