//! A hello-world Lambda on `lambda_runtime`, built with the workspace's release profile:
//! the baseline the benchmark compares every function with.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let name = event.payload["name"].as_str().unwrap_or("world").to_owned();
        Ok::<_, Error>(json!({ "message": format!("hello, {name}") }))
    }))
    .await
}
