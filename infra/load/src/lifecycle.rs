//! One task's lifecycle as a careful client drives it: create, wait for the classifier,
//! start (alone or in a race of concurrent starts), then complete or fail. An answer that
//! leaves the outcome open (no answer, a 5xx, a 409 for a write that may have committed)
//! is settled by reading the task back, and the step is retried only if it did not happen.

use std::time::{Duration, Instant};

use futures::future::join_all;
use shared::domain::TaskStatus;
use uuid::Uuid;

use crate::api::{Api, ApiError, TaskView, Transition};
use crate::plan::Plan;

/// Answers that were not what a committed write should get, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notes {
    /// A write answered 409 that the read-back shows committed.
    pub committed_but_conflict: u32,
    /// A write answered 5xx or not at all that the read-back shows committed.
    pub committed_but_unanswered: u32,
    /// Calls that failed (no answer, 5xx, 409) and were retried after the read-back.
    pub retried: u32,
}

impl Notes {
    pub fn add(&mut self, other: &Notes) {
        self.committed_but_conflict += other.committed_but_conflict;
        self.committed_but_unanswered += other.committed_but_unanswered;
        self.retried += other.retried;
    }

    fn committed_despite(&mut self, err: &ApiError) {
        if err.is_conflict() {
            self.committed_but_conflict += 1;
        } else {
            self.committed_but_unanswered += 1;
        }
    }
}

/// How the concurrent starts of a raced task were answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Race {
    pub wins: u32,
    pub conflicts: u32,
    /// Answers that were neither 200 nor 409.
    pub unanswered: u32,
}

/// What one lifecycle did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub plan: Plan,
    pub user: String,
    pub task_id: Option<Uuid>,
    pub race: Option<Race>,
    pub notes: Notes,
    /// Why the lifecycle stopped early, if it did.
    pub error: Option<String>,
}

/// Why a step gave up.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{step}: not done within {timeout:?} (last: {last})")]
    Timeout {
        step: &'static str,
        timeout: Duration,
        last: String,
    },
    #[error("{step}: the task is {status:?}, which the step cannot follow")]
    Unexpected {
        step: &'static str,
        status: TaskStatus,
    },
}

/// Drives lifecycles with a deadline per step and a number of concurrent racing starts.
#[derive(Clone)]
pub struct Driver {
    pub api: Api,
    pub step_timeout: Duration,
    pub race_width: usize,
}

struct Deadline {
    step: &'static str,
    timeout: Duration,
    until: Instant,
    pause: Duration,
}

impl Deadline {
    fn new(step: &'static str, timeout: Duration) -> Self {
        Deadline {
            step,
            timeout,
            until: Instant::now() + timeout,
            pause: Duration::from_millis(50),
        }
    }

    /// Waits before the next try (growing pauses up to 1 s), or gives up past the deadline.
    async fn pause(&mut self, last: impl ToString) -> Result<(), StepError> {
        if Instant::now() + self.pause > self.until {
            return Err(StepError::Timeout {
                step: self.step,
                timeout: self.timeout,
                last: last.to_string(),
            });
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(Duration::from_secs(1));
        Ok(())
    }
}

impl Driver {
    pub async fn run(&self, user: String, plan: Plan) -> Outcome {
        let mut outcome = Outcome {
            plan,
            user,
            task_id: None,
            race: None,
            notes: Notes::default(),
            error: None,
        };
        if let Err(err) = self.steps(&mut outcome).await {
            outcome.error = Some(err.to_string());
        }
        outcome
    }

    async fn steps(&self, outcome: &mut Outcome) -> Result<(), StepError> {
        let (user, plan) = (outcome.user.clone(), outcome.plan.clone());
        let id = self.create(&user, &plan, &mut outcome.notes).await?;
        outcome.task_id = Some(id);
        self.wait_classified(&user, id).await?;
        let start = Transition::Start(plan.strategy);
        if plan.raced {
            outcome.race = Some(self.race(&user, id, &start, &mut outcome.notes).await?);
        } else {
            self.transition(&user, id, &start, &mut outcome.notes)
                .await?;
        }
        let finish = if plan.fails {
            Transition::Fail {
                message: format!("load run: planned failure of lifecycle {}", plan.index),
                tokens: plan.tokens,
                cost: plan.cost_usd,
            }
        } else {
            Transition::Complete {
                tokens: plan.tokens,
                cost: plan.cost_usd,
            }
        };
        self.transition(&user, id, &finish, &mut outcome.notes)
            .await?;
        Ok(())
    }

