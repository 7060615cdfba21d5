//! Harness of the integration tests: every test provisions its own uniquely named copy of
//! the template's resources on the emulators and talks to them through the real adapters.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::Method;
use cicd_monitor::{BuildNotifier, CicdSettings, WebhookNotifier};
use dashboard::DashboardSettings;
use dev_server::event_source::EventSourceMapping;
use event_archive::ArchiveSettings;
use ml_classifier::ClassifierSettings;
use operations::LocalMeasures;
use outbox_sweeper::{Sweeper, SweeperConfig, SweeperSettings};
use serde::Deserialize;
use serde_json::Value;
use shared::adapters::clients::SdkConfig;
use shared::adapters::{clients, DynamoTaskStore, SnsPublisher};
use shared::consumer::{RetryBackoff, ToolkitSettings};
use shared::events::EventEnvelope;
use shared::retry::Backoff;
use shared::service::TaskService;
use shared::settings::{Settings, Variables};
use task_api::{ApiSettings, Deps, OpsDeps, OpsSettings};
use tower::ServiceExt;

#[derive(Debug, Deserialize)]
struct Provisioned {
    /// The functions' variables, resolved to this test's resources.
    env: HashMap<String, String>,
    resources: HashMap<String, HashMap<String, String>>,
}

/// One test's own resources on the emulators.
pub struct TestEnv {
    pub prefix: String,
    pub aws: SdkConfig,
    pub table: String,
    pub topic_arn: String,
    resources: HashMap<String, HashMap<String, String>>,
    variables: HashMap<String, String>,
    pub sqs: aws_sdk_sqs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// What this test's pollers saw, for the operations view (CloudWatch's part in AWS).
    pub measures: Arc<LocalMeasures>,
}

