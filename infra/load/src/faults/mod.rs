//! Fault runs: an environment of their own (emulators on free ports, the template's
//! resources, the dev server as a child process), fault-injecting proxies between the dev
//! server and SNS and DynamoDB, the fault schedule beside the lifecycles, then the same
//! audit as any run. Whatever it started is stopped at the end, however the run ended.

pub mod environment;
pub mod proxy;
pub mod schedule;
pub mod server;

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::sync::Mutex;

use environment::{free_port, Emulators, EnvironmentError};
use proxy::FaultProxy;
use schedule::{FaultPlan, Injected, Targets};
use server::{DevServer, ServerError};

use crate::api::Api;
use crate::aws::{Aws, AwsError, Endpoints};
use crate::latency::Latencies;
use crate::run::{Measured, RunError};
use crate::Settings;

#[derive(Debug, thiserror::Error)]
pub enum FaultRunError {
    #[error(transparent)]
    Environment(#[from] EnvironmentError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("a proxy: {0}")]
    Proxy(std::io::Error),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("the AWS configuration: {0}")]
    Config(#[from] shared::settings::ConfigError),
    #[error("interrupted")]
    Interrupted,
}

/// The dev server's settings that only fault runs change; everything else is as `up`
/// has it (the template's queues, retry back-off and sweeper settings).
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Share of messages each consumer fails transiently once (`CONSUMER_FAILURE_SHARE`).
    pub consumer_failure_share: f64,
}

pub struct FaultRun {
    pub emulators: Emulators,
    pub prefix: String,
    pub dev_server: PathBuf,
    pub log_dir: PathBuf,
    pub plan: FaultPlan,
    pub settings: ServerSettings,
}

/// The URL of loopback `port`.
pub fn local_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

impl FaultRun {
    /// Starts the environment, measures a run under the faults, and stops everything.
    pub async fn execute(
        &self,
        settings: &Settings,
    ) -> Result<Measured<Vec<Injected>>, FaultRunError> {
        self.emulators.start().await?;
        // Ctrl-C drops the run (the dev server, a child, is killed with it) and still
        // stops the emulators, which run in sessions of their own.
        let result = tokio::select! {
            result = self.with_emulators(settings) => result,
            _ = tokio::signal::ctrl_c() => Err(FaultRunError::Interrupted),
        };
        if let Err(err) = self.emulators.stop().await {
            eprintln!("stopping the emulators: {err}");
        }
        result
    }

    async fn with_emulators(
        &self,
        settings: &Settings,
    ) -> Result<Measured<Vec<Injected>>, FaultRunError> {
        let provisioned = self.emulators.provision(&self.prefix).await?;
        let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let sns = FaultProxy::start(loopback(self.emulators.localstack_port))
            .await
            .map_err(FaultRunError::Proxy)?;
        let dynamodb = FaultProxy::start(loopback(self.emulators.dynamodb_port))
            .await
            .map_err(FaultRunError::Proxy)?;
        let port = free_port()?;
        let api =
            Api::new(&local_url(port), Latencies::default()).map_err(FaultRunError::Client)?;
        let aws = Aws::connect(
            &self.prefix,
            &Endpoints {
                dynamodb: Some(local_url(self.emulators.dynamodb_port)),
                sqs: Some(local_url(self.emulators.localstack_port)),
            },
        )
        .await?;

        let s = &self.settings;
        let mut variables: Vec<(String, String)> = provisioned.env.into_iter().collect();
        variables.extend(
            [
                ("EVENT_SOURCES", provisioned.event_sources.to_string()),
                ("PORT", port.to_string()),
                ("AWS_ACCESS_KEY_ID", "test".into()),
                ("AWS_SECRET_ACCESS_KEY", "test".into()),
                ("AWS_REGION", "us-east-1".into()),
                ("AWS_EC2_METADATA_DISABLED", "true".into()),
                (
                    "AWS_ENDPOINT_URL_SQS",
                    local_url(self.emulators.localstack_port),
                ),
                // The webhook secret is read from this run's LocalStack, not from one that
                // the caller's environment names.
                (
                    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
                    local_url(self.emulators.localstack_port),
                ),
                ("AWS_ENDPOINT_URL_SNS", sns.url()),
                ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb.url()),
                (
                    "CONSUMER_FAILURE_SHARE",
                    s.consumer_failure_share.to_string(),
                ),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        let log_dir = self.log_dir.join(format!(
            "{}-{}",
            self.emulators.localstack_port, self.emulators.dynamodb_port
        ));
        let _ = std::fs::create_dir_all(&log_dir);
        let log = log_dir.join("dev-server.log");
        let capacity_file = log_dir.join("capacity.jsonl");
        let _ = std::fs::write(&capacity_file, "");
        variables.push((
            shared::adapters::capacity::CAPACITY_FILE.to_owned(),
            capacity_file.display().to_string(),
        ));
        let mut settings = settings.clone();
        settings.capacity_file = Some(capacity_file);
        eprintln!(
            "fault run: emulators on ports {} and {}, dev server on {port} (log {})",
            self.emulators.localstack_port,
            self.emulators.dynamodb_port,
            log.display()
        );
        let server = Mutex::new(DevServer::new(self.dev_server.clone(), variables, log));
        server.lock().await.start(&api).await?;
        let run = settings.run(&api, &aws, true);
        let total = run.load.tasks;
        let plan = self.plan;
        let measured = run
            .measure(|progress| {
                schedule::run(
                    plan,
                    Targets {
                        sns: &sns,
                        dynamodb: &dynamodb,
                        server: &server,
                        api: &api,
                    },
                    progress,
                    total,
                )
            })
            .await;
        server.lock().await.stop().await;
        Ok(measured?)
    }
}
