//! The events Lambda would hand each function: API Gateway HTTP API (v2) requests with a
//! JWT authorizer's claims, SQS batches of messages taken off the consumers' queues, and
//! scheduled events.

use std::collections::HashMap;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use chrono::Utc;
use serde_json::{json, Map, Value};

/// An HTTP API request as API Gateway passes it after its JWT authorizer accepted `sub`:
/// on a named stage, the stage leads the path (`/dev/tasks`), as the function sees it.
pub fn http_request(
    stage: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
    sub: &str,
) -> Value {
    let now = Utc::now();
    let (stage, raw_path) = match stage {
        Some(stage) => (stage, format!("/{stage}{path}")),
        None => ("$default", path.to_owned()),
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut event = json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": raw_path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "content-type": "application/json",
            "host": "bench.execute-api.us-east-1.amazonaws.com",
            "user-agent": "bench",
            "x-forwarded-for": "127.0.0.1",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        },
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "bench",
            "authorizer": {
                "jwt": {
                    "claims": {
                        "sub": sub,
                        "iss": "https://issuer.example.com/",
                        "aud": "bench",
                        "iat": now.timestamp().to_string(),
                        "exp": (now.timestamp() + 3600).to_string(),
                    },
                    "scopes": null,
                }
            },
            "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "bench",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "bench",
            },
            "requestId": request_id,
            "routeKey": format!("{method} {path}"),
            "stage": stage,
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": false,
    });
    if let Some(body) = body {
        event["body"] = Value::String(body.to_string());
    }
    event
}

/// An SQS event of one message as the event source mapping delivers it.
pub fn sqs_batch(message: &Message, queue_arn: &str) -> Value {
    sqs_batch_of(std::slice::from_ref(message), queue_arn)
}

/// An SQS event of `messages`, as the event source mapping delivers a batch of them.
pub fn sqs_batch_of(messages: &[Message], queue_arn: &str) -> Value {
    json!({ "Records": messages.iter().map(|m| sqs_record(m, queue_arn)).collect::<Vec<_>>() })
}

fn sqs_record(message: &Message, queue_arn: &str) -> Value {
    let attributes: Map<String, Value> = message
        .attributes()
        .into_iter()
        .flatten()
        .map(|(name, value)| (system_attribute(name), Value::String(value.clone())))
        .collect();
    let message_attributes: Map<String, Value> = message
        .message_attributes()
        .into_iter()
        .flatten()
        .map(|(name, value)| {
            (
                name.clone(),
                json!({
                    "stringValue": value.string_value(),
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": value.data_type(),
                }),
            )
        })
        .collect();
    json!({
        "messageId": message.message_id(),
        "receiptHandle": message.receipt_handle(),
        "body": message.body(),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.md5_of_body(),
        "md5OfMessageAttributes": message.md5_of_message_attributes(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    })
}

fn system_attribute(name: &MessageSystemAttributeName) -> String {
    name.as_str().to_owned()
}

/// The event an EventBridge schedule sends.
pub fn scheduled() -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:000000000000:rule/bench-sweeper"],
        "detail": {},
    })
}

/// The message attributes of `message` as SNS takes them, to publish it again.
pub fn string_attributes(message: &Message) -> HashMap<String, (String, String)> {
    message
        .message_attributes()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| {
            Some((
                name.clone(),
                (
                    value.data_type().to_owned(),
                    value.string_value()?.to_owned(),
                ),
            ))
        })
        .collect()
}
