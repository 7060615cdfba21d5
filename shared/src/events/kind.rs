//! The names under which each event type travels: SNS message attributes, which the
//! subscriptions' filter policies match, and the CloudEvents `type`.

use crate::domain::TaskEventData;

/// The event types, as named in SNS message attributes and filter policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    TaskCreated,
    TaskStarted,
    TaskCompleted,
    TaskFailed,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::TaskCreated,
        EventKind::TaskStarted,
        EventKind::TaskCompleted,
        EventKind::TaskFailed,
    ];

    pub fn of(data: &TaskEventData) -> EventKind {
        match data {
            TaskEventData::Created(_) => EventKind::TaskCreated,
            TaskEventData::Started(_) => EventKind::TaskStarted,
            TaskEventData::Completed(_) => EventKind::TaskCompleted,
            TaskEventData::Failed(_) => EventKind::TaskFailed,
        }
    }

    /// Value of the `event_type` message attribute.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::TaskCreated => "TaskCreated",
            EventKind::TaskStarted => "TaskStarted",
            EventKind::TaskCompleted => "TaskCompleted",
            EventKind::TaskFailed => "TaskFailed",
        }
    }

    /// Value of the CloudEvents `type` attribute, as the envelope serialises it.
    pub fn cloud_event_type(self) -> &'static str {
        match self {
            EventKind::TaskCreated => "task.created.v1",
            EventKind::TaskStarted => "task.started.v1",
            EventKind::TaskCompleted => "task.completed.v1",
            EventKind::TaskFailed => "task.failed.v1",
        }
    }

    /// Value of the CloudEvents `dataschema` attribute: the URI of the JSON Schema of the
    /// event's `data`, the `$id` of `schemas/<type>.json` (see `super::schema`).
    pub fn data_schema(self) -> &'static str {
        match self {
            EventKind::TaskCreated => "urn:task-orchestration:schemas:task.created.v1",
            EventKind::TaskStarted => "urn:task-orchestration:schemas:task.started.v1",
            EventKind::TaskCompleted => "urn:task-orchestration:schemas:task.completed.v1",
            EventKind::TaskFailed => "urn:task-orchestration:schemas:task.failed.v1",
        }
    }

    /// Value of the `event_version` message attribute.
    /// The SNS message attributes an event of this kind is published with, which the
    /// subscriptions' filter policies match (and replays send again).
    pub fn message_attributes(self) -> [(&'static str, &'static str); 2] {
        [
            ("event_type", self.name()),
            ("event_version", self.version()),
        ]
    }

    /// The kind of a CloudEvents type (`task.created.v1`), if it is one of ours.
    pub fn of_cloud_event_type(event_type: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.cloud_event_type() == event_type)
    }

    pub fn version(self) -> &'static str {
        "v1"
    }
}
