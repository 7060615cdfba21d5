//! The faults of a run, one after another, each set off when a share of the lifecycles
//! has finished: SNS refuses connections, DynamoDB answers late, the dev server is killed
//! and restarted. (The consumers' transient failures run all along, inside the server.)

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::proxy::{FaultProxy, Mode};
use super::server::DevServer;
use crate::api::Api;
use crate::drive::Progress;

/// How long each fault lasts.
#[derive(Debug, Clone, Copy)]
pub struct FaultPlan {
    pub sns_refused: Duration,
    pub dynamodb_delay: Duration,
    pub dynamodb_window: Duration,
    pub restart_after: Duration,
}

/// One fault as it happened.
#[derive(Debug, Clone)]
pub struct Injected {
    pub fault: String,
    /// From the start of the drive.
    pub at: Duration,
    pub lasted: Duration,
    /// Empty when it went as planned.
    pub problem: String,
}

pub struct Targets<'a> {
    pub sns: &'a FaultProxy,
    pub dynamodb: &'a FaultProxy,
    pub server: &'a Mutex<DevServer>,
    pub api: &'a Api,
}

async fn reached(progress: &Progress, count: u64) {
    while progress.load(Ordering::Relaxed) < count {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn run(
    plan: FaultPlan,
    targets: Targets<'_>,
    progress: Progress,
    total: u64,
) -> Vec<Injected> {
    let started = Instant::now();
    let mut injected = Vec::new();
    let at = |share: f64| ((total as f64) * share).ceil() as u64;

    reached(&progress, at(0.10)).await;
    let begun = Instant::now();
    targets.sns.set(Mode::Refuse);
    tokio::time::sleep(plan.sns_refused).await;
    targets.sns.set(Mode::Pass);
    injected.push(Injected {
        fault: "SNS refuses connections".into(),
        at: begun - started,
        lasted: begun.elapsed(),
        problem: String::new(),
    });

    reached(&progress, at(0.35)).await;
    let begun = Instant::now();
    targets.dynamodb.set(Mode::Delay(plan.dynamodb_delay));
    tokio::time::sleep(plan.dynamodb_window).await;
    targets.dynamodb.set(Mode::Pass);
    injected.push(Injected {
        fault: format!(
            "DynamoDB answers {:.1} s late (attempt timeout 5 s)",
            plan.dynamodb_delay.as_secs_f64()
        ),
        at: begun - started,
        lasted: begun.elapsed(),
        problem: String::new(),
    });

    reached(&progress, at(0.60)).await;
    let begun = Instant::now();
    let mut server = targets.server.lock().await;
    server.kill().await;
    tokio::time::sleep(plan.restart_after).await;
    let problem = match server.start(targets.api).await {
        Ok(()) => String::new(),
        Err(err) => err.to_string(),
    };
    injected.push(Injected {
        fault: "dev server killed (SIGKILL) and restarted".into(),
        at: begun - started,
        lasted: begun.elapsed(),
        problem,
    });
    injected
}
