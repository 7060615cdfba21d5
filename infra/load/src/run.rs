//! One measured run against a service: dashboard and table counts before, the lifecycles
//! (with whatever runs beside them, such as a fault schedule), the wait for quiet, the
//! evidence gathered, and the audit.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};

use crate::api::{Api, ApiError, TaskView};
use crate::audit::{self, Evidence, Line};
use crate::aws::{Aws, AwsError, DEAD_LETTER_QUEUES};
use crate::capacity::Consumption;
use crate::cpu::{CpuSample, CpuShares};
use crate::drive::{Load, Progress};
use crate::latency::Summary;
use crate::lifecycle::Driver;
use crate::quiet::{self, Quiet};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the service: {0}")]
    Api(#[from] ApiError),
    #[error("the emulators: {0}")]
    Aws(#[from] AwsError),
}

pub struct Measured<T> {
    pub lifecycles: usize,
    pub requests: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Summary>,
    pub quiet: Quiet,
    pub audit: Vec<Line>,
    pub cpu: Option<CpuShares>,
    /// DynamoDB's units from the drive's start to quiet, when the calls were recorded.
    pub capacity: Option<Consumption>,
    /// What ran beside the lifecycles returned.
    pub beside: T,
}

pub struct Run<'a> {
    pub api: &'a Api,
    pub aws: &'a Aws,
    pub load: Load,
    pub driver: Driver,
    pub quiet_timeout: Duration,
    pub faults: bool,
    /// Processes whose CPU time the drive phase is measured in.
    pub cpu: Vec<(String, u32)>,
    /// The dev server's record of its DynamoDB calls (`DYNAMODB_CAPACITY_FILE`).
    pub capacity_file: Option<PathBuf>,
    pub prefix: String,
}

impl Run<'_> {
    pub async fn measure<T, F, Fut>(&self, beside: F) -> Result<Measured<T>, RunError>
    where
        F: FnOnce(Progress) -> Fut,
        Fut: Future<Output = T>,
    {
        let stats_before = self.api.stats().await?;
        let examples_before = self.aws.count("TrainingExamplesTable").await?;
        let builds_before = self.aws.count("BuildRequestsTable").await?;
        let archived_before = self.aws.count("EventArchiveTable").await?;

        let progress: Progress = Arc::new(AtomicU64::new(0));
        let cpu_before = CpuSample::take(&self.cpu);
        let from_ms = now_ms();
        let (drive, beside) = tokio::join!(
            self.load.drive(&self.driver, progress.clone()),
            beside(progress)
        );
        let cpu = cpu_before.map(|before| before.shares_until_now(drive.elapsed));
        let requests = self.api_calls();
        let latencies = self.driver.api.latencies().summaries();

        let known: Vec<(String, String)> = drive
            .outcomes
            .iter()
            .filter_map(|o| Some((o.task_id?.to_string(), o.user.clone())))
            .collect();
        let ids: Vec<String> = known.iter().map(|(id, _)| id.clone()).collect();
        eprintln!(
            "waiting for the system to be quiet (at most {:?})",
            self.quiet_timeout
        );
        let quiet = quiet::wait(self.api, self.aws, &ids, self.quiet_timeout).await;
        let window = (from_ms, now_ms());
        let capacity = self.capacity_file.as_ref().and_then(|path| {
            Consumption::read(path, &self.prefix, window, drive.outcomes.len())
                .map_err(|err| {
                    eprintln!(
                        "the DynamoDB calls in {} cannot be read: {err}",
                        path.display()
                    )
                })
                .ok()
        });

        let tasks = self.final_tasks(&drive.users, known).await?;
        let all_ids: Vec<String> = tasks.keys().cloned().collect();
        let task_items = self.aws.items("TasksTable", "id", &all_ids).await?;
        let examples = self
            .aws
            .items("TrainingExamplesTable", "task_id", &all_ids)
            .await?;
        let builds = self
            .aws
            .items("BuildRequestsTable", "task_id", &all_ids)
            .await?;
        let archived = self.aws.archived(&all_ids).await?;
        let mut dead_letters = Vec::new();
        for queue in DEAD_LETTER_QUEUES {
            let (waiting, in_flight) = self.aws.depth(queue).await?;
            dead_letters.push((self.aws.name(queue), waiting + in_flight));
        }
        let evidence = Evidence {
            stats_after: self.api.stats().await?,
            stats_before,
            examples_after: self.aws.count("TrainingExamplesTable").await?,
            examples_before,
            builds_after: self.aws.count("BuildRequestsTable").await?,
            builds_before,
            archived_after: self.aws.count("EventArchiveTable").await?,
            archived_before,
            archived,
            tasks,
            task_items,
            examples,
            builds,
            dead_letters,
            faults: self.faults,
            outcomes: drive.outcomes,
        };
        let mut lines = vec![audit::Line {
            check: "system quiet before the audit".into(),
            expected: format!("within {:?}", self.quiet_timeout),
            observed: format!("{} after {:.1} s", quiet.last, quiet.waited.as_secs_f64()),
            verdict: if quiet.reached {
                audit::Verdict::Pass
            } else {
                audit::Verdict::Fail
            },
        }];
        lines.extend(audit::audit(&evidence));
        Ok(Measured {
            lifecycles: evidence.outcomes.len(),
            requests,
            elapsed: drive.elapsed,
            latencies,
            quiet,
            audit: lines,
            cpu,
            capacity,
            beside,
        })
    }

    fn api_calls(&self) -> usize {
        self.driver.api.latencies().total()
    }

    /// Every task of the run's users: all they list and all the clients created, each
    /// read again by id.
    async fn final_tasks(
        &self,
        users: &[String],
        known: Vec<(String, String)>,
    ) -> Result<HashMap<String, TaskView>, RunError> {
        let mut owners: HashMap<String, String> = known.into_iter().collect();
        for user in users {
            for task in self.api.list_all(user).await? {
                owners.insert(task.id.to_string(), user.clone());
            }
        }
        let reads = stream::iter(owners)
            .map(|(id, user)| async move {
                let uuid = id.parse().unwrap_or_default();
                let mut tries = 0;
                loop {
                    match self.api.get(&user, uuid).await {
                        Ok(task) => return Ok((id, task)),
                        Err(err) if tries >= 4 => return Err(RunError::from(err)),
                        Err(_) => tries += 1,
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        reads.into_iter().collect()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
