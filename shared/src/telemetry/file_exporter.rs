//! Spans as JSON lines in a file, one span a line: the local stand-in for X-Ray, read by
//! `infra/local.sh trace`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::Status;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde_json::{json, Map, Value};

#[derive(Debug)]
pub struct JsonLinesExporter {
    file: Mutex<File>,
}

impl JsonLinesExporter {
    pub fn append_to(path: &str) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(JsonLinesExporter {
            file: Mutex::new(file),
        })
    }
}

fn micros(time: SystemTime) -> u128 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

/// One span as a JSON object: ids, name, times in microseconds, status and attributes.
pub fn line(span: &SpanData) -> Value {
    let attributes: Map<String, Value> = span
        .attributes
        .iter()
        .map(|kv| (kv.key.to_string(), json!(kv.value.to_string())))
        .collect();
    let (status, message) = match &span.status {
        Status::Unset => ("unset", String::new()),
        Status::Ok => ("ok", String::new()),
        Status::Error { description } => ("error", description.to_string()),
    };
    json!({
        "trace_id": span.span_context.trace_id().to_string(),
        "span_id": span.span_context.span_id().to_string(),
        "parent_span_id": span.parent_span_id.to_string(),
        "name": span.name,
        "start_us": micros(span.start_time),
        "end_us": micros(span.end_time),
        "status": status,
        "status_message": message,
        "attributes": attributes,
        "links": span.links.iter().map(|link| link.span_context.span_id().to_string()).collect::<Vec<_>>(),
        "service": span.instrumentation_scope.name(),
    })
}

impl SpanExporter for JsonLinesExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut text = String::new();
        for span in &batch {
            text.push_str(&line(span).to_string());
            text.push('\n');
        }
        let mut file = self
            .file
            .lock()
            .map_err(|_| OTelSdkError::InternalFailure("the span file lock is poisoned".into()))?;
        file.write_all(text.as_bytes())
            .map_err(|err| OTelSdkError::InternalFailure(err.to_string()))
    }
}
