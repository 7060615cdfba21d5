//! Runs the lifecycles: `clients` workers, each a user of its own, take the next index
//! until `tasks` are done, with a progress bar on the terminal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;

use crate::lifecycle::{Driver, Outcome};
use crate::plan::{Plan, Shares};

/// What the drive phase produced.
pub struct Drive {
    pub outcomes: Vec<Outcome>,
    pub elapsed: Duration,
    /// The users the lifecycles ran as, one per client.
    pub users: Vec<String>,
}

/// Finished lifecycles so far; the fault schedule watches it.
pub type Progress = Arc<AtomicU64>;

pub struct Load {
    pub run: String,
    pub tasks: u64,
    pub clients: usize,
    pub shares: Shares,
}

impl Load {
    pub fn users(&self) -> Vec<String> {
        (0..self.clients.max(1))
            .map(|client| format!("load-{}-{client}", self.run))
            .collect()
    }

    pub async fn drive(&self, driver: &Driver, progress: Progress) -> Drive {
        let bar = ProgressBar::new(self.tasks);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} lifecycles ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        let next = Arc::new(AtomicU64::new(0));
        let outcomes = Arc::new(Mutex::new(Vec::with_capacity(self.tasks as usize)));
        let started = Instant::now();
        let users = self.users();
        let mut workers = JoinSet::new();
        for user in users.clone() {
            let (next, outcomes, progress) = (next.clone(), outcomes.clone(), progress.clone());
            let (driver, bar, run, tasks, shares) = (
                driver.clone(),
                bar.clone(),
                self.run.clone(),
                self.tasks,
                self.shares,
            );
            workers.spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= tasks {
                        break;
                    }
                    let outcome = driver
                        .run(user.clone(), Plan::new(&run, index, shares))
                        .await;
                    if let Some(err) = &outcome.error {
                        let message = format!("lifecycle {index}: {err}");
                        if bar.is_hidden() {
                            eprintln!("{message}");
                        } else {
                            bar.println(message);
                        }
                    }
                    if let Ok(mut all) = outcomes.lock() {
                        all.push(outcome);
                    }
                    progress.fetch_add(1, Ordering::Relaxed);
                    bar.inc(1);
                }
            });
        }
        while workers.join_next().await.is_some() {}
        bar.finish();
        let elapsed = started.elapsed();
        let mut outcomes = std::mem::take(&mut *outcomes.lock().unwrap_or_else(|p| p.into_inner()));
        outcomes.sort_by_key(|o| o.plan.index);
        Drive {
            outcomes,
            elapsed,
            users,
        }
    }
}
