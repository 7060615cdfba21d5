use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tests::{repository, TestEnv};
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
