use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tests::{repository, TestEnv};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::Command;

/// The whole browser run: page load, sign-in, outage, three lifecycles, screenshots.
const BROWSER_RUN_LIMIT: Duration = Duration::from_secs(300);

fn variable(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not set: run the browser test with `infra/local.sh test`, which \
                 installs chromium and puppeteer-core"
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_tasks_run_should_show_their_statistics_on_the_dashboard_page_in_a_browser() {
    // Given the local server (task API and consumers) on a loopback port of its own
    let chromium = variable("CHROMIUM");
    let tools = variable("BROWSER_TOOLS_DIR");
    let artifacts = PathBuf::from(variable("TEST_ARTIFACTS_DIR"));
    std::fs::create_dir_all(&artifacts).expect("artifacts directory");
    let env = TestEnv::new("page").await;
    let consumers = env.start_consumers(None, Duration::from_secs(1)).await;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("its address");
    let router = dev_server::http::router(env.deps());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    // When a browser opens the dashboard page while tasks are created and finished
    let script = repository().join("tests/browser/dashboard.cjs");
    let run = Command::new("node")
        .arg(&script)
        .env("BASE_URL", format!("http://{address}"))
        .env("CHROMIUM", chromium)
        .env("BROWSER_TOOLS_DIR", tools)
        .env("SCREENSHOT_DIR", &artifacts)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(BROWSER_RUN_LIMIT, run).await;
    server.abort();
    drop(consumers);
    env.teardown().await;

    // Then every figure and chart it checks followed the tasks
    let output = output
        .unwrap_or_else(|_| panic!("the browser run took over {BROWSER_RUN_LIMIT:?}"))
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    println!(
        "screenshots: {} and {}",
        artifacts.join("dashboard.png").display(),
        artifacts.join("dashboard-phone.png").display()
    );
    assert!(
        output.status.success(),
        "the browser run failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("every check held"), "{stdout}");
}

/// Messages the operations browser test sends to the dashboard's queue, and dead letters
/// to its DLQ.
const SENT_TO_QUEUE: usize = 3;
const SENT_TO_DLQ: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_messages_arrive_and_dead_letters_are_redriven_should_show_lag_and_depth_change_in_a_browser(
) {
    // Given the local server with the operations routes, no consumer running yet
    let chromium = variable("CHROMIUM");
    let tools = variable("BROWSER_TOOLS_DIR");
    let artifacts = PathBuf::from(variable("TEST_ARTIFACTS_DIR"));
    std::fs::create_dir_all(&artifacts).expect("artifacts directory");
    let env = TestEnv::new("opspage").await;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("its address");
    let router = dev_server::http::router_with_ops(env.deps(), env.ops_deps());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    // When a browser watches the Operations section while messages reach the dashboard's
    // queue and DLQ, the consumers start, and the page redrives the dead letters
    let script = repository().join("tests/browser/operations.cjs");
    let mut child = Command::new("node")
        .arg(&script)
        .env("BASE_URL", format!("http://{address}"))
        .env("CHROMIUM", chromium)
        .env("BROWSER_TOOLS_DIR", tools)
        .env("SCREENSHOT_DIR", &artifacts)
        .env("SENT_TO_QUEUE", SENT_TO_QUEUE.to_string())
        .env("SENT_TO_DLQ", SENT_TO_DLQ.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut stdin = child.stdin.take().expect("its input");
    let mut stderr = child.stderr.take().expect("its errors");
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut stdout = BufReader::new(child.stdout.take().expect("its output")).lines();
    let mut printed = Vec::new();
    let mut consumers = None;
    let run = async {
        while let Some(line) = stdout.next_line().await.expect("its output reads") {
            printed.push(line.clone());
            match line.as_str() {
                "STEP watching" => {
                    for (queue, count) in [
                        (env.queue_url("Dashboard"), SENT_TO_QUEUE),
                        (env.dlq_url("Dashboard"), SENT_TO_DLQ),
                    ] {
                        for _ in 0..count {
                            send_created(&env, &queue).await;
                        }
                    }
                }
                "STEP seen" => {
                    consumers = Some(env.start_consumers(None, Duration::from_secs(1)).await);
                }
                _ => continue,
            }
            let step = line.trim_start_matches("STEP ");
            stdin
                .write_all(format!("DONE {step}\n").as_bytes())
                .await
                .expect("the browser reads its input");
        }
        child.wait().await.expect("node ends")
    };
    let status = tokio::time::timeout(BROWSER_RUN_LIMIT, run).await;
    server.abort();
    drop(consumers);
    env.teardown().await;

    // Then every change the page was to show, it showed
    let status =
        status.unwrap_or_else(|_| panic!("the browser run took over {BROWSER_RUN_LIMIT:?}"));
    let printed = printed.join("\n");
    let errors = errors.await.unwrap_or_default();
    println!("{printed}");
    println!("screenshot: {}", artifacts.join("operations.png").display());
    assert!(
        status.success(),
        "the browser run failed ({status}):\n{printed}\n{errors}"
    );
    assert!(printed.contains("every check held"), "{printed}");
}

/// Sends a new task's TaskCreated to `queue`, as SNS delivers it.
async fn send_created(env: &TestEnv, queue: &str) {
    let [created, _, _] = shared::fixtures::Run::default().events();
    let [(type_name, type_value), (version_name, version_value)] =
        created.wire_type().message_attributes();
    let string = |value: &str| {
        aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .expect("an attribute")
    };
    env.sqs
        .send_message()
        .queue_url(queue)
        .message_body(created.to_json())
        .message_attributes(type_name, string(type_value))
        .message_attributes(version_name, string(version_value))
        .send()
        .await
        .expect("the message is sent");
}
