//! A function binary run as Lambda runs it: a clean environment of its template
//! variables, credentials and the runtime's own variables, and its CPU time read from /proc.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A function to run: its binary and the variables Lambda would give it.
#[derive(Clone)]
pub struct FunctionSpec {
    pub name: String,
    pub binary: PathBuf,
    pub env: BTreeMap<String, String>,
}

pub struct Running {
    pub child: Child,
}

impl Running {
    pub fn spawn(spec: &FunctionSpec, runtime_api: &str, log: &Path) -> std::io::Result<Running> {
        let log = File::options().create(true).append(true).open(log)?;
        let child = Command::new(&spec.binary)
            .env_clear()
            .envs(&spec.env)
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(Running { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time of every live thread of the process, in nanoseconds (`schedstat`).
    pub fn cpu_ns(&self) -> std::io::Result<u64> {
        let mut total = 0;
        for thread in std::fs::read_dir(format!("/proc/{}/task", self.pid()))? {
            let path = thread?.path().join("schedstat");
            // A thread that ended since the listing has no file any more.
            if let Ok(text) = std::fs::read_to_string(path) {
                total += text
                    .split_whitespace()
                    .next()
                    .and_then(|ns| ns.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        Ok(total)
    }

    /// User plus system CPU time of the process, ended threads included, from
    /// `/proc/<pid>/stat` (clock ticks of 10 ms).
    pub fn cpu_ticks(&self) -> std::io::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let after = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        match (ticks(11), ticks(12)) {
            // USER_HZ is 100 on every Linux ABI.
            (Some(user), Some(system)) => Ok(Duration::from_millis((user + system) * 10)),
            _ => Err(std::io::Error::other(format!("unreadable stat: {stat}"))),
        }
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Never leave a function behind, however the run ends.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The variables of the Lambda execution environment besides the function's own.
pub fn lambda_env(
    function_name: &str,
    aws: &BTreeMap<String, String>,
    xray_daemon: &str,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for (name, value) in [
        ("AWS_LAMBDA_FUNCTION_NAME", function_name),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("AWS_XRAY_DAEMON_ADDRESS", xray_daemon),
        ("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR"),
        ("_HANDLER", "bootstrap"),
        ("LANG", "en_US.UTF-8"),
        ("TZ", ":UTC"),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin"),
    ] {
        env.insert(name.to_owned(), value.to_owned());
    }
    env.extend(aws.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}
