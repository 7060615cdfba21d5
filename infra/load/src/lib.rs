//! The load tool: drives full task lifecycles and races of concurrent starts against the
//! service over HTTP, waits until the system is quiet, and audits the outcome against the
//! dashboard, the consumers' tables, the outboxes and the dead-letter queues. With faults,
//! it runs its own environment and injects failures between the dev server and the
//! emulators while it drives.

pub mod api;
pub mod audit;
pub mod aws;
pub mod capacity;
pub mod cpu;
pub mod drive;
pub mod faults;
pub mod latency;
pub mod lifecycle;
pub mod plan;
pub mod quiet;
pub mod report;
pub mod run;

use std::path::PathBuf;
use std::time::Duration;

use api::Api;
use aws::Aws;
use drive::Load;
use lifecycle::Driver;
use plan::Shares;
use run::Run;

/// What a run does, whatever it runs against.
#[derive(Debug, Clone)]
pub struct Settings {
    pub run_id: String,
    pub tasks: u64,
    pub clients: usize,
    pub shares: Shares,
    pub race_width: usize,
    pub step_timeout: Duration,
    pub quiet_timeout: Duration,
    /// Processes whose CPU use is measured: name, pid.
    pub cpu: Vec<(String, u32)>,
    /// The dev server's `DYNAMODB_CAPACITY_FILE`, whose calls during the run are added up.
    pub capacity_file: Option<PathBuf>,
    /// The prefix of the run's tables, left out of their names in the report.
    pub prefix: String,
}

impl Settings {
    pub fn run<'a>(&self, api: &'a Api, aws: &'a Aws, faults: bool) -> Run<'a> {
        Run {
            api,
            aws,
            load: Load {
                run: self.run_id.clone(),
                tasks: self.tasks,
                clients: self.clients,
                shares: self.shares,
            },
            driver: Driver {
                api: api.clone(),
                step_timeout: self.step_timeout,
                race_width: self.race_width,
            },
            quiet_timeout: self.quiet_timeout,
            faults,
            cpu: self.cpu.clone(),
            capacity_file: self.capacity_file.clone(),
            prefix: self.prefix.clone(),
        }
    }
}