    /// Creates the task once: after an answer that leaves it open, the caller's newest
    /// tasks tell whether the create happened (titles are unique).
    async fn create(&self, user: &str, plan: &Plan, notes: &mut Notes) -> Result<Uuid, StepError> {
        let mut deadline = Deadline::new("create", self.step_timeout);
        loop {
            let err = match self.api.create(user, &plan.title, &plan.description).await {
                Ok(task) => return Ok(task.id),
                Err(err) if err.is_unknown_outcome() || err.is_conflict() => err,
                Err(err) => return Err(err.into()),
            };
            deadline.pause(&err).await?;
            if let Some(task) = self.find_by_title(user, &plan.title, &mut deadline).await? {
                notes.committed_despite(&err);
                return Ok(task.id);
            }
            notes.retried += 1;
        }
    }

    async fn find_by_title(
        &self,
        user: &str,
        title: &str,
        deadline: &mut Deadline,
    ) -> Result<Option<TaskView>, StepError> {
        loop {
            match self.api.list(user, None).await {
                Ok((items, _)) => return Ok(items.into_iter().find(|t| t.title == title)),
                Err(err) => deadline.pause(err).await?,
            }
        }
    }

    async fn read(
        &self,
        user: &str,
        id: Uuid,
        deadline: &mut Deadline,
    ) -> Result<TaskView, StepError> {
        loop {
            match self.api.get(user, id).await {
                Ok(task) => return Ok(task),
                Err(err) => deadline.pause(err).await?,
            }
        }
    }

    async fn wait_classified(&self, user: &str, id: Uuid) -> Result<(), StepError> {
        let mut deadline = Deadline::new("wait for classification", self.step_timeout);
        loop {
            let task = self.read(user, id, &mut deadline).await?;
            match task.status {
                TaskStatus::Classified => return Ok(()),
                TaskStatus::Pending => deadline.pause("still Pending").await?,
                status => {
                    return Err(StepError::Unexpected {
                        step: "wait for classification",
                        status,
                    })
                }
            }
        }
    }

    /// Applies `transition` once, judging open answers by the task's state.
    async fn transition(
        &self,
        user: &str,
        id: Uuid,
        transition: &Transition,
        notes: &mut Notes,
    ) -> Result<(), StepError> {
        let step = step_name(transition);
        let mut deadline = Deadline::new(step, self.step_timeout);
        loop {
            let err = match self.api.transition(user, id, transition).await {
                Ok(_) => return Ok(()),
                Err(err) if err.is_unknown_outcome() || err.is_conflict() => err,
                Err(err) => return Err(err.into()),
            };
            let task = self.read(user, id, &mut deadline).await?;
            if task.status == transition.target() {
                notes.committed_despite(&err);
                return Ok(());
            }
            if task.status != transition.precondition() {
                return Err(StepError::Unexpected {
                    step,
                    status: task.status,
                });
            }
            notes.retried += 1;
            deadline.pause(&err).await?;
        }
    }

    /// Fires `race_width` starts at once; one may win. If none was answered 200 the
    /// task's state tells whether one committed anyway, or the start is retried alone.
    async fn race(
        &self,
        user: &str,
        id: Uuid,
        start: &Transition,
        notes: &mut Notes,
    ) -> Result<Race, StepError> {
        let answers =
            join_all((0..self.race_width.max(2)).map(|_| self.api.transition(user, id, start)))
                .await;
        let mut race = Race::default();
        let mut open = None;
        for answer in answers {
            match answer {
                Ok(_) => race.wins += 1,
                Err(err) if err.is_conflict() => {
                    race.conflicts += 1;
                    open.get_or_insert(err);
                }
                Err(err) if err.is_unknown_outcome() => {
                    race.unanswered += 1;
                    open = Some(err);
                }
                Err(err) => return Err(err.into()),
            }
        }
        if race.wins == 0 {
            let mut deadline = Deadline::new("race", self.step_timeout);
            let task = self.read(user, id, &mut deadline).await?;
            match (task.status, open) {
                (TaskStatus::InProgress, Some(err)) => notes.committed_despite(&err),
                (TaskStatus::Classified, _) => {
                    notes.retried += 1;
                    self.transition(user, id, start, notes).await?;
                }
                (status, _) => {
                    return Err(StepError::Unexpected {
                        step: "race",
                        status,
                    })
                }
            }
        }
        Ok(race)
    }
}

fn step_name(transition: &Transition) -> &'static str {
    match transition {
        Transition::Start(_) => "start",
        Transition::Complete { .. } => "complete",
        Transition::Fail { .. } => "fail",
    }
}
