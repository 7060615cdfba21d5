//! The CloudEvents 1.0 structured-mode envelope (JSON) around every lifecycle event.
//! `sequence` numbers a task's events 1, 2, ... so consumers can ignore stale ones.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::version::{self, EventType};
use super::{EventKind, Sequence};
use crate::domain::{Task, TaskEventData};

pub const SPEC_VERSION: &str = "1.0";
pub const EVENT_SOURCE: &str = "/orchestration/tasks";
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// A task's lifecycle event as a CloudEvent (structured mode, JSON). `data` is the domain's
/// payload; `dataschema` names the type it travels as (see `super::version`), which
/// `to_json` writes and `from_json` reads: serialise with those, not with serde directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Task lifecycle event")]
pub struct EventEnvelope {
    #[schemars(extend("const" = SPEC_VERSION))]
    pub specversion: String,
    /// The EventId: consumers deduplicate on it.
    pub id: Uuid,
    #[schemars(extend("const" = EVENT_SOURCE))]
    pub source: String,
    /// `type` and `data` of the CloudEvent.
    #[serde(flatten)]
    #[schemars(with = "version::WireData")]
    pub data: TaskEventData,
    /// When the change happened (RFC 3339, UTC, milliseconds).
    #[serde(with = "crate::time")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub time: DateTime<Utc>,
    /// The id of the task the event is about.
    #[schemars(extend("format" = "uuid"))]
    pub subject: String,
    #[schemars(extend("const" = DATA_CONTENT_TYPE))]
    pub datacontenttype: String,
    /// The URI of the JSON Schema of `data`: the `$id` of `schemas/<type>.json`.
    #[schemars(extend("format" = "uri"))]
    pub dataschema: String,
    pub sequence: Sequence,
    /// W3C trace context of the span that emitted the event; a CloudEvents extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The id of the request that caused the event (API Gateway's request id), so that
    /// every consumer's log lines can be found from it; a CloudEvents extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlationid: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EventParseError {
    /// The parser's message is the whole story, so it is not repeated as a source.
    #[error("not a task event: {0}")]
    Json(serde_json::Error),
    #[error("unsupported specversion {0:?}, expected \"1.0\"")]
    SpecVersion(String),
    #[error("subject {subject:?} does not match data.task_id {task_id}")]
    Subject { subject: String, task_id: Uuid },
    #[error("dataschema {dataschema:?} is not that of type {event_type}")]
    DataSchema {
        dataschema: String,
        event_type: &'static str,
    },
}

impl From<serde_json::Error> for EventParseError {
    fn from(err: serde_json::Error) -> Self {
        EventParseError::Json(err)
    }
}

impl EventEnvelope {
    pub fn new(task_id: Uuid, sequence: u64, time: DateTime<Utc>, data: TaskEventData) -> Self {
        EventEnvelope {
            specversion: SPEC_VERSION.to_owned(),
            id: Uuid::new_v4(),
            source: EVENT_SOURCE.to_owned(),
            dataschema: EventKind::of(&data).data_schema().to_owned(),
            data,
            time,
            subject: task_id.to_string(),
            datacontenttype: DATA_CONTENT_TYPE.to_owned(),
            sequence: Sequence::new(sequence),
            traceparent: None,
            correlationid: None,
        }
    }

    /// The envelope of the event `task` emitted with its latest change: numbered with the
    /// task's sequence and dated with its change, in the trace `traceparent`.
    pub fn emitted(task: &Task, data: TaskEventData, traceparent: Option<String>) -> Self {
        let mut event = Self::new(task.id, task.last_sequence, task.updated_at, data);
        event.traceparent = traceparent;
        event
    }

    pub fn kind(&self) -> EventKind {
        EventKind::of(&self.data)
    }

    pub fn task_id(&self) -> Uuid {
        self.data.task_id()
    }

    /// The type the event travels as: the version its `dataschema` names.
    pub fn wire_type(&self) -> EventType {
        let kind = self.kind();
        EventType::versions(kind)
            .find(|ty| ty.data_schema() == self.dataschema)
            .unwrap_or_else(|| EventType::first(kind))
    }

