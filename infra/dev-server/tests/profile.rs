//! The functions take their configuration as any AWS program does: here the dev server is
//! started with a named profile alone (region, keys and the emulators' endpoints in the
//! profile files; no key, region or endpoint variable), and still reaches DynamoDB, SNS
//! and SQS: a task is created, announced and classified. Needs the emulators; run it with
//! `infra/local.sh test`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `infra/provision.py ACTION --prefix PREFIX`, with the emulators' variables of this run.
fn provision(action: &str, prefix: &str) -> String {
    let python = std::env::var("PROVISION_PYTHON")
        .expect("this test needs the emulators: run it with `infra/local.sh test`");
    let output = Command::new(python)
        .arg(repository().join("infra/provision.py"))
        .args([action, "--prefix", prefix])
        .output()
        .expect("provision.py runs");
    assert!(
        output.status.success(),
        "provision.py {action} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

fn endpoint(service: &str) -> String {
    let name = format!("AWS_ENDPOINT_URL_{service}");
    std::env::var(&name).unwrap_or_else(|_| panic!("{name} is not set: run `infra/local.sh test`"))
}

/// A dev server that is killed when dropped, with the resources it was given.
struct Server {
    child: Child,
    prefix: String,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        provision("down", &self.prefix);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port on loopback")
}

fn start(profile_dir: &Path) -> Server {
    let prefix = format!(
        "profile-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let provisioned: Value = serde_json::from_str(&provision("up", &prefix)).expect("JSON");
    let config = profile_dir.join("config");
    let credentials = profile_dir.join("credentials");
    std::fs::write(
        &config,
        format!(
            "[profile emulators]\nregion = us-east-1\nservices = emulators\n\n\
             [services emulators]\n\
             dynamodb =\n  endpoint_url = {}\n\
             sns =\n  endpoint_url = {}\n\
             sqs =\n  endpoint_url = {}\n\
             secrets-manager =\n  endpoint_url = {}\n",
            endpoint("DYNAMODB"),
            endpoint("SNS"),
            endpoint("SQS"),
            endpoint("SECRETS_MANAGER"),
        ),
    )
    .expect("write the config file");
    std::fs::write(
        &credentials,
        "[emulators]\naws_access_key_id = test\naws_secret_access_key = test\n",
    )
    .expect("write the credentials file");

    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_dev-server"));
    // Nothing of this process's environment: no key, region or endpoint variable.
    command.env_clear();
    for (name, value) in provisioned["env"]
        .as_object()
        .expect("the functions' variables")
    {
        command.env(name, value.as_str().unwrap_or_default());
    }
    command
        .env("EVENT_SOURCES", provisioned["event_sources"].to_string())
        .env("PORT", port.to_string())
        .env("HOME", profile_dir)
        .env("AWS_PROFILE", "emulators")
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        // Not the instance metadata service: this is no EC2 instance.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let child = command.spawn().expect("the dev server starts");
    Server {
        child,
        prefix,
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn wait_for<T, F, Fut>(what: &str, server: &mut Server, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("the dev server stopped ({status}) before {what}");
        }
        assert!(Instant::now() < deadline, "no {what} within 60 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn with_only_a_named_profile_the_functions_should_reach_the_emulators() {
    shared::adapters::tls::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("profile-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory for the profile files");
    let mut server = start(&dir);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    let base = server.base.clone();

    wait_for("the server to answer", &mut server, || async {
        let response = http.get(format!("{base}/openapi.json")).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    // DynamoDB (the task, its outbox) and SNS (the event): 201 only once both took it.
    let created: Value = http
        .post(format!("{base}/tasks"))
        .header("X-User-Id", "alice")
        .json(&serde_json::json!({"title": "Fix the login bug", "description": "It crashes"}))
        .send()
        .await
        .expect("POST /tasks")
        .error_for_status()
        .expect("201")
        .json()
        .await
        .expect("a task");
    let id = created["id"].as_str().expect("an id").to_owned();
    // SQS: the classifier read TaskCreated off its queue and classified the task.
    let task = wait_for("the classification", &mut server, || async {
        let task: Value = http
            .get(format!("{base}/tasks/{id}"))
            .header("X-User-Id", "alice")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (task["status"] == "Classified").then_some(task)
    })
    .await;
    assert_eq!(task["task_type"], "BugFix");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
