//! The versions an event travels in. A change that `.vN` consumers cannot read is published
//! as a new type `.v(N+1)`: another representation of the same domain event, with the same
//! `id`, `sequence` and `time`, so a consumer whose inbox sees both applies it once. While
//! consumers move, the producer emits both, as `EMITTED_EVENT_TYPES` lists (the template's
//! `EmittedEventTypes`); each consumer's subscription filter picks its `event_version`.
//!
//! `task.completed.v2` is the first such change: the cost as whole micro-dollars
//! (`cost_micro_usd`, an integer that sums exactly) in place of `cost_usd`, a binary
//! fraction.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::EventKind;
use crate::domain::{ExecutionStrategy, TaskCompleted, TaskComplexity, TaskEventData, TaskType};
use crate::settings::{ConfigError, Variables};

/// One representation of an event kind on the wire: its CloudEvents `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    TaskCreatedV1,
    TaskStartedV1,
    TaskCompletedV1,
    TaskCompletedV2,
    TaskFailedV1,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::TaskCreatedV1,
        EventType::TaskStartedV1,
        EventType::TaskCompletedV1,
        EventType::TaskCompletedV2,
        EventType::TaskFailedV1,
    ];

    pub fn kind(self) -> EventKind {
        match self {
            EventType::TaskCreatedV1 => EventKind::TaskCreated,
            EventType::TaskStartedV1 => EventKind::TaskStarted,
            EventType::TaskCompletedV1 | EventType::TaskCompletedV2 => EventKind::TaskCompleted,
            EventType::TaskFailedV1 => EventKind::TaskFailed,
        }
    }

    /// Value of the `event_version` message attribute.
    pub fn version(self) -> &'static str {
        match self {
            EventType::TaskCompletedV2 => "v2",
            _ => "v1",
        }
    }

    /// The CloudEvents `type`: `task.completed.v2`, ...
    pub fn name(self) -> &'static str {
        match self {
            EventType::TaskCreatedV1 => "task.created.v1",
            EventType::TaskStartedV1 => "task.started.v1",
            EventType::TaskCompletedV1 => "task.completed.v1",
            EventType::TaskCompletedV2 => "task.completed.v2",
            EventType::TaskFailedV1 => "task.failed.v1",
        }
    }

    /// The CloudEvents `dataschema`: the `$id` of `schemas/<type>.json`.
    pub fn data_schema(self) -> String {
        format!("urn:task-orchestration:schemas:{}", self.name())
    }

    pub fn named(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|ty| ty.name() == name)
    }

    /// The first version of `kind`, in which the domain's payload travels as it is.
    pub fn first(kind: EventKind) -> EventType {
        EventType::ALL
            .into_iter()
            .find(|ty| ty.kind() == kind)
            .expect("every kind has a first version")
    }

    /// Every version of `kind`, oldest first.
    pub fn versions(kind: EventKind) -> impl Iterator<Item = EventType> {
        EventType::ALL
            .into_iter()
            .filter(move |ty| ty.kind() == kind)
    }

    /// The SNS message attributes of this representation, which the subscriptions' filter
    /// policies match (and replays send again).
    pub fn message_attributes(self) -> [(&'static str, &'static str); 2] {
        [
            ("event_type", self.kind().name()),
            ("event_version", self.version()),
        ]
    }
}

/// `task.completed.v2`: `task.completed.v1` with the cost in micro-dollars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "TaskCompletedV2")]
pub struct TaskCompletedV2 {
    pub task_id: Uuid,
    /// The task's owner; absent only when replayed from an event recorded before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String", length(min = 1, max = 256))]
    pub user_id: Option<String>,
    pub task_type: TaskType,
    pub complexity: TaskComplexity,
    pub strategy: ExecutionStrategy,
    pub tokens_used: u64,
    /// What the task cost, in millionths of a US dollar.
    pub cost_micro_usd: u64,
    /// From start to completion.
    pub duration_ms: u64,
}

/// Micro-dollars per dollar.
const MICRO: f64 = 1_000_000.0;