fn repo_root() -> PathBuf {
    // Cargo sets the variable when it runs tests; the compile-time value may name another
    // checkout that shares the target directory.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    PathBuf::from(manifest_dir)
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// Runs one of the repository's Python tools with the emulators' virtualenv.
fn run_python(script: &str, args: &[&str], prefix: &str) -> String {
    let python = std::env::var("PROVISION_PYTHON").unwrap_or_else(|_| {
        panic!("integration tests need the emulators: run them with `infra/local.sh test`")
    });
    let output = Command::new(python)
        .arg(repo_root().join(script))
        .args(args)
        .args(["--prefix", prefix])
        .output()
        .unwrap_or_else(|err| panic!("{script} does not run: {err}"));
    assert!(
        output.status.success(),
        "{script} {args:?} --prefix {prefix} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the tool prints UTF-8")
}

/// What `provision.py functions` says of each function in template.yaml (offline).
pub fn template_functions() -> String {
    template_functions_with(&[])
}

/// The same with template parameters set (`NAME=VALUE` each).
pub fn template_functions_with(parameters: &[&str]) -> String {
    let mut args = vec!["functions"];
    for parameter in parameters {
        args.extend(["--param", parameter]);
    }
    run_python("infra/provision.py", &args, "template-check")
}

/// template.yaml as JSON, short tags in their long form, nothing resolved (offline).
pub fn template_json() -> Value {
    let json = run_python("infra/provision.py", &["template"], "template-check");
    serde_json::from_str(&json).unwrap_or_else(|err| panic!("{err}: {json}"))
}

/// template.yaml after the SAM transform, by the pinned SAM CLI's translator (offline):
/// the roles, managed policies and event source mappings CloudFormation will create.
pub fn transformed_template() -> Value {
    let python = std::env::var("SAM_CLI_PYTHON").unwrap_or_else(|_| {
        panic!("the template's IAM checks need the SAM CLI: run them with `infra/local.sh test`")
    });
    let output = Command::new(&python)
        .arg(repo_root().join("infra/sam-translate.py"))
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("SAM_CLI_TELEMETRY", "0")
        .output()
        .unwrap_or_else(|err| panic!("{python} does not run: {err}"));
    assert!(
        output.status.success(),
        "infra/sam-translate.py failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the translator prints JSON")
}

/// The repository's top folder.
pub fn repository() -> PathBuf {
    repo_root()
}

fn provision(action: &str, prefix: &str) -> String {
    run_python("infra/provision.py", &[action], prefix)
}

impl TestEnv {
    /// Provisions the template's resources under a prefix unique to this test run.
    pub async fn new(test: &str) -> TestEnv {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("it-{test}-{}", &unique[..8]);
        let json = provision("up", &prefix);
        let provisioned: Provisioned =
            serde_json::from_str(&json).unwrap_or_else(|err| panic!("{err}: {json}"));
        let aws = clients::load_config()
            .await
            .unwrap_or_else(|err| panic!("{err}: run the tests with `infra/local.sh test`"));
        let resources = provisioned.resources;
        let attribute = |id: &str, key: &str| resources[id][key].clone();
        TestEnv {
            table: attribute("TasksTable", "name"),
            topic_arn: attribute("EventsTopic", "arn"),
            sqs: aws_sdk_sqs::Client::new(&aws),
            dynamodb: aws_sdk_dynamodb::Client::new(&aws),
            prefix,
            aws,
            resources,
            variables: provisioned.env,
            measures: Arc::new(LocalMeasures::new(Duration::from_secs(200))),
        }
    }

    /// Deletes what `new` created.
    pub async fn teardown(self) {
        provision("down", &self.prefix);
    }

    pub fn queue_url(&self, consumer: &str) -> String {
        self.resources[&format!("{consumer}Queue")]["url"].clone()
    }

    /// The ARN of a consumer's queue, as provisioning named it.
    pub fn queue_arn(&self, consumer: &str) -> String {
        self.resources[&format!("{consumer}Queue")]["arn"].clone()
    }

    pub fn dlq_url(&self, consumer: &str) -> String {
        self.resources[&format!("{consumer}DeadLetterQueue")]["url"].clone()
    }

    pub fn store(&self) -> Arc<DynamoTaskStore> {
        Arc::new(DynamoTaskStore::new(
            clients::dynamodb(&self.aws),
            &self.table,
        ))
    }

    /// A publisher to this test's topic, retrying quickly.
    pub fn publisher(&self) -> Arc<SnsPublisher> {
        self.publisher_to(clients::sns(&self.aws, &fast()), &self.topic_arn)
    }

    pub fn publisher_to(&self, client: aws_sdk_sns::Client, topic_arn: &str) -> Arc<SnsPublisher> {
        Arc::new(SnsPublisher::new(client, topic_arn, fast()))
    }

    /// The functions' variables for this test's resources, as Lambda would set them.
    pub fn variables(&self) -> Variables {
        Variables::new(self.variables.clone())
    }

    /// This test's variables with some set or replaced.
    pub fn variables_with<'a>(
        &self,
        values: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Variables {
        let mut variables = self.variables.clone();
        variables.extend(
            values
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        Variables::new(variables)
    }

    /// What `S` reads from this test's variables.
    pub fn settings<S: Settings>(&self) -> S {
        S::from_variables(&self.variables()).expect("the template's variables configure it")
    }

    /// The task API's settings for this test's resources, retrying quickly.
    pub fn api_settings(&self) -> ApiSettings {
        ApiSettings {
            backoff: fast(),
            ..self.settings()
        }
    }

    /// The task API's dependencies over this test's resources.
    pub fn deps(&self) -> Deps {
        self.api_settings().build(&self.aws)
    }

    /// The operations routes' dependencies over this test's resources.
    pub fn ops_deps(&self) -> OpsDeps {
        self.settings::<OpsSettings>()
            .build(&self.aws, self.measures.clone())
    }

    /// The same, publishing through `publisher` instead.
    pub fn deps_with(&self, publisher: Arc<SnsPublisher>) -> Deps {
        let store = self.store();
        Deps {
            tasks: TaskService::new(store.clone(), store, publisher),
            ..self.deps()
        }
    }

    /// Physical name of one of this test's resources, by logical id.
    pub fn name(&self, logical_id: &str) -> String {
        self.resources[logical_id]["name"].clone()
    }

    /// The sweeper over this test's resources, taking on every outbox at once.
    pub fn sweeper(&self) -> Sweeper {
        SweeperSettings {
            config: SweeperConfig {
                min_age: Duration::ZERO,
                max_tasks: 100,
            },
            backoff: fast(),
            ..self.settings()
        }
        .build(&self.aws)
    }

    /// Receives from a queue until `expected` messages arrived, then waits `quiet` more to
    /// make sure nothing else comes; returns every event received, in arrival order.
    pub async fn receive(
        &self,
        queue_url: &str,
        expected: usize,
        quiet: Duration,
    ) -> Vec<EventEnvelope> {
        let mut events = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while events.len() < expected && Instant::now() < deadline {
            events.extend(self.receive_once(queue_url, 1).await);
        }
        let quiet_until = Instant::now() + quiet;
        while Instant::now() < quiet_until {
            events.extend(self.receive_once(queue_url, 1).await);
        }
        events
    }

    async fn receive_once(&self, queue_url: &str, wait_secs: i32) -> Vec<EventEnvelope> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_secs)
            .send()
            .await
            .expect("receive from the emulator");
        output
            .messages()
            .iter()
            .map(|message| {
                let body = message.body().unwrap_or_default();
                EventEnvelope::from_json(body)
                    .unwrap_or_else(|err| panic!("queue holds a non-event {body}: {err}"))
            })
            .collect()
    }

    /// Raw attributes of a task item, outbox included.
    pub async fn item(&self, id: &str) -> HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
        self.dynamodb
            .get_item()
            .table_name(&self.table)
            .key(
                "id",
                aws_sdk_dynamodb::types::AttributeValue::S(id.to_owned()),
            )
            .consistent_read(true)
            .send()
            .await
            .expect("get item")
            .item
            .unwrap_or_default()
    }

    /// Number of items in this test's table.
    pub async fn item_count(&self) -> usize {
        let output = self
            .dynamodb
            .scan()
            .table_name(&self.table)
            .send()
            .await
            .expect("scan");
        output.items().len()
    }
}

