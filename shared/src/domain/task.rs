//! The task aggregate and its status machine.
//! Every transition validates its input, checks the current status and yields the next task plus the event it causes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::DomainError;
use super::events::{TaskCompleted, TaskCreated, TaskEventData, TaskFailed, TaskStarted};
use super::kinds::{Action, ExecutionStrategy, TaskComplexity, TaskStatus, TaskType};

/// Longest accepted title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest accepted description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Longest accepted failure message, in characters.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 4_000;
/// Longest accepted user id (the JWT `sub` claim), in characters.
pub const MAX_USER_ID_CHARS: usize = 256;
/// Largest accepted cost of one task, in US dollars.
pub const MAX_COST_USD: f64 = 1_000_000.0;
/// Smallest non-zero cost: DynamoDB numbers cannot be smaller than 1e-130, and no
/// real cost is below a billionth of a dollar.
pub const MIN_NONZERO_COST_USD: f64 = 1e-9;
/// Largest accepted token count of one task; sums over many tasks must stay exact.
pub const MAX_TOKENS: u64 = 1_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: Uuid,
    pub user_id: String,
    pub title: String,
    pub description: String,
    pub status: TaskStatus,
    pub task_type: Option<TaskType>,
    pub complexity: Option<TaskComplexity>,
    pub strategy: Option<ExecutionStrategy>,
    /// Incremented by every write; writes are conditional on it.
    pub version: u64,
    /// Sequence number of the last event this task emitted.
    pub last_sequence: u64,
    #[serde(with = "crate::time")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::time")]
    pub updated_at: DateTime<Utc>,
    #[serde(default, with = "crate::time::option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, with = "crate::time::option")]
    pub completed_at: Option<DateTime<Utc>>,
    pub tokens_used: Option<u64>,
    pub cost_usd: Option<f64>,
    pub error_message: Option<String>,
}

/// Input of task creation.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub user_id: String,
    pub title: String,
    pub description: String,
}

/// Outcome reported when a task finishes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub tokens_used: u64,
    pub cost_usd: f64,
}

/// The next state of a task and the payload of the event the change emits, if any; the
/// event is the task's `last_sequence`th and happened at its `updated_at`.
#[derive(Debug, Clone)]
pub struct Transition {
    pub task: Task,
    pub event: Option<TaskEventData>,
}

impl Task {
    /// Creates a pending task and its `TaskCreated` event (sequence 1).
    pub fn create(input: NewTask, now: DateTime<Utc>) -> Result<Transition, DomainError> {
        let user_id = input.user_id.trim().to_owned();
        if user_id.is_empty() || user_id.chars().count() > MAX_USER_ID_CHARS {
            return Err(DomainError::validation(
                "user_id",
                "must be 1 to 256 characters",
            ));
        }
        let title = input.title.trim().to_owned();
        if title.is_empty() {
            return Err(DomainError::validation("title", "must not be empty"));
        }
        check_length("title", &title, MAX_TITLE_CHARS)?;
        check_length("description", &input.description, MAX_DESCRIPTION_CHARS)?;

        let task = Task {
            id: Uuid::new_v4(),
            user_id,
            title,
            description: input.description,
            status: TaskStatus::Pending,
            task_type: None,
            complexity: None,
            strategy: None,
            version: 1,
            last_sequence: 0,
            created_at: now,
            updated_at: now,
            started_at: None,
            completed_at: None,
            tokens_used: None,
            cost_usd: None,
            error_message: None,
        };
        let data = TaskEventData::Created(TaskCreated {
            task_id: task.id,
            user_id: Some(task.user_id.clone()),
            title: Some(task.title.clone()),
        });
        Ok(task.emit(data))
    }

    /// Sets type and complexity; allowed while pending or classified. Emits no event.
    pub fn classify(
        &self,
        task_type: TaskType,
        complexity: TaskComplexity,
        now: DateTime<Utc>,
    ) -> Result<Transition, DomainError> {
        self.require(
            Action::Classify,
            &[TaskStatus::Pending, TaskStatus::Classified],
        )?;
        let mut next = self.advanced(TaskStatus::Classified, now);
        next.task_type = Some(task_type);
        next.complexity = Some(complexity);
        Ok(Transition {
            task: next,
            event: None,
        })
    }

