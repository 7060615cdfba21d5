//! Reacts to TaskCreated (classify) and to TaskCompleted and TaskFailed (training examples).

use std::sync::Arc;

use async_trait::async_trait;
use shared::consumer::{ConsumerError, EventHandler};
use shared::domain::TaskStatus;
use shared::events::{EventEnvelope, TaskEventData};
use shared::metrics::Measure;
use shared::ports::{StoreError, TaskStore};
use shared::records::RecordStore;
use shared::time;
use tracing::info;
use uuid::Uuid;

use crate::example::TrainingExample;
use crate::rules;

/// How often a classification is retried against concurrent changes of the task.
const MAX_ATTEMPTS: usize = 3;

pub struct Classifier {
    tasks: Arc<dyn TaskStore>,
    examples: Arc<dyn RecordStore<TrainingExample>>,
}

impl Classifier {
    pub fn new(tasks: Arc<dyn TaskStore>, examples: Arc<dyn RecordStore<TrainingExample>>) -> Self {
        Classifier { tasks, examples }
    }

    /// Classifies the task if it is still pending and unclassified; never overwrites a
    /// classification its owner made.
    async fn classify(&self, task_id: Uuid) -> Result<(), ConsumerError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(task) = self.tasks.get(task_id).await? else {
                return Err(ConsumerError::transient(format!(
                    "task {task_id} is not in the table yet"
                )));
            };
            if task.status != TaskStatus::Pending || task.task_type.is_some() {
                info!(task.id = %task_id, status = task.status.as_str(), "already classified; left as it is");
                return Ok(());
            }
            let (task_type, complexity) = rules::classify(&task.title, &task.description);
            let next = task
                .classify(task_type, complexity, time::now())
                .map_err(|err| {
                    ConsumerError::permanent("the task cannot be classified").with_source(err)
                })?
                .task;
            match self.tasks.apply(&task, &next, None).await {
                Ok(_) => {
                    info!(task.id = %task_id, ?task_type, ?complexity, "task classified");
                    return Ok(());
                }
                // Changed meanwhile (perhaps classified by its owner): look again.
                Err(StoreError::Conflict) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(ConsumerError::transient(format!(
            "task {task_id} kept changing while classifying"
        )))
    }

    async fn record(&self, event: &EventEnvelope) -> Result<(), ConsumerError> {
        let example = match &event.data {
            TaskEventData::Completed(d) => TrainingExample {
                task_id: d.task_id,
                task_type: d.task_type,
                complexity: d.complexity,
                strategy: d.strategy,
                outcome: TaskStatus::Completed,
                tokens_used: d.tokens_used,
                cost_usd: d.cost_usd,
                duration_ms: d.duration_ms,
                error_message: None,
                event_id: event.id,
                recorded_at: time::now(),
            },
            TaskEventData::Failed(d) => TrainingExample {
                task_id: d.task_id,
                task_type: d.task_type,
                complexity: d.complexity,
                strategy: d.strategy,
                outcome: TaskStatus::Failed,
                tokens_used: d.tokens_used,
                cost_usd: d.cost_usd,
                duration_ms: d.duration_ms,
                error_message: d.error_message.clone(),
                event_id: event.id,
                recorded_at: time::now(),
            },
            _ => return Ok(()),
        };
        let new = self.examples.record(example.task_id, &example).await?;
        info!(task.id = %example.task_id, new, "training example recorded");
        if !new {
            Measure::DuplicateSkipped(self.name()).emit();
        }
        Ok(())
    }
}