/// The three consumers polling this test's queues; stopped when dropped.
pub struct RunningConsumers {
    pollers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for RunningConsumers {
    fn drop(&mut self) {
        for poller in &self.pollers {
            poller.abort();
        }
    }
}

impl TestEnv {
    /// Starts the four consumers over this test's resources, as the local event source
    /// mapping runs them; failed messages come back after `retry_base` × 2^(receives − 1).
    pub async fn start_consumers(
        &self,
        webhook: Option<&str>,
        retry_base: Duration,
    ) -> RunningConsumers {
        let toolkit = |settings: ToolkitSettings| ToolkitSettings {
            backoff: RetryBackoff {
                base: retry_base,
                max: Duration::from_secs(60),
            },
            ..settings
        };
        let classifier: ClassifierSettings = self.settings();
        let dashboard: DashboardSettings = self.settings();
        let cicd: CicdSettings = self.settings();
        let webhook = webhook.map(|url| {
            Arc::new(
                WebhookNotifier::new(url, Duration::from_secs(2), fast()).expect("webhook URL"),
            ) as Arc<dyn BuildNotifier>
        });
        let consumers = [
            (
                "MlClassifier",
                ClassifierSettings {
                    toolkit: toolkit(classifier.toolkit.clone()),
                    ..classifier
                }
                .build(&self.aws),
            ),
            (
                "Dashboard",
                DashboardSettings {
                    toolkit: toolkit(dashboard.toolkit.clone()),
                    ..dashboard
                }
                .build(&self.aws),
            ),
            (
                "CicdMonitor",
                CicdSettings {
                    toolkit: toolkit(cicd.toolkit.clone()),
                    webhook,
                    ..cicd
                }
                .build(&self.aws)
                .await
                .expect("the cicd-monitor starts"),
            ),
            (
                "EventArchive",
                ArchiveSettings {
                    backoff: RetryBackoff {
                        base: retry_base,
                        max: Duration::from_secs(60),
                    },
                    ..self.settings::<ArchiveSettings>()
                }
                .build(&self.aws),
            ),
        ];
        let mut pollers = Vec::new();
        for (queue, consumer) in consumers {
            let mapping = EventSourceMapping::new(&self.aws, &self.queue_url(queue), 10, consumer)
                .await
                .expect("event source mapping")
                .measured(self.measures.clone());
            pollers.push(tokio::spawn(mapping.run()));
        }
        RunningConsumers { pollers }
    }