impl From<&TaskCompleted> for TaskCompletedV2 {
    fn from(v1: &TaskCompleted) -> Self {
        TaskCompletedV2 {
            task_id: v1.task_id,
            user_id: v1.user_id.clone(),
            task_type: v1.task_type,
            complexity: v1.complexity,
            strategy: v1.strategy,
            tokens_used: v1.tokens_used,
            // The API accepts no negative or non-finite cost; `as` saturates regardless.
            cost_micro_usd: (v1.cost_usd * MICRO).round() as u64,
            duration_ms: v1.duration_ms,
        }
    }
}

impl From<TaskCompletedV2> for TaskCompleted {
    fn from(v2: TaskCompletedV2) -> Self {
        TaskCompleted {
            task_id: v2.task_id,
            user_id: v2.user_id,
            task_type: v2.task_type,
            complexity: v2.complexity,
            strategy: v2.strategy,
            tokens_used: v2.tokens_used,
            cost_usd: v2.cost_micro_usd as f64 / MICRO,
            duration_ms: v2.duration_ms,
        }
    }
}

/// The `data` of `event` as `ty` carries it; `None` when `ty` is of another kind.
pub(crate) fn render(data: &TaskEventData, ty: EventType) -> Option<serde_json::Value> {
    let value = match (ty, data) {
        (EventType::TaskCompletedV2, TaskEventData::Completed(v1)) => {
            serde_json::to_value(TaskCompletedV2::from(v1))
        }
        (EventType::TaskCreatedV1, TaskEventData::Created(d)) => serde_json::to_value(d),
        (EventType::TaskStartedV1, TaskEventData::Started(d)) => serde_json::to_value(d),
        (EventType::TaskCompletedV1, TaskEventData::Completed(d)) => serde_json::to_value(d),
        (EventType::TaskFailedV1, TaskEventData::Failed(d)) => serde_json::to_value(d),
        _ => return None,
    };
    Some(value.expect("a payload always serialises"))
}

/// The `type` and `data` of every type this build reads: the envelope's schema.
#[derive(JsonSchema)]
#[serde(tag = "type", content = "data")]
#[allow(dead_code)]
pub(crate) enum WireData {
    #[serde(rename = "task.created.v1")]
    CreatedV1(crate::domain::TaskCreated),
    #[serde(rename = "task.started.v1")]
    StartedV1(crate::domain::TaskStarted),
    #[serde(rename = "task.completed.v1")]
    CompletedV1(TaskCompleted),
    #[serde(rename = "task.completed.v2")]
    CompletedV2(TaskCompletedV2),
    #[serde(rename = "task.failed.v1")]
    FailedV1(crate::domain::TaskFailed),
}

/// The domain's payload of `data` read as `ty`.
pub(crate) fn read(ty: EventType, data: serde_json::Value) -> serde_json::Result<TaskEventData> {
    Ok(match ty {
        EventType::TaskCreatedV1 => TaskEventData::Created(serde_json::from_value(data)?),
        EventType::TaskStartedV1 => TaskEventData::Started(serde_json::from_value(data)?),
        EventType::TaskCompletedV1 => TaskEventData::Completed(serde_json::from_value(data)?),
        EventType::TaskCompletedV2 => {
            TaskEventData::Completed(serde_json::from_value::<TaskCompletedV2>(data)?.into())
        }
        EventType::TaskFailedV1 => TaskEventData::Failed(serde_json::from_value(data)?),
    })
}

/// The variable listing the types the producer emits (comma-separated CloudEvents types).
pub const EMITTED_EVENT_TYPES: &str = "EMITTED_EVENT_TYPES";

/// The types the producer emits: each kind in at least one version, by default the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emission {
    types: Vec<EventType>,
}

impl Default for Emission {
    fn default() -> Self {
        Emission {
            types: EventKind::ALL.into_iter().map(EventType::first).collect(),
        }
    }
}