    /// Starts a classified task with the given strategy.
    pub fn start(
        &self,
        strategy: ExecutionStrategy,
        now: DateTime<Utc>,
    ) -> Result<Transition, DomainError> {
        self.require(Action::Start, &[TaskStatus::Classified])?;
        let (task_type, complexity) = self.classification(Action::Start)?;
        let mut next = self.advanced(TaskStatus::InProgress, now);
        next.strategy = Some(strategy);
        // The clamped time, as `completed_at` uses: skewed clocks must not inflate durations.
        next.started_at = Some(next.updated_at);
        let data = TaskEventData::Started(TaskStarted {
            task_id: next.id,
            task_type,
            complexity,
            strategy: Some(strategy),
            user_id: Some(next.user_id.clone()),
        });
        Ok(next.emit(data))
    }

    /// Completes a task in progress.
    pub fn complete(&self, usage: Usage, now: DateTime<Utc>) -> Result<Transition, DomainError> {
        check_usage(usage)?;
        self.require(Action::Complete, &[TaskStatus::InProgress])?;
        let (task_type, complexity, strategy) = self.execution(Action::Complete)?;
        let mut next = self.finished(TaskStatus::Completed, usage, now);
        next.error_message = None;
        let data = TaskEventData::Completed(TaskCompleted {
            task_id: next.id,
            user_id: Some(next.user_id.clone()),
            task_type,
            complexity,
            strategy,
            tokens_used: usage.tokens_used,
            cost_usd: usage.cost_usd,
            duration_ms: next.duration_ms().unwrap_or(0),
        });
        Ok(next.emit(data))
    }

    /// Fails a task in progress; usage defaults to zero when unknown.
    pub fn fail(
        &self,
        error_message: String,
        usage: Usage,
        now: DateTime<Utc>,
    ) -> Result<Transition, DomainError> {
        if error_message.trim().is_empty() {
            return Err(DomainError::validation(
                "error_message",
                "must not be empty",
            ));
        }
        check_length("error_message", &error_message, MAX_ERROR_MESSAGE_CHARS)?;
        check_usage(usage)?;
        self.require(Action::Fail, &[TaskStatus::InProgress])?;
        let (task_type, complexity, strategy) = self.execution(Action::Fail)?;
        let mut next = self.finished(TaskStatus::Failed, usage, now);
        next.error_message = Some(error_message.clone());
        let data = TaskEventData::Failed(TaskFailed {
            task_id: next.id,
            task_type,
            complexity,
            strategy,
            error_message: Some(error_message),
            tokens_used: usage.tokens_used,
            cost_usd: usage.cost_usd,
            duration_ms: next.duration_ms().unwrap_or(0),
        });
        Ok(next.emit(data))
    }

    /// Milliseconds from start to completion, once both are known.
    pub fn duration_ms(&self) -> Option<u64> {
        let started = self.started_at?;
        let finished = self.completed_at?;
        Some(u64::try_from((finished - started).num_milliseconds()).unwrap_or(0))
    }

    fn require(&self, action: Action, allowed: &[TaskStatus]) -> Result<(), DomainError> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(DomainError::InvalidTransition {
                action,
                status: self.status,
            })
        }
    }

    fn classification(&self, action: Action) -> Result<(TaskType, TaskComplexity), DomainError> {
        match (self.task_type, self.complexity) {
            (Some(task_type), Some(complexity)) => Ok((task_type, complexity)),
            _ => Err(DomainError::InvalidTransition {
                action,
                status: self.status,
            }),
        }
    }

    fn execution(
        &self,
        action: Action,
    ) -> Result<(TaskType, TaskComplexity, ExecutionStrategy), DomainError> {
        let (task_type, complexity) = self.classification(action)?;
        let strategy = self.strategy.ok_or(DomainError::InvalidTransition {
            action,
            status: self.status,
        })?;
        Ok((task_type, complexity, strategy))
    }

    fn advanced(&self, status: TaskStatus, now: DateTime<Utc>) -> Task {
        let mut next = self.clone();
        next.status = status;
        next.version = self.version + 1;
        // Clocks of different hosts may disagree; never let time run backwards on one task.
        next.updated_at = now.max(self.updated_at);
        next
    }

    fn finished(&self, status: TaskStatus, usage: Usage, now: DateTime<Utc>) -> Task {
        let mut next = self.advanced(status, now);
        next.completed_at = Some(next.updated_at);
        next.tokens_used = Some(usage.tokens_used);
        next.cost_usd = Some(usage.cost_usd);
        next
    }

    fn emit(mut self, data: TaskEventData) -> Transition {
        self.last_sequence += 1;
        Transition {
            task: self,
            event: Some(data),
        }
    }
}