    /// Messages waiting or in flight in a queue.
    pub async fn queue_depth(&self, queue_url: &str) -> usize {
        let output = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(
                aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            )
            .send()
            .await
            .expect("queue attributes");
        output
            .attributes()
            .map(|attributes| {
                attributes
                    .values()
                    .filter_map(|v| v.parse::<usize>().ok())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Runs the `ops` command with `args` against this test's resources and returns what
    /// it prints (its JSON lines); a failed run fails the test.
    pub async fn ops_tool(&self, args: &[&str]) -> String {
        use clap::Parser;
        let argv = ["ops"]
            .iter()
            .chain(args)
            .copied()
            .chain(["--prefix", &self.prefix]);
        let cli =
            ops::Cli::try_parse_from(argv).unwrap_or_else(|err| panic!("ops {args:?}: {err}"));
        let mut out = Vec::new();
        if let Err(err) = ops::run(cli, &mut out).await {
            panic!("ops {args:?} --prefix {} failed: {err}", self.prefix);
        }
        String::from_utf8(out).expect("the tool prints UTF-8")
    }
}

/// Polls `check` every 200 ms until it gives `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn fast() -> Backoff {
    Backoff {
        retries: 3,
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
    }
}

/// Sends one request through the task API's handler, as Lambda or the local server does.
pub async fn call(
    deps: &Deps,
    user: Option<&str>,
    method: Method,
    path: &str,
    body: &str,
) -> (u16, Value) {
    call_with(deps, user, method, path, body, &[]).await
}

/// The same, with more request headers (`traceparent`, say).
pub async fn call_with(
    deps: &Deps,
    user: Option<&str>,
    method: Method,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    answer(
        dev_server::http::router(deps.clone()),
        request(user, method, path, body, headers),
    )
    .await
}

/// Sends one request through the operations routes as an operator, `ops-person`, as the
/// local server runs them.
pub async fn operator_call(ops: &OpsDeps, method: Method, path: &str, body: &str) -> (u16, Value) {
    let scopes = [(
        task_api::identity::SCOPES_HEADER,
        task_api::DEFAULT_OPERATOR_SCOPE,
    )];
    let router = task_api::ops_router(ops.clone())
        .layer(axum::middleware::from_fn(task_api::identity::local_headers));
    answer(
        router,
        request(Some("ops-person"), method, path, body, &scopes),
    )
    .await
}

fn request(
    user: Option<&str>,
    method: Method,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> axum::extract::Request {
    let mut builder = axum::http::Request::builder().method(method).uri(path);
    if !body.is_empty() {
        builder = builder.header("content-type", "application/json");
    }
    if let Some(user) = user {
        builder = builder.header(task_api::identity::USER_HEADER, user);
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(axum::body::Body::from(body.to_owned()))
        .expect("request builds")
}

async fn answer(router: axum::Router, request: axum::extract::Request) -> (u16, Value) {
    let response = router
        .oneshot(request)
        .await
        .expect("the router always answers");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the body reads");
    let json = serde_json::from_slice(&bytes).expect("JSON body");
    (status, json)
}

/// Creates a task for `user` and returns its id.
pub async fn create_task(deps: &Deps, user: &str, title: &str) -> String {
    let body = serde_json::json!({"title": title, "description": "integration test"}).to_string();
    let (status, task) = call(deps, Some(user), Method::POST, "/tasks", &body).await;
    assert_eq!(status, 201, "{task}");
    task["id"].as_str().expect("id").to_owned()
}

/// Reads task `id` as `user`.
pub async fn get_task(deps: &Deps, user: &str, id: &str) -> (u16, Value) {
    call(deps, Some(user), Method::GET, &format!("/tasks/{id}"), "").await
}

/// Runs `action` with `body` on task `id` and returns the status and body.
pub async fn act(deps: &Deps, user: &str, id: &str, action: &str, body: &str) -> (u16, Value) {
    call(
        deps,
        Some(user),
        Method::POST,
        &format!("/tasks/{id}/{action}"),
        body,
    )
    .await
}

/// The statistics of all tasks, asked for with the operator scope; must answer 200.
pub async fn operator_stats(deps: &Deps) -> Value {
    let operator = [(
        task_api::identity::SCOPES_HEADER,
        task_api::DEFAULT_OPERATOR_SCOPE,
    )];
    let (status, stats) = call_with(
        deps,
        Some("operator"),
        Method::GET,
        "/dashboard/stats",
        "",
        &operator,
    )
    .await;
    assert_eq!(status, 200, "{stats}");
    stats
}

/// Waits, 30 s at most, until the classifier has classified task `id` of `user`.
pub async fn classified(deps: &Deps, user: &str, id: &str) {
    eventually(Duration::from_secs(30), "the classification", || async {
        let (_, task) = get_task(deps, user, id).await;
        (task["status"] == "Classified").then_some(())
    })
    .await;
}
