//! One trace from a client's requests through every consumer, against the emulators. A
//! test binary of its own: `tracing` caches per call site whether anyone listens, which
//! other tests running beside it on other threads would disturb.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use lambda_http::http::Method;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use shared::telemetry;
use tests::{call_with, eventually, TestEnv};

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test]
async fn when_a_task_runs_should_leave_one_trace_from_its_requests_through_every_consumer() {
    // Given spans kept in memory, and the three consumers polling their queues
    let exporter = InMemorySpanExporter::default();
    let (_telemetry, _installed) = telemetry::init_for_test(exporter.clone());
    let env = TestEnv::new("trace").await;
    let _consumers = env.start_consumers(None, Duration::from_secs(1)).await;
    let deps = env.deps();
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let headers = [("traceparent", traceparent.as_str())];

    // When a client drives a task from creation to completion in one trace of its own
    let body = r#"{"title":"Fix the crash on save","description":"traced"}"#;
    let (status, task) =
        call_with(&deps, Some("alice"), Method::POST, "/tasks", body, &headers).await;
    assert_eq!(status, 201, "{task}");
    let id = task["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(30), "the classification", || async {
        let path = format!("/tasks/{id}");
        let (_, task) = call_with(&deps, Some("alice"), Method::GET, &path, "", &headers).await;
        (task["status"] == "Classified").then_some(())
    })
    .await;
    for (action, body) in [
        ("start", r#"{"strategy":"SingleShot"}"#),
        ("complete", r#"{"tokens_used":10,"cost_usd":0.5}"#),
    ] {
        let path = format!("/tasks/{id}/{action}");
        let (status, task) =
            call_with(&deps, Some("alice"), Method::POST, &path, body, &headers).await;
        assert_eq!(status, 200, "{action}: {task}");
    }

    // Then, once every consumer applied every event, all their spans are in that trace
    let consumed = |spans: &[SpanData]| {
        spans
            .iter()
            .filter(|s| attribute(s, "messaging.message.id").is_some())
            .filter(|s| s.status == opentelemetry::trace::Status::Unset)
            .count()
    };
    // ml-classifier: created, completed; dashboard: three; cicd-monitor: completed;
    // event-archive: three.
    let spans = eventually(Duration::from_secs(30), "nine consumer spans", || async {
        let spans = exporter.get_finished_spans().unwrap();
        (consumed(&spans) >= 9).then_some(spans)
    })
    .await;
    let traced: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_context.trace_id().to_string() == CLIENT_TRACE)
        .collect();
    let named = |name: &str| -> Vec<&SpanData> {
        traced.iter().copied().filter(|s| s.name == name).collect()
    };

    // The requests are children of the client's span
    let requests: Vec<&SpanData> = traced
        .iter()
        .copied()
        .filter(|s| attribute(s, "http.request.method").is_some())
        .collect();
    let request_ids: HashSet<String> = requests
        .iter()
        .map(|s| s.span_context.span_id().to_string())
        .collect();
    assert!(requests.len() >= 4, "{requests:#?}");
    for request in &requests {
        assert_eq!(request.parent_span_id.to_string(), CLIENT_SPAN);
        assert_eq!(attribute(request, "task.id").as_deref(), Some(id.as_str()));
    }
    let correlations: HashSet<String> = requests
        .iter()
        .filter_map(|s| attribute(s, "correlation_id"))
        .collect();
    assert_eq!(correlations.len(), requests.len(), "one request id each");
    // The writes and publishes are children of the requests
    let publishes = named("PublishBatchEvents");
    assert_eq!(publishes.len(), 3, "{traced:#?}");
    for publish in &publishes {
        assert!(request_ids.contains(&publish.parent_span_id.to_string()));
        assert_eq!(attribute(publish, "event.count").as_deref(), Some("1"));
        assert_eq!(
            attribute(publish, "event.published_count").as_deref(),
            Some("1")
        );
        assert_eq!(
            attribute(publish, "event.failed_count").as_deref(),
            Some("0")
        );
    }
    let writes = named("DynamoDB.UpdateItem");
    assert!(
        writes
            .iter()
            .any(|w| request_ids.contains(&w.parent_span_id.to_string())),
        "{traced:#?}"
    );
    assert!(writes
        .iter()
        .all(|w| attribute(w, "db.system.name").as_deref() == Some("aws.dynamodb")));
    for publish in named("SNS.PublishBatch") {
        assert_eq!(
            attribute(publish, "messaging.system").as_deref(),
            Some("aws_sns")
        );
    }
    // And each consumer's span of each event is a child of the request that emitted it
    let mut by_consumer: HashMap<String, Vec<String>> = HashMap::new();
    for span in traced
        .iter()
        .filter(|s| s.name.ends_with(" process") && attribute(s, "messaging.message.id").is_some())
    {
        assert!(
            request_ids.contains(&span.parent_span_id.to_string()),
            "{span:#?} is not a child of a request"
        );
        assert_eq!(
            attribute(span, "messaging.system").as_deref(),
            Some("aws_sqs")
        );
        assert_eq!(attribute(span, "task.id").as_deref(), Some(id.as_str()));
        assert!(attribute(span, "cloudevents.event_id").is_some());
        let correlation = attribute(span, "correlation_id").expect("a correlation id");
        assert!(correlations.contains(&correlation), "{correlation}");
        by_consumer
            .entry(attribute(span, "consumer").unwrap())
            .or_default()
            .push(attribute(span, "cloudevents.event_type").unwrap());
    }
    for events in by_consumer.values_mut() {
        events.sort();
    }
    assert_eq!(
        by_consumer,
        HashMap::from([
            (
                "ml-classifier".to_owned(),
                vec!["task.completed.v1".to_owned(), "task.created.v1".to_owned()]
            ),
            (
                "dashboard".to_owned(),
                vec![
                    "task.completed.v1".to_owned(),
                    "task.created.v1".to_owned(),
                    "task.started.v1".to_owned()
                ]
            ),
            (
                "cicd-monitor".to_owned(),
                vec!["task.completed.v1".to_owned()]
            ),
            (
                "event-archive".to_owned(),
                vec![
                    "task.completed.v1".to_owned(),
                    "task.created.v1".to_owned(),
                    "task.started.v1".to_owned()
                ]
            ),
        ])
    );
    env.teardown().await;
}