#[async_trait]
impl EventHandler for Classifier {
    fn name(&self) -> &'static str {
        "ml-classifier"
    }

    async fn handle(&self, event: &EventEnvelope) -> Result<(), ConsumerError> {
        match &event.data {
            TaskEventData::Created(created) => self.classify(created.task_id).await,
            TaskEventData::Completed(_) | TaskEventData::Failed(_) => self.record(event).await,
            TaskEventData::Started(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use shared::consumer::Retry;
    use shared::domain::{ExecutionStrategy, NewTask, Task, TaskComplexity, TaskType, Usage};
    use shared::fixtures::{self, Run};
    use shared::memory::{MemoryRecords, MemoryStore};

    use super::*;

    struct Fixture {
        classifier: Classifier,
        tasks: Arc<MemoryStore>,
        examples: Arc<MemoryRecords<TrainingExample>>,
    }

    fn fixture() -> Fixture {
        let tasks = Arc::new(MemoryStore::new());
        let examples = Arc::new(MemoryRecords::default());
        Fixture {
            classifier: Classifier::new(tasks.clone(), examples.clone()),
            tasks,
            examples,
        }
    }

    async fn stored(f: &Fixture, title: &str) -> (Task, EventEnvelope) {
        let input = NewTask {
            user_id: "u".into(),
            title: title.into(),
            description: "It crashes".into(),
        };
        let created = Task::create(input, time::now()).unwrap();
        let event = fixtures::envelope(&created);
        f.tasks.create(&created.task, &event).await.unwrap();
        (created.task, event)
    }

    #[tokio::test]
    async fn when_a_task_is_created_should_classify_it_by_the_rules() {
        let f = fixture();
        let (task, created) = stored(&f, "Fix the login bug").await;

        f.classifier.handle(&created).await.unwrap();

        let task = f.tasks.get(task.id).await.unwrap().unwrap();
        assert_eq!(task.status, TaskStatus::Classified);
        assert_eq!(task.task_type, Some(TaskType::BugFix));
        assert_eq!(task.complexity, Some(TaskComplexity::Simple));
    }

    #[tokio::test]
    async fn when_the_owner_classified_first_should_leave_it() {
        let f = fixture();
        let (task, created) = stored(&f, "Fix the login bug").await;
        let owners = task
            .classify(TaskType::Documentation, TaskComplexity::Epic, time::now())
            .unwrap()
            .task;
        f.tasks.apply(&task, &owners, None).await.unwrap();

        f.classifier.handle(&created).await.unwrap();

        let task = f.tasks.get(task.id).await.unwrap().unwrap();
        assert_eq!(task.task_type, Some(TaskType::Documentation));
        assert_eq!(task.version, 2);
    }

    #[tokio::test]
    async fn when_the_task_is_missing_should_fail_so_the_message_is_retried() {
        let f = fixture();
        let (_, event) = fixtures::created("t");

        let err = f.classifier.handle(&event).await.unwrap_err();

        assert_eq!(err.retry(), Retry::Transient);
    }

    #[tokio::test]
    async fn when_a_task_finishes_should_record_one_training_example() {
        let f = fixture();
        let [_, _, completed] = Run {
            strategy: ExecutionStrategy::Iterative,
            usage: Usage {
                tokens_used: 900,
                cost_usd: 0.3,
            },
            ..Run::default()
        }
        .events();

        f.classifier.handle(&completed).await.unwrap();
        f.classifier.handle(&completed).await.unwrap();

        let examples = f.examples.all();
        assert_eq!(examples.len(), 1);
        assert_eq!(examples[0].outcome, TaskStatus::Completed);
        assert_eq!(examples[0].strategy, ExecutionStrategy::Iterative);
        assert_eq!(examples[0].tokens_used, 900);
        assert_eq!(examples[0].error_message, None);
    }

    #[tokio::test]
    async fn when_a_task_fails_should_record_why_in_its_training_example() {
        let f = fixture();
        let [_, _, failed] = Run {
            fails: true,
            ..Run::default()
        }
        .events();

        f.classifier.handle(&failed).await.unwrap();

        let examples = f.examples.all();
        assert_eq!(examples.len(), 1);
        assert_eq!(examples[0].outcome, TaskStatus::Failed);
        assert_eq!(examples[0].error_message.as_deref(), Some("it broke"));
    }
}