    /// The same event as `ty` carries it (same id, sequence, time and trace); `None` when
    /// `ty` is a version of another kind.
    pub fn as_type(&self, ty: EventType) -> Option<EventEnvelope> {
        (ty.kind() == self.kind()).then(|| EventEnvelope {
            dataschema: ty.data_schema(),
            ..self.clone()
        })
    }

    /// The CloudEvent, as the type `dataschema` names.
    pub fn to_json(&self) -> String {
        let ty = self.wire_type();
        if ty == EventType::first(self.kind()) {
            return serde_json::to_string(self).expect("an event envelope always serialises");
        }
        let mut document = serde_json::to_value(self).expect("an event envelope always serialises");
        document["type"] = ty.name().into();
        document["data"] = version::render(&self.data, ty).expect("a version of its own kind");
        document.to_string()
    }

    /// Parses and checks a structured-mode CloudEvent produced by this service, of any
    /// type it knows (see `super::version`).
    pub fn from_json(body: &str) -> Result<Self, EventParseError> {
        // A first version parses as it is; only a body that does not is looked at again,
        // for a later version.
        let envelope: EventEnvelope = match serde_json::from_str::<EventEnvelope>(body) {
            Ok(envelope) => {
                let first = EventType::first(envelope.kind());
                if envelope.dataschema != first.data_schema() {
                    return Err(EventParseError::DataSchema {
                        dataschema: envelope.dataschema,
                        event_type: first.name(),
                    });
                }
                envelope
            }
            Err(err) => Self::from_later_version(body).ok_or(err)??,
        };
        if envelope.specversion != SPEC_VERSION {
            return Err(EventParseError::SpecVersion(envelope.specversion));
        }
        let task_id = envelope.task_id();
        if envelope.subject != task_id.to_string() {
            return Err(EventParseError::Subject {
                subject: envelope.subject,
                task_id,
            });
        }
        Ok(envelope)
    }

    /// A body of a later version (`task.completed.v2`), its `data` read as the domain's
    /// payload and its `dataschema` kept, so it is written again as it came; `None` when
    /// its `type` is no later version this build knows.
    fn from_later_version(body: &str) -> Option<Result<Self, EventParseError>> {
        #[derive(Deserialize)]
        struct Typed<'a> {
            #[serde(rename = "type", borrow)]
            event_type: std::borrow::Cow<'a, str>,
        }
        let typed: Typed = serde_json::from_str(body).ok()?;
        let ty =
            EventType::named(&typed.event_type).filter(|ty| *ty != EventType::first(ty.kind()))?;
        let parse = || -> Result<Self, EventParseError> {
            let mut document: serde_json::Value = serde_json::from_str(body)?;
            let data = version::read(ty, document["data"].take())?;
            let first = EventType::first(ty.kind());
            document["type"] = first.name().into();
            document["data"] = version::render(&data, first).expect("its own kind");
            let envelope: EventEnvelope = serde_json::from_value(document)?;
            if envelope.dataschema != ty.data_schema() {
                return Err(EventParseError::DataSchema {
                    dataschema: envelope.dataschema,
                    event_type: ty.name(),
                });
            }
            Ok(envelope)
        };
        Some(parse())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;
    use crate::domain::{ExecutionStrategy, TaskComplexity, TaskType};
    use crate::events::{TaskCompleted, TaskCreated, TaskFailed, TaskStarted};

    const TASK: &str = "0b9d8f0e-6a3e-4c43-9d43-7d3cfa0b2a11";
    const EVENT: &str = "5f1c7a52-93c3-4f4e-8f0e-2b8f3f3f9a10";

    fn envelope(data: TaskEventData, sequence: u64) -> EventEnvelope {
        let mut event = EventEnvelope::new(
            TASK.parse().unwrap(),
            sequence,
            "2026-11-27T10:00:00.250Z".parse().unwrap(),
            data,
        );
        event.id = EVENT.parse().unwrap();
        event
    }

    fn golden(event_type: &str, sequence: &str, data: Value) -> Value {
        json!({
            "specversion": "1.0",
            "id": EVENT,
            "source": "/orchestration/tasks",
            "type": event_type,
            "time": "2026-11-27T10:00:00.250Z",
            "subject": TASK,
            "datacontenttype": "application/json",
            "dataschema": format!("urn:task-orchestration:schemas:{event_type}"),
            "sequence": sequence,
            "data": data,
        })
    }

