//! The CloudEvents 1.0 structured-mode envelope (JSON) around every lifecycle event.
//! `sequence` numbers a task's events 1, 2, ... so consumers can ignore stale ones.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::EventKind;
use crate::domain::{Task, TaskEventData};

pub const SPEC_VERSION: &str = "1.0";
pub const EVENT_SOURCE: &str = "/orchestration/tasks";
pub const DATA_CONTENT_TYPE: &str = "application/json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    pub specversion: String,
    /// The EventId: consumers deduplicate on it.
    pub id: Uuid,
    pub source: String,
    /// `type` and `data` of the CloudEvent.
    #[serde(flatten)]
    pub data: TaskEventData,
    /// The OccurredAt of the event.
    #[serde(with = "crate::time")]
    pub time: DateTime<Utc>,
    /// The task the event is about.
    pub subject: String,
    pub datacontenttype: String,
    pub sequence: u64,
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
            data,
            time,
            subject: task_id.to_string(),
            datacontenttype: DATA_CONTENT_TYPE.to_owned(),
            sequence,
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

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an event envelope always serialises")
    }

    /// Parses and checks a structured-mode CloudEvent produced by this service.
    pub fn from_json(body: &str) -> Result<Self, EventParseError> {
        let envelope: EventEnvelope = serde_json::from_str(body)?;
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
}

#[cfg(test)]
mod tests {
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

    fn golden(event_type: &str, sequence: u64, data: Value) -> Value {
        json!({
            "specversion": "1.0",
            "id": EVENT,
            "source": "/orchestration/tasks",
            "type": event_type,
            "time": "2026-11-27T10:00:00.250Z",
            "subject": TASK,
            "datacontenttype": "application/json",
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
                        user_id: "user-1".into(),
                        title: "Fix login".into(),
                        description: "Button does nothing".into(),
                    }),
                    1,
                ),
                golden(
                    "task.created.v1",
                    1,
                    json!({"task_id": TASK, "user_id": "user-1", "title": "Fix login", "description": "Button does nothing"}),
                ),
            ),
            (
                envelope(
                    TaskEventData::Started(TaskStarted {
                        task_id,
                        task_type: TaskType::BugFix,
                        complexity: TaskComplexity::Simple,
                        strategy: ExecutionStrategy::SingleShot,
                        user_id: "user-1".into(),
                    }),
                    2,
                ),
                golden(
                    "task.started.v1",
                    2,
                    json!({"task_id": TASK, "task_type": "BugFix", "complexity": "Simple", "strategy": "SingleShot", "user_id": "user-1"}),
                ),
            ),
            (
                envelope(
                    TaskEventData::Completed(TaskCompleted {
                        task_id,
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
                    3,
                    json!({"task_id": TASK, "task_type": "Feature", "complexity": "Complex", "strategy": "MultiAgent", "tokens_used": 1500, "cost_usd": 0.75, "duration_ms": 42000}),
                ),
            ),
            (
                envelope(
                    TaskEventData::Failed(TaskFailed {
                        task_id,
                        task_type: TaskType::Deployment,
                        complexity: TaskComplexity::Epic,
                        strategy: ExecutionStrategy::HybridExecution,
                        error_message: "timed out".into(),
                        tokens_used: 0,
                        cost_usd: 0.0,
                        duration_ms: 10,
                    }),
                    3,
                ),
                golden(
                    "task.failed.v1",
                    3,
                    json!({"task_id": TASK, "task_type": "Deployment", "complexity": "Epic", "strategy": "HybridExecution", "error_message": "timed out", "tokens_used": 0, "cost_usd": 0.0, "duration_ms": 10}),
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
    fn when_document_is_not_a_task_event_should_refuse_it() {
        let mut wrong_version = cases().remove(0).1;
        wrong_version["specversion"] = json!("0.3");
        let mut wrong_subject = cases().remove(0).1;
        wrong_subject["subject"] = json!("another");
        let mut unknown_type = cases().remove(0).1;
        unknown_type["type"] = json!("task.created.v9");
        for body in [
            "not json".to_owned(),
            wrong_version.to_string(),
            wrong_subject.to_string(),
            unknown_type.to_string(),
        ] {
            assert!(EventEnvelope::from_json(&body).is_err(), "{body}");
        }
    }
}