/// A text field's limits: at most `max` characters, and no control characters but tab
/// and line breaks. (JSON writes a control character as six bytes, so they would let a
/// page of tasks outgrow the 6 MB a Lambda may answer.)
fn check_length(field: &'static str, value: &str, max: usize) -> Result<(), DomainError> {
    if value.chars().count() > max {
        return Err(DomainError::validation(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(DomainError::validation(
            field,
            "must not contain control characters other than tab and line breaks",
        ));
    }
    Ok(())
}

fn check_usage(usage: Usage) -> Result<(), DomainError> {
    let cost = usage.cost_usd;
    let in_range = cost == 0.0 || (MIN_NONZERO_COST_USD..=MAX_COST_USD).contains(&cost);
    if !in_range {
        return Err(DomainError::validation(
            "cost_usd",
            format!("must be 0 or a number from {MIN_NONZERO_COST_USD} to {MAX_COST_USD}"),
        ));
    }
    if usage.tokens_used > MAX_TOKENS {
        return Err(DomainError::validation(
            "tokens_used",
            format!("must be at most {MAX_TOKENS}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-27T10:00:00Z".parse().unwrap()
    }

    fn pending() -> Task {
        Task::create(
            NewTask {
                user_id: "user-1".into(),
                title: "Fix login".into(),
                description: "The login button does nothing".into(),
            },
            now(),
        )
        .unwrap()
        .task
    }

    fn classified() -> Task {
        pending()
            .classify(TaskType::BugFix, TaskComplexity::Simple, now())
            .unwrap()
            .task
    }

    fn in_progress() -> Task {
        classified()
            .start(ExecutionStrategy::SingleShot, now())
            .unwrap()
            .task
    }

    fn usage() -> Usage {
        Usage {
            tokens_used: 1200,
            cost_usd: 0.42,
        }
    }

    fn in_status(status: TaskStatus) -> Task {
        match status {
            TaskStatus::Pending => pending(),
            TaskStatus::Classified => classified(),
            TaskStatus::InProgress => in_progress(),
            TaskStatus::Completed => in_progress().complete(usage(), now()).unwrap().task,
            TaskStatus::Failed => {
                in_progress()
                    .fail("boom".into(), usage(), now())
                    .unwrap()
                    .task
            }
        }
    }

    fn attempt(task: &Task, action: Action) -> Result<Transition, DomainError> {
        match action {
            Action::Classify => task.classify(TaskType::Feature, TaskComplexity::Medium, now()),
            Action::Start => task.start(ExecutionStrategy::Iterative, now()),
            Action::Complete => task.complete(usage(), now()),
            Action::Fail => task.fail("it broke".into(), usage(), now()),
        }
    }

    #[test]
    fn when_created_should_be_pending_at_version_one_with_created_event() {
        let transition = Task::create(
            NewTask {
                user_id: "u".into(),
                title: "  Title  ".into(),
                description: String::new(),
            },
            now(),
        )
        .unwrap();
        assert_eq!(transition.task.status, TaskStatus::Pending);
        assert_eq!(transition.task.version, 1);
        assert_eq!(transition.task.title, "Title");
        assert_eq!(transition.task.last_sequence, 1);
        assert!(matches!(transition.event, Some(TaskEventData::Created(_))));
    }

    #[test]
    fn when_any_action_is_tried_in_any_status_should_follow_the_status_machine() {
        let allowed = [
            (
                TaskStatus::Pending,
                Action::Classify,
                TaskStatus::Classified,
            ),
            (
                TaskStatus::Classified,
                Action::Classify,
                TaskStatus::Classified,
            ),
            (
                TaskStatus::Classified,
                Action::Start,
                TaskStatus::InProgress,
            ),
            (
                TaskStatus::InProgress,
                Action::Complete,
                TaskStatus::Completed,
            ),
            (TaskStatus::InProgress, Action::Fail, TaskStatus::Failed),
        ];
        let actions = [
            Action::Classify,
            Action::Start,
            Action::Complete,
            Action::Fail,
        ];
        for status in TaskStatus::ALL {
            for action in actions {
                let task = in_status(status);
                let result = attempt(&task, action);
                match allowed
                    .iter()
                    .find(|(s, a, _)| *s == status && *a == action)
                {
                    Some((_, _, expected)) => {
                        let next = result.unwrap_or_else(|e| panic!("{status:?} {action:?}: {e}"));
                        assert_eq!(next.task.status, *expected, "{status:?} {action:?}");
                        assert_eq!(next.task.version, task.version + 1);
                    }
                    None => assert_eq!(
                        result.unwrap_err(),
                        DomainError::InvalidTransition { action, status },
                        "{status:?} {action:?} should be refused"
                    ),
                }
            }
        }
    }

    #[test]
    fn when_classified_should_emit_no_event_and_keep_the_sequence() {
        let task = pending();
        let next = task
            .classify(TaskType::Test, TaskComplexity::Epic, now())
            .unwrap();
        assert!(next.event.is_none());
        assert_eq!(next.task.last_sequence, task.last_sequence);
        assert_eq!(next.task.task_type, Some(TaskType::Test));
    }

    #[test]
    fn when_lifecycle_runs_should_number_events_one_two_three() {
        let task = classified();
        let started = task.start(ExecutionStrategy::MultiAgent, now()).unwrap();
        assert_eq!(started.task.last_sequence, 2);
        let later = now() + chrono::Duration::milliseconds(1500);
        let completed = started.task.complete(usage(), later).unwrap();
        assert_eq!(completed.task.last_sequence, 3);
        match completed.event.unwrap() {
            TaskEventData::Completed(data) => {
                assert_eq!(data.duration_ms, 1500);
                assert_eq!(data.tokens_used, 1200);
                assert_eq!(data.strategy, ExecutionStrategy::MultiAgent);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn when_failed_should_record_message_and_usage() {
        let failed = in_progress()
            .fail(
                "compile error".into(),
                Usage {
                    tokens_used: 0,
                    cost_usd: 0.0,
                },
                now(),
            )
            .unwrap();
        assert_eq!(failed.task.error_message.as_deref(), Some("compile error"));
        assert_eq!(failed.task.tokens_used, Some(0));
        assert!(failed.task.completed_at.is_some());
    }

    #[test]
    fn when_input_is_invalid_should_name_the_field() {
        let cases = [
            ("", "d", "title"),
            ("   ", "d", "title"),
            ("bell\u{7}", "d", "title"),
            ("t", "escape \u{1b}[31m", "description"),
            ("t", "next line \u{85}", "description"),
            (&"x".repeat(MAX_TITLE_CHARS + 1)[..], "d", "title"),
            (
                "t",
                &"y".repeat(MAX_DESCRIPTION_CHARS + 1)[..],
                "description",
            ),
        ];
        for (title, description, field) in cases {
            let err = Task::create(
                NewTask {
                    user_id: "u".into(),
                    title: title.into(),
                    description: description.into(),
                },
                now(),
            )
            .unwrap_err();
            assert_eq!(err.field(), Some(field), "{title:?}");
        }
        let task = in_progress();
        let negative = Usage {
            tokens_used: 1,
            cost_usd: -1.0,
        };
        assert_eq!(
            task.complete(negative, now()).unwrap_err().field(),
            Some("cost_usd")
        );
        let tiny = Usage {
            tokens_used: 1,
            cost_usd: 1e-200,
        };
        assert_eq!(
            task.complete(tiny, now()).unwrap_err().field(),
            Some("cost_usd")
        );
        let huge = Usage {
            tokens_used: MAX_TOKENS + 1,
            cost_usd: 1.0,
        };
        assert_eq!(
            task.complete(huge, now()).unwrap_err().field(),
            Some("tokens_used")
        );
        let nan = Usage {
            tokens_used: 1,
            cost_usd: f64::NAN,
        };
        assert_eq!(
            task.complete(nan, now()).unwrap_err().field(),
            Some("cost_usd")
        );
        assert_eq!(
            task.fail(" ".into(), usage(), now()).unwrap_err().field(),
            Some("error_message")
        );
    }

    #[test]
    fn when_clock_runs_backwards_should_not_move_updated_at_back() {
        let task = classified();
        let earlier = now() - chrono::Duration::seconds(5);
        let next = task.start(ExecutionStrategy::SingleShot, earlier).unwrap();
        assert_eq!(next.task.updated_at, task.updated_at);
        assert_eq!(next.task.started_at, Some(task.updated_at));
    }

    #[test]
    fn when_the_start_clock_ran_behind_should_not_inflate_the_duration() {
        // Given a task classified at 10:00:00 and started by a host whose clock says 09:59:55
        let task = classified();
        let behind = now() - chrono::Duration::seconds(5);
        let started = task
            .start(ExecutionStrategy::SingleShot, behind)
            .unwrap()
            .task;

        // When it completes one second after its classification
        let completed = started
            .complete(usage(), now() + chrono::Duration::seconds(1))
            .unwrap();

        // Then it took one second, not six
        assert_eq!(completed.task.duration_ms(), Some(1_000));
    }
}
