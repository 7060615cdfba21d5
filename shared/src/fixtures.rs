//! Made-up tasks and the events they emit, for the tests of whatever consumes them.
//! Compiled for tests only (the `fakes` feature).

use chrono::{DateTime, Duration, Utc};

use crate::domain::{
    ExecutionStrategy, NewTask, Task, TaskComplexity, TaskType, Transition, Usage,
};
use crate::events::EventEnvelope;
use crate::time;

/// The envelope of the event a transition emitted, as the task API writes it.
pub fn envelope(transition: &Transition) -> EventEnvelope {
    let data = transition
        .event
        .clone()
        .expect("the transition emits an event");
    EventEnvelope::emitted(&transition.task, data, None)
}

/// A new pending task of user `u` and its `TaskCreated` event.
pub fn created(title: &str) -> (Task, EventEnvelope) {
    created_at(title, time::now())
}

/// A task of user `u` classified as a simple test task, which emitted only `TaskCreated`.
pub fn classified(title: &str) -> Task {
    let (task, _) = created(title);
    task.classify(TaskType::Test, TaskComplexity::Simple, time::now())
        .expect("a pending task can be classified")
        .task
}

fn created_at(title: &str, now: DateTime<Utc>) -> (Task, EventEnvelope) {
    let input = NewTask {
        user_id: "u".into(),
        title: title.into(),
        description: String::new(),
    };
    let transition = Task::create(input, now).expect("a valid task");
    let event = envelope(&transition);
    (transition.task, event)
}

/// One task's whole life: created, classified, started, and finished `duration_ms` later.
#[derive(Debug, Clone)]
pub struct Run {
    pub task_type: TaskType,
    pub complexity: TaskComplexity,
    pub strategy: ExecutionStrategy,
    pub usage: Usage,
    pub duration_ms: i64,
    /// Failed rather than completed.
    pub fails: bool,
}

impl Default for Run {
    fn default() -> Self {
        Run {
            task_type: TaskType::Feature,
            complexity: TaskComplexity::Medium,
            strategy: ExecutionStrategy::SingleShot,
            usage: Usage {
                tokens_used: 100,
                cost_usd: 0.25,
            },
            duration_ms: 1_000,
            fails: false,
        }
    }
}

impl Run {
    /// Its three events: `TaskCreated`, `TaskStarted`, then `TaskCompleted` or `TaskFailed`.
    pub fn events(&self) -> [EventEnvelope; 3] {
        let start = time::now();
        let (task, created) = created_at("a task", start);
        let classified = task
            .classify(self.task_type, self.complexity, start)
            .expect("a pending task can be classified")
            .task;
        let started = classified
            .start(self.strategy, start)
            .expect("a classified task can start");
        let end = start + Duration::milliseconds(self.duration_ms);
        let finished = if self.fails {
            started.task.fail("it broke".into(), self.usage, end)
        } else {
            started.task.complete(self.usage, end)
        }
        .expect("a task in progress can finish");
        [created, envelope(&started), envelope(&finished)]
    }
}
