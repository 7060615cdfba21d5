//! One function process behind its own stub runtime API: its start-up time, then one
//! invocation at a time with its wall time and the CPU time the process spent on it.

use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::time::timeout;

use crate::process::{FunctionSpec, Running};
use crate::runtime_api::{Invocation, RuntimeApi, Seen};

/// How long a function may take to start or to answer before the run gives up on it.
const PATIENCE: Duration = Duration::from_secs(60);

pub struct Session {
    api: RuntimeApi,
    process: Running,
    /// Spawn to the first `GET .../invocation/next`.
    pub init: Duration,
    invocations: u64,
}

/// One invocation's figures and answer.
pub struct Outcome {
    /// From handing out the event to the function's answer.
    pub wall: Duration,
    /// CPU time of the process from handing out the event until it asked for the next one.
    pub cpu_ns: u64,
    pub body: Bytes,
    /// The function answered with `.../response`, not `.../error`.
    pub ok: bool,
}

#[derive(Debug)]
pub struct SessionError(pub String);

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SessionError {}

fn fail(what: impl Into<String>) -> SessionError {
    SessionError(what.into())
}

impl Session {
    /// Spawns the function and waits until it asks for its first event.
    pub async fn start(spec: &FunctionSpec, log: &Path) -> Result<Session, SessionError> {
        let api = RuntimeApi::start(&spec.name)
            .await
            .map_err(|err| fail(format!("stub runtime API: {err}")))?;
        let spawned = Instant::now();
        let process = Running::spawn(spec, &api.address.to_string(), log)
            .map_err(|err| fail(format!("{}: {err}", spec.binary.display())))?;
        let mut session = Session {
            api,
            process,
            init: Duration::ZERO,
            invocations: 0,
        };
        let first = session.wait_for_next().await?;
        session.init = first.duration_since(spawned);
        Ok(session)
    }

    async fn wait_for_next(&mut self) -> Result<Instant, SessionError> {
        match timeout(PATIENCE, self.api.seen.recv()).await {
            Ok(Some(Seen::Next(at))) => Ok(at),
            Ok(Some(Seen::InitError(body))) => Err(fail(format!(
                "the function failed to start: {}",
                String::from_utf8_lossy(&body)
            ))),
            Ok(Some(Seen::Answer { request_id, .. })) => {
                Err(fail(format!("unexpected answer to {request_id}")))
            }
            Ok(None) => Err(fail("the stub runtime API stopped")),
            Err(_) => Err(fail(format!(
                "no request for an event within {PATIENCE:?} (exited: {:?})",
                self.process.child.try_wait()
            ))),
        }
    }

    /// Hands `event` to the function and waits for its answer and its next request.
    pub async fn invoke(
        &mut self,
        event: &serde_json::Value,
        sampled: bool,
    ) -> Result<Outcome, SessionError> {
        self.invocations += 1;
        let request_id = format!("{:08}-{}", self.invocations, uuid::Uuid::new_v4());
        let cpu_before = self.cpu_ns()?;
        let started = Instant::now();
        self.api
            .invoke(Invocation {
                request_id: request_id.clone(),
                body: event.to_string().into_bytes(),
                sampled,
            })
            .await;
        let (at, body, ok) = match timeout(PATIENCE, self.api.seen.recv()).await {
            Ok(Some(Seen::Answer {
                request_id: answered,
                at,
                body,
                ok,
            })) if answered == request_id => (at, body, ok),
            Ok(other) => return Err(fail(format!("expected the answer, saw {other:?}"))),
            Err(_) => return Err(fail(format!("no answer within {PATIENCE:?}"))),
        };
        self.wait_for_next().await?;
        let cpu_after = self.cpu_ns()?;
        Ok(Outcome {
            wall: at.duration_since(started),
            cpu_ns: cpu_after.saturating_sub(cpu_before),
            body,
            ok,
        })
    }

    fn cpu_ns(&self) -> Result<u64, SessionError> {
        self.process
            .cpu_ns()
            .map_err(|err| fail(format!("reading the function's CPU time: {err}")))
    }

    /// CPU time of the whole process so far, ended threads included (10 ms resolution).
    pub fn cpu_total(&self) -> Result<Duration, SessionError> {
        self.process
            .cpu_ticks()
            .map_err(|err| fail(format!("reading the function's CPU time: {err}")))
    }

    pub fn stop(self) {
        self.process.stop();
    }
}
