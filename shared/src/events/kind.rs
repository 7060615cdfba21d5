//! The names under which each event type travels in SNS message attributes, which the
//! subscriptions' filter policies match.

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

    /// Value of the `event_version` message attribute.
    pub fn version(self) -> &'static str {
        "v1"
    }
}