    fn cases() -> Vec<(EventEnvelope, Value)> {
        let task_id = TASK.parse().unwrap();
        vec![
            (
                envelope(
                    TaskEventData::Created(TaskCreated {
                        task_id,
                        user_id: Some("alice".into()),
                        title: Some("Fix login".into()),
                    }),
                    1,
                ),
                golden(
                    "task.created.v1",
                    "00000000000000000001",
                    json!({"task_id": TASK, "user_id": "alice", "title": "Fix login"}),
                ),
            ),
            (
                envelope(
                    TaskEventData::Started(TaskStarted {
                        task_id,
                        task_type: TaskType::BugFix,
                        complexity: TaskComplexity::Simple,
                        strategy: Some(ExecutionStrategy::SingleShot),
                        user_id: Some("alice".into()),
                    }),
                    2,
                ),
                golden(
                    "task.started.v1",
                    "00000000000000000002",
                    json!({"task_id": TASK, "task_type": "BugFix", "complexity": "Simple", "strategy": "SingleShot", "user_id": "alice"}),
                ),
            ),
            (
                envelope(
                    TaskEventData::Completed(TaskCompleted {
                        task_id,
                        user_id: Some("alice".into()),
                        task_type: TaskType::Feature,
                        complexity: TaskComplexity::Complex,
                        strategy: ExecutionStrategy::MultiAgent,
                        tokens_used: 1500,
                        cost_usd: 0.75,
                        duration_ms: 42_000,
                    }),
                    3,
                ),
                golden(
                    "task.completed.v1",
                    "00000000000000000003",
                    json!({"task_id": TASK, "user_id": "alice", "task_type": "Feature", "complexity": "Complex", "strategy": "MultiAgent", "tokens_used": 1500, "cost_usd": 0.75, "duration_ms": 42000}),
                ),
            ),
            (
                envelope(
                    TaskEventData::Failed(TaskFailed {
                        task_id,
                        task_type: TaskType::Deployment,
                        complexity: TaskComplexity::Epic,
                        strategy: ExecutionStrategy::HybridExecution,
                        error_message: Some("the build broke".into()),
                        tokens_used: 0,
                        cost_usd: 0.0,
                        duration_ms: 10,
                    }),
                    12,
                ),
                golden(
                    "task.failed.v1",
                    "00000000000000000012",
                    json!({"task_id": TASK, "task_type": "Deployment", "complexity": "Epic", "strategy": "HybridExecution", "error_message": "the build broke", "tokens_used": 0, "cost_usd": 0.0, "duration_ms": 10}),
                ),
            ),
        ]
    }

    #[test]
    fn when_serialised_should_match_the_golden_document_of_each_type() {
        for (event, expected) in cases() {
            let actual: Value = serde_json::from_str(&event.to_json()).unwrap();
            assert_eq!(actual, expected, "{:?}", event.kind());
            assert_eq!(actual["type"], event.kind().cloud_event_type());
        }
    }

    /// Documents as this producer wrote them before `user_id`, `title`, `strategy` (of
    /// TaskStarted) and `error_message` were added to `.v1`: read with those absent.
    #[test]
    fn when_a_document_from_before_the_added_fields_is_parsed_should_read_them_as_absent() {
        let task_id: Uuid = TASK.parse().unwrap();
        let earlier = [
            (
                golden(
                    "task.created.v1",
                    "00000000000000000001",
                    json!({"task_id": TASK}),
                ),
                TaskEventData::Created(TaskCreated {
                    task_id,
                    user_id: None,
                    title: None,
                }),
            ),
            (
                golden(
                    "task.started.v1",
                    "00000000000000000002",
                    json!({"task_id": TASK, "task_type": "BugFix", "complexity": "Simple"}),
                ),
                TaskEventData::Started(TaskStarted {
                    task_id,
                    task_type: TaskType::BugFix,
                    complexity: TaskComplexity::Simple,
                    strategy: None,
                    user_id: None,
                }),
            ),
            (
                golden(
                    "task.failed.v1",
                    "00000000000000000003",
                    json!({"task_id": TASK, "task_type": "Test", "complexity": "Epic", "strategy": "Iterative", "duration_ms": 10}),
                ),
                TaskEventData::Failed(TaskFailed {
                    task_id,
                    task_type: TaskType::Test,
                    complexity: TaskComplexity::Epic,
                    strategy: ExecutionStrategy::Iterative,
                    error_message: None,
                    tokens_used: 0,
                    cost_usd: 0.0,
                    duration_ms: 10,
                }),
            ),
        ];
        for (document, data) in earlier {
            let parsed = EventEnvelope::from_json(&document.to_string()).unwrap();
            assert_eq!(parsed.data, data);
            // Written again, what was absent is still absent, not null.
            let written: Value = serde_json::from_str(&parsed.to_json()).unwrap();
            for added in ["user_id", "title", "strategy", "error_message"] {
                if document["data"].get(added).is_none() {
                    assert!(written["data"].get(added).is_none(), "{written}");
                }
            }
        }
    }

