use lambda_runtime::{service_fn, Error, LambdaEvent};
use orchestration::adapters::clients;
use orchestration::telemetry;
use outbox_sweeper::Sweeper;
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let aws = clients::load_config().await;
    let sweeper = Sweeper::from_env(&aws)?;

    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| {
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
    }))
    .await
}
