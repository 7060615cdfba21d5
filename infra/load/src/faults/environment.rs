//! An environment of the fault run's own: the emulators on free ports started and stopped
//! through `infra/local.sh`, and the template's resources provisioned under a prefix.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;

use serde::Deserialize;
use serde_json::Value;
use tokio::process::Command;

/// A step of setting up or tearing down that failed.
#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    #[error("{0}: cannot run infra/local.sh: {1}")]
    Spawn(&'static str, std::io::Error),
    #[error("infra/local.sh {0} failed ({1})")]
    Failed(&'static str, std::process::ExitStatus),
    #[error("provisioning printed no usable JSON: {0}")]
    Provisioned(serde_json::Error),
    #[error("no free port: {0}")]
    NoPort(std::io::Error),
}

/// A free loopback port, as the kernel hands one out.
pub fn free_port() -> Result<u16, EnvironmentError> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(EnvironmentError::NoPort)
}

/// What provisioning printed: the functions' variables and the consumers' queues.
#[derive(Debug, Deserialize)]
pub struct Provisioned {
    pub env: BTreeMap<String, String>,
    pub event_sources: Value,
}

pub struct Emulators {
    local_sh: PathBuf,
    pub localstack_port: u16,
    pub dynamodb_port: u16,
    /// The consumer queues' visibility timeout, in seconds, when not the template's.
    queue_visibility_secs: Option<u64>,
}

impl Emulators {
    pub fn new(local_sh: PathBuf) -> Result<Self, EnvironmentError> {
        Ok(Emulators {
            local_sh,
            localstack_port: free_port()?,
            dynamodb_port: free_port()?,
            queue_visibility_secs: None,
        })
    }

    /// The same, provisioning queues with this visibility timeout when one is given.
    pub fn with_queue_visibility(self, secs: Option<u64>) -> Self {
        Emulators {
            queue_visibility_secs: secs,
            ..self
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("bash");
        command
            .arg(&self.local_sh)
            .args(args)
            .env("LOCALSTACK_PORT", self.localstack_port.to_string())
            .env("DYNAMODB_PORT", self.dynamodb_port.to_string())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    async fn run(&self, what: &'static str, args: &[&str]) -> Result<Vec<u8>, EnvironmentError> {
        let output = self
            .command(args)
            .stderr(Stdio::inherit())
            .output()
            .await
            .map_err(|err| EnvironmentError::Spawn(what, err))?;
        if !output.status.success() {
            return Err(EnvironmentError::Failed(what, output.status));
        }
        Ok(output.stdout)
    }

    pub async fn start(&self) -> Result<(), EnvironmentError> {
        self.run("start", &["start"]).await.map(drop)
    }

    pub async fn provision(&self, prefix: &str) -> Result<Provisioned, EnvironmentError> {
        let visibility = self.queue_visibility_secs.map(|secs| secs.to_string());
        let mut args = vec!["provision", prefix];
        if let Some(secs) = &visibility {
            args.extend(["--queue-visibility-secs", secs.as_str()]);
        }
        let json = self.run("provision", &args).await?;
        serde_json::from_slice(&json).map_err(EnvironmentError::Provisioned)
    }

    pub async fn stop(&self) -> Result<(), EnvironmentError> {
        self.run("stop", &["stop"]).await.map(drop)
    }
}