    #[test]
    fn when_golden_document_is_parsed_should_round_trip() {
        for (event, expected) in cases() {
            let parsed = EventEnvelope::from_json(&expected.to_string()).unwrap();
            assert_eq!(parsed, event);
        }
    }

    #[test]
    fn when_traceparent_is_set_should_be_carried() {
        let (mut event, _) = cases().remove(0);
        event.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        let parsed = EventEnvelope::from_json(&event.to_json()).unwrap();
        assert_eq!(parsed.traceparent, event.traceparent);
    }

    #[test]
    fn when_failed_event_omits_usage_should_default_to_zero() {
        let mut doc = cases().remove(3).1;
        let data = doc["data"].as_object_mut().unwrap();
        data.remove("tokens_used");
        data.remove("cost_usd");
        match EventEnvelope::from_json(&doc.to_string()).unwrap().data {
            TaskEventData::Failed(failed) => {
                assert_eq!(failed.tokens_used, 0);
                assert_eq!(failed.cost_usd, 0.0);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn when_the_dataschema_is_not_that_of_the_type_should_refuse_it_naming_both() {
        // Given a completion as v1 and as v2, each with the other's dataschema
        let (completed, _) = cases().remove(2);
        let v2 = completed.as_type(EventType::TaskCompletedV2).unwrap();
        let mut v1_named_v2: Value = serde_json::from_str(&completed.to_json()).unwrap();
        v1_named_v2["dataschema"] = json!(EventType::TaskCompletedV2.data_schema());
        let mut v2_named_v1: Value = serde_json::from_str(&v2.to_json()).unwrap();
        v2_named_v1["dataschema"] = json!(EventType::TaskCompletedV1.data_schema());

        // Then both are refused, and each as it is read, the v2 one read back as it came
        for document in [v1_named_v2, v2_named_v1] {
            match EventEnvelope::from_json(&document.to_string()) {
                Err(EventParseError::DataSchema { event_type, .. }) => {
                    assert_eq!(event_type, document["type"].as_str().unwrap())
                }
                other => panic!("{document}: {other:?}"),
            }
        }
        let read = EventEnvelope::from_json(&v2.to_json()).unwrap();
        assert_eq!(read.wire_type(), EventType::TaskCompletedV2);
        assert_eq!(read.to_json(), v2.to_json());
    }

    #[test]
    fn when_document_is_not_a_task_event_should_refuse_it() {
        let mut wrong_version = cases().remove(0).1;
        wrong_version["specversion"] = json!("0.3");
        let mut wrong_subject = cases().remove(0).1;
        wrong_subject["subject"] = json!("another");
        let mut unknown_type = cases().remove(0).1;
        unknown_type["type"] = json!("task.created.v9");
        let mut numeric_sequence = cases().remove(0).1;
        numeric_sequence["sequence"] = json!(1);
        let mut short_sequence = cases().remove(0).1;
        short_sequence["sequence"] = json!("1");
        for body in [
            "not json".to_owned(),
            wrong_version.to_string(),
            wrong_subject.to_string(),
            unknown_type.to_string(),
            numeric_sequence.to_string(),
            short_sequence.to_string(),
        ] {
            assert!(EventEnvelope::from_json(&body).is_err(), "{body}");
        }
    }

    fn any_data(task_id: Uuid) -> impl Strategy<Value = TaskEventData> {
        use TaskType::*;
        let task_type = prop::sample::select(vec![
            BugFix,
            Feature,
            Refactor,
            Test,
            Documentation,
            Deployment,
        ]);
        let complexity = prop::sample::select(vec![
            TaskComplexity::Simple,
            TaskComplexity::Medium,
            TaskComplexity::Complex,
            TaskComplexity::Epic,
        ]);
        let strategy = prop::sample::select(vec![
            ExecutionStrategy::SingleShot,
            ExecutionStrategy::Iterative,
            ExecutionStrategy::MultiAgent,
            ExecutionStrategy::HybridExecution,
        ]);
        let finished = (
            task_type.clone(),
            complexity.clone(),
            strategy.clone(),
            any::<u64>(),
            // Costs as the API takes them: up to MAX_COST_USD, in steps of a billionth.
            (0u64..=1_000_000_000_000_000).prop_map(|nano| nano as f64 / 1e9),
            any::<u64>(),
        );
        prop_oneof![
            proptest::option::of("\\PC{1,40}").prop_map(move |title| {
                TaskEventData::Created(TaskCreated {
                    task_id,
                    user_id: title.as_ref().map(|_| "u".to_owned()),
                    title,
                })
            }),
            (
                task_type,
                complexity,
                proptest::option::of(strategy.clone())
            )
                .prop_map(move |(task_type, complexity, strategy)| {
                    TaskEventData::Started(TaskStarted {
                        task_id,
                        task_type,
                        complexity,
                        strategy,
                        user_id: strategy.map(|_| "u".to_owned()),
                    })
                }),
            finished
                .clone()
                .prop_map(move |(t, c, s, tokens, cost, ms)| {
                    TaskEventData::Completed(TaskCompleted {
                        task_id,
                        user_id: Some("u".into()),
                        task_type: t,
                        complexity: c,
                        strategy: s,
                        tokens_used: tokens,
                        cost_usd: cost,
                        duration_ms: ms,
                    })
                }),
            finished.prop_map(move |(t, c, s, tokens, cost, ms)| {
                TaskEventData::Failed(TaskFailed {
                    task_id,
                    task_type: t,
                    complexity: c,
                    strategy: s,
                    error_message: Some("it broke".into()),
                    tokens_used: tokens,
                    cost_usd: cost,
                    duration_ms: ms,
                })
            }),
        ]
    }

    fn any_envelope() -> impl Strategy<Value = EventEnvelope> {
        (any::<u128>(), any::<u128>())
            .prop_flat_map(|(task, event)| {
                let task_id = Uuid::from_u128(task);
                (
                    Just((task_id, Uuid::from_u128(event))),
                    any::<u64>(),
                    0i64..=253_402_300_799_999,
                    any_data(task_id),
                    proptest::option::of("00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]"),
                    proptest::option::of("\\PC{1,40}"),
                )
            })
            .prop_map(
                |((task_id, id), sequence, millis, data, traceparent, correlationid)| {
                    let time = DateTime::from_timestamp_millis(millis).unwrap();
                    let mut event = EventEnvelope::new(task_id, sequence, time, data);
                    event.id = id;
                    event.traceparent = traceparent;
                    event.correlationid = correlationid;
                    event
                },
            )
    }

    proptest! {
        #[test]
        fn when_any_envelope_is_serialised_should_read_back_equal(event in any_envelope()) {
            let json = event.to_json();
            prop_assert_eq!(EventEnvelope::from_json(&json).unwrap(), event.clone());
            let document: Value = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&document["sequence"], &json!(event.sequence.to_string()));
            prop_assert_eq!(&document["dataschema"], &json!(event.kind().data_schema()));
        }

        #[test]
        fn when_two_envelopes_are_numbered_should_order_by_their_sequence_text(
            a in prop_oneof![0u64..1_000, any::<u64>()],
            b in prop_oneof![0u64..1_000, any::<u64>()],
        ) {
            let text = |n: u64| {
                let (mut event, _) = cases().remove(0);
                event.sequence = crate::events::Sequence::new(n);
                let document: Value = serde_json::from_str(&event.to_json()).unwrap();
                document["sequence"].as_str().unwrap().to_owned()
            };
            prop_assert_eq!(text(a).cmp(&text(b)), a.cmp(&b));
        }
    }
}
