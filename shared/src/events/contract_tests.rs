//! Every event the use cases emit, as the publisher sends it, against the checked-in
//! schemas and as the CloudEvents SDK reads it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use cloudevents::event::ExtensionValue;
use cloudevents::{AttributesReader, Data, Event};
use serde_json::{json, Value};

use super::schema::{file_name, ENVELOPE_SCHEMA_ID};
use super::{EventEnvelope, EventKind, EventType};
use crate::domain::{ExecutionStrategy, TaskComplexity, TaskType, Usage};
use crate::memory::{MemoryStore, RecordingPublisher};
use crate::service::{Caller, Command, TaskService};

fn checked_in(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path:?}: {err}"));
    serde_json::from_str(&text).unwrap()
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::validator_for(schema).expect("a valid JSON Schema")
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|err| format!("{} at {}", err, err.instance_path()))
        .collect()
}

/// One event of each kind, emitted by the use cases and taken from the publisher, in every
/// type of its kind (each version a producer may emit).
pub(super) async fn emitted() -> Vec<EventEnvelope> {
    emitted_v1()
        .await
        .iter()
        .flat_map(|event| {
            EventType::versions(event.kind()).map(|ty| event.as_type(ty).expect("its own kind"))
        })
        .collect()
}

async fn emitted_v1() -> Vec<EventEnvelope> {
    let store = Arc::new(MemoryStore::new());
    let publisher = Arc::new(RecordingPublisher::new());
    let service = TaskService::new(store.clone(), store, publisher.clone());
    let caller = Caller {
        user_id: "alice".into(),
        request_id: Some("req-1".into()),
    };
    for fails in [false, true] {
        let task = service
            .create(&caller, "Fix login".into(), "It crashes".into())
            .await
            .unwrap();
        let commands = [
            Command::Classify {
                task_type: TaskType::BugFix,
                complexity: TaskComplexity::Medium,
            },
            Command::Start {
                strategy: ExecutionStrategy::Iterative,
            },
            if fails {
                Command::Fail {
                    error_message: "tests fail".into(),
                    usage: Usage {
                        tokens_used: 10,
                        cost_usd: 0.01,
                    },
                }
            } else {
                Command::Complete(Usage {
                    tokens_used: 1200,
                    cost_usd: 0.42,
                })
            },
        ];
        for command in commands {
            service.execute(&caller, task.id, command).await.unwrap();
        }
    }
    publisher.published()
}

#[tokio::test]
async fn when_emitted_should_cover_every_event_kind_and_type() {
    let kinds: Vec<EventKind> = emitted_v1().await.iter().map(|e| e.kind()).collect();
    for kind in EventKind::ALL {
        assert!(kinds.contains(&kind), "{kind:?} not emitted: {kinds:?}");
    }
    let types: Vec<EventType> = emitted().await.iter().map(|e| e.wire_type()).collect();
    for ty in EventType::ALL {
        assert!(types.contains(&ty), "{ty:?} not emitted: {types:?}");
    }
}

#[tokio::test]
async fn when_emitted_should_validate_against_the_checked_in_schemas() {
    let envelope = validator(&checked_in("cloudevent.json"));
    let data: HashMap<EventType, jsonschema::Validator> = EventType::ALL
        .into_iter()
        .map(|ty| (ty, validator(&checked_in(&file_name(ty)))))
        .collect();
    for event in emitted().await {
        let document: Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(
            errors(&envelope, &document),
            Vec::<String>::new(),
            "{document}"
        );
        let payload = &data[&event.wire_type()];
        assert_eq!(
            errors(payload, &document["data"]),
            Vec::<String>::new(),
            "{document}"
        );
    }
}

