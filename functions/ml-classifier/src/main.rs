use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use orchestration::adapters::clients;
use orchestration::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let aws = clients::load_config().await;
    let consumer = ml_classifier::consumer(&aws)?;

    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let consumer = &consumer;
        async move { Ok::<_, Error>(consumer.process(event.payload).await) }
    }))
    .await
}
