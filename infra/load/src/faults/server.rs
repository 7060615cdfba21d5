//! The dev server as a child process of the fault run: started with the variables `up`
//! would give it (some endpoints pointing at the proxies), killed with SIGKILL, restarted.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::api::Api;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot start the dev server ({0}): {1}")]
    Spawn(String, std::io::Error),
    #[error("the dev server did not answer within {0:?}; its log: {1}")]
    NotReady(Duration, String),
}

pub struct DevServer {
    binary: PathBuf,
    variables: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl DevServer {
    pub fn new(binary: PathBuf, variables: Vec<(String, String)>, log: PathBuf) -> Self {
        DevServer {
            binary,
            variables,
            log,
            child: None,
        }
    }

    pub fn log(&self) -> &PathBuf {
        &self.log
    }

    /// Starts the server and waits until it answers.
    pub async fn start(&mut self, api: &Api) -> Result<(), ServerError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|err| ServerError::Spawn(self.log.display().to_string(), err))?;
        let log_err = log
            .try_clone()
            .map_err(|err| ServerError::Spawn(self.log.display().to_string(), err))?;
        let child = Command::new(&self.binary)
            .envs(self.variables.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| ServerError::Spawn(self.binary.display().to_string(), err))?;
        self.child = Some(child);
        let timeout = Duration::from_secs(60);
        let started = Instant::now();
        while started.elapsed() < timeout {
            if api.stats().await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ServerError::NotReady(
            timeout,
            self.log.display().to_string(),
        ))
    }

    /// SIGKILL: no shutdown of any kind.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// SIGINT (the server's Ctrl-C), then SIGKILL if it is still there after 10 s.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            let _ = Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}