#[tokio::test]
async fn when_an_event_breaks_the_contract_should_fail_the_schemas() {
    let envelope = validator(&checked_in("cloudevent.json"));
    let event = emitted().await.remove(0);
    let good: Value = serde_json::from_str(&event.to_json()).unwrap();
    let broken: [(&str, Value); 6] = [
        ("sequence", json!(1)),
        ("sequence", json!("1")),
        ("specversion", json!("0.3")),
        ("type", json!("task.created.v9")),
        ("data", json!({})),
        ("time", Value::Null),
    ];
    for (field, value) in broken {
        let mut document = good.clone();
        document[field] = value;
        assert!(
            !envelope.is_valid(&document),
            "{field} broken yet valid: {document}"
        );
    }
    let mut without_id = good.clone();
    without_id.as_object_mut().unwrap().remove("id");
    assert!(!envelope.is_valid(&without_id));
}

#[tokio::test]
async fn when_read_by_the_cloudevents_sdk_should_keep_every_attribute() {
    for event in emitted().await {
        let parsed: Event = serde_json::from_str(&event.to_json())
            .unwrap_or_else(|err| panic!("{:?}: {err}", event.kind()));
        assert_eq!(parsed.id(), event.id.to_string());
        assert_eq!(parsed.ty(), event.wire_type().name());
        assert_eq!(parsed.source().as_str(), "/orchestration/tasks");
        assert_eq!(parsed.subject(), Some(event.subject.as_str()));
        assert_eq!(
            parsed.dataschema().map(|uri| uri.as_str()),
            Some(event.wire_type().data_schema().as_str())
        );
        assert_eq!(parsed.datacontenttype(), Some("application/json"));
        assert_eq!(
            parsed.time().map(|time| time.timestamp_millis()),
            Some(event.time.timestamp_millis())
        );
        // A string extension, as the CloudEvents sequence extension defines it.
        assert_eq!(
            parsed.extension("sequence"),
            Some(&ExtensionValue::String(event.sequence.to_string()))
        );
        assert_eq!(
            parsed.extension("correlationid"),
            Some(&ExtensionValue::String("req-1".to_owned()))
        );
        let data: Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(parsed.data(), Some(&Data::Json(data["data"].clone())));
    }
}

/// The fields the service's contract promises each event's data, as any CloudEvents
/// reader sees them: the seed's, and the owner and title for the platform's subscribers.
fn promised(ty: EventType) -> &'static [&'static str] {
    match ty {
        EventType::TaskCreatedV1 => &["task_id", "user_id", "title"],
        EventType::TaskStartedV1 => &["task_id", "task_type", "complexity", "strategy", "user_id"],
        EventType::TaskCompletedV2 => &[
            "task_id",
            "user_id",
            "task_type",
            "complexity",
            "strategy",
            "tokens_used",
            "cost_micro_usd",
            "duration_ms",
        ],
        EventType::TaskCompletedV1 => &[
            "task_id",
            "user_id",
            "task_type",
            "complexity",
            "strategy",
            "tokens_used",
            "cost_usd",
            "duration_ms",
        ],
        EventType::TaskFailedV1 => &[
            "task_id",
            "task_type",
            "complexity",
            "strategy",
            "error_message",
            "tokens_used",
            "cost_usd",
            "duration_ms",
        ],
    }
}

#[tokio::test]
async fn when_read_by_the_cloudevents_sdk_should_carry_every_promised_field() {
    for event in emitted().await {
        let parsed: Event = serde_json::from_str(&event.to_json()).unwrap();
        let Some(Data::Json(data)) = parsed.data() else {
            panic!("{:?}: no JSON data", event.kind());
        };
        for field in promised(event.wire_type()) {
            assert!(
                data.get(field).is_some_and(|value| !value.is_null()),
                "{:?} lacks {field}: {data}",
                event.kind()
            );
        }
        match event.kind() {
            EventKind::TaskCreated => assert_eq!(data["title"], "Fix login"),
            EventKind::TaskFailed => assert_eq!(data["error_message"], "tests fail"),
            _ => {}
        }
        assert!(
            data.get("user_id").is_none() || data["user_id"] == "alice",
            "{data}"
        );
    }
}

#[test]
fn when_the_envelope_schema_is_checked_in_should_carry_its_id() {
    assert_eq!(checked_in("cloudevent.json")["$id"], ENVELOPE_SCHEMA_ID);
}
