//! The names under which each event type travels: SNS message attributes, which the
//! subscriptions' filter policies match, and the CloudEvents `type`.

use super::EventType;
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

    /// The CloudEvents `type` of its first version (`task.created.v1`), in which the
    /// domain's payload travels as it is.
    pub fn cloud_event_type(self) -> &'static str {
        EventType::first(self).name()
    }

    /// The CloudEvents `dataschema` of its first version: the `$id` of
    /// `schemas/<type>.json` (see `super::schema`).
    pub fn data_schema(self) -> String {
        EventType::first(self).data_schema()
    }

    /// The kind of a CloudEvents type (`task.completed.v2`), if it is one of ours.
    pub fn of_cloud_event_type(event_type: &str) -> Option<EventKind> {
        EventType::named(event_type).map(EventType::kind)
    }
}
