//! Waiting until the system is quiet: the consumers' queues drained (nothing waiting,
//! nothing in flight), every outbox of the run empty, and the dashboard unchanged over a
//! second. Bounded: the audit runs after the timeout whatever the state.

use std::time::{Duration, Instant};

use crate::api::{Api, Stats};
use crate::aws::{outbox_empty, Aws, QUEUES};

/// How the wait ended.
#[derive(Debug, Clone)]
pub struct Quiet {
    pub reached: bool,
    pub waited: Duration,
    /// What was still busy when it gave up, or "quiet".
    pub last: String,
}

pub async fn wait(api: &Api, aws: &Aws, task_ids: &[String], timeout: Duration) -> Quiet {
    let started = Instant::now();
    let mut last_stats = None;
    loop {
        let busy = busy(api, aws, task_ids, &mut last_stats).await;
        let waited = started.elapsed();
        match busy {
            None => {
                return Quiet {
                    reached: true,
                    waited,
                    last: "quiet".into(),
                }
            }
            Some(what) if waited >= timeout => {
                return Quiet {
                    reached: false,
                    waited,
                    last: what,
                }
            }
            Some(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// What is still busy, or `None`.
async fn busy(
    api: &Api,
    aws: &Aws,
    task_ids: &[String],
    last_stats: &mut Option<Stats>,
) -> Option<String> {
    for queue in QUEUES {
        match aws.depth(queue).await {
            Ok((0, 0)) => {}
            Ok((waiting, in_flight)) => {
                return Some(format!("{queue}: {waiting} waiting, {in_flight} in flight"))
            }
            Err(err) => return Some(err.to_string()),
        }
    }
    match aws.items("TasksTable", "id", task_ids).await {
        Ok(items) => {
            let pending = items.values().filter(|item| !outbox_empty(item)).count();
            if pending > 0 {
                return Some(format!("{pending} outboxes not empty"));
            }
        }
        Err(err) => return Some(err.to_string()),
    }
    match api.stats().await {
        Ok(stats) => {
            // The counts, not the hour's series, which moves on every minute.
            let stats = Stats {
                events_per_minute: Vec::new(),
                ..stats
            };
            let settled = last_stats.as_ref() == Some(&stats);
            *last_stats = Some(stats);
            (!settled).then(|| "dashboard still changing".into())
        }
        Err(err) => Some(err.to_string()),
    }
}
