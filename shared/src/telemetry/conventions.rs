//! The semantic conventions' names on the AWS SDK's spans: the SDK names each call's span
//! `<Service>.<Operation>` with `rpc.*` attributes only, so before export a DynamoDB call
//! gains `db.system.name` and `db.operation.name`, an SNS or SQS call `messaging.system`
//! and `messaging.operation.name`.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

/// Wraps an exporter, naming what the SDK's spans are about on the way out.
#[derive(Debug)]
pub struct Conventions<E>(pub E);

/// The conventions' attributes of one SDK call's span, none for any other span.
pub fn attributes_of(span: &SpanData) -> Vec<KeyValue> {
    let from_sdk = span
        .attributes
        .iter()
        .any(|kv| kv.key.as_str() == "rpc.system" && kv.value.as_str() == "aws-api");
    let Some((service, operation)) = span.name.split_once('.').filter(|_| from_sdk) else {
        return Vec::new();
    };
    let operation = operation.to_owned();
    match service {
        "DynamoDB" => vec![
            KeyValue::new("db.system.name", "aws.dynamodb"),
            KeyValue::new("db.system", "dynamodb"),
            KeyValue::new("db.operation.name", operation),
        ],
        "SNS" => vec![
            KeyValue::new("messaging.system", "aws_sns"),
            KeyValue::new("messaging.operation.name", operation),
        ],
        "SQS" => vec![
            KeyValue::new("messaging.system", "aws_sqs"),
            KeyValue::new("messaging.operation.name", operation),
        ],
        _ => Vec::new(),
    }
}

impl<E: SpanExporter> SpanExporter for Conventions<E> {
    async fn export(&self, mut batch: Vec<SpanData>) -> OTelSdkResult {
        for span in &mut batch {
            let more = attributes_of(span);
            span.attributes.extend(more);
        }
        self.0.export(batch).await
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}