impl Emission {
    /// The types of a comma-separated list: every one known, every kind present.
    pub fn parse(list: &str) -> Result<Emission, String> {
        let mut types = Vec::new();
        for name in list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            let ty = EventType::named(name).ok_or_else(|| {
                let known: Vec<&str> = EventType::ALL.iter().map(|ty| ty.name()).collect();
                format!("{name} is no event type (one of {})", known.join(", "))
            })?;
            if !types.contains(&ty) {
                types.push(ty);
            }
        }
        for kind in EventKind::ALL {
            if !types.iter().any(|ty| ty.kind() == kind) {
                return Err(format!(
                    "no version of {} is emitted: list at least one of {}",
                    kind.name(),
                    EventType::versions(kind)
                        .map(|ty| ty.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        types.sort();
        Ok(Emission { types })
    }

    /// `EMITTED_EVENT_TYPES`, or the first version of every kind when unset.
    pub fn from_variables(variables: &Variables) -> Result<Emission, ConfigError> {
        match variables.optional(EMITTED_EVENT_TYPES) {
            None => Ok(Emission::default()),
            Some(list) => Emission::parse(&list)
                .map_err(|reason| ConfigError::invalid(EMITTED_EVENT_TYPES, reason)),
        }
    }

    /// The types `kind` is emitted as, oldest first.
    pub fn of(&self, kind: EventKind) -> impl Iterator<Item = EventType> + '_ {
        self.types
            .iter()
            .copied()
            .filter(move |ty| ty.kind() == kind)
    }

    pub fn types(&self) -> &[EventType] {
        &self.types
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completed(cost_usd: f64) -> TaskCompleted {
        TaskCompleted {
            task_id: Uuid::new_v4(),
            user_id: Some("alice".into()),
            task_type: TaskType::Feature,
            complexity: TaskComplexity::Medium,
            strategy: ExecutionStrategy::Iterative,
            tokens_used: 1200,
            cost_usd,
            duration_ms: 5_000,
        }
    }

    #[test]
    fn when_unset_should_emit_the_first_version_of_every_kind() {
        let emission = Emission::from_variables(&Variables::default()).unwrap();
        let names: Vec<&str> = emission.types().iter().map(|ty| ty.name()).collect();
        assert_eq!(
            names,
            [
                "task.created.v1",
                "task.started.v1",
                "task.completed.v1",
                "task.failed.v1"
            ]
        );
    }

    #[test]
    fn when_a_second_version_is_listed_should_emit_both_of_that_kind() {
        let emission = Emission::parse(
            "task.created.v1, task.started.v1,task.completed.v2,task.completed.v1,task.failed.v1",
        )
        .unwrap();
        assert_eq!(
            emission.of(EventKind::TaskCompleted).collect::<Vec<_>>(),
            [EventType::TaskCompletedV1, EventType::TaskCompletedV2]
        );
        assert_eq!(
            emission.of(EventKind::TaskStarted).collect::<Vec<_>>(),
            [EventType::TaskStartedV1]
        );
    }

    #[test]
    fn when_the_list_names_an_unknown_type_or_leaves_a_kind_out_should_refuse_it_by_name() {
        let unknown = Emission::from_variables(&Variables::new([(
            EMITTED_EVENT_TYPES,
            "task.created.v1,task.started.v1,task.completed.v3,task.failed.v1",
        )]))
        .unwrap_err()
        .to_string();
        assert!(unknown.contains(EMITTED_EVENT_TYPES), "{unknown}");
        assert!(
            unknown.contains("task.completed.v3 is no event type"),
            "{unknown}"
        );

        let missing =
            Emission::parse("task.created.v1,task.started.v1,task.failed.v1").unwrap_err();
        assert!(missing.contains("no version of TaskCompleted"), "{missing}");
        assert!(missing.contains("task.completed.v2"), "{missing}");
    }

    #[test]
    fn when_a_completion_travels_as_v2_should_read_back_as_the_same_domain_event() {
        for cost in [0.0, 0.42, 0.000_001, 12.345_678, 1_000_000.5] {
            let v1 = completed(cost);
            let data = render(
                &TaskEventData::Completed(v1.clone()),
                EventType::TaskCompletedV2,
            )
            .unwrap();
            assert!(data.get("cost_usd").is_none(), "{data}");
            let read = read(EventType::TaskCompletedV2, data).unwrap();
            assert_eq!(read, TaskEventData::Completed(v1), "cost {cost}");
        }
    }

    #[test]
    fn when_rendered_as_a_type_of_another_kind_should_give_nothing() {
        let data = TaskEventData::Created(crate::domain::TaskCreated {
            task_id: Uuid::new_v4(),
            user_id: None,
            title: None,
        });
        assert!(render(&data, EventType::TaskCompletedV2).is_none());
        assert!(render(&data, EventType::TaskCreatedV1).is_some());
    }
}
