//! In AWS the cicd-monitor reads its webhook URL from Secrets Manager when it starts; here
//! from LocalStack's, through the SDK's standard endpoint variables.

use std::sync::atomic::Ordering;
use std::time::Duration;

use cicd_monitor::CicdSettings;
use dev_server::event_source::EventSourceMapping;
use shared::domain::TaskType;
use shared::fixtures::Run;
use shared::ports::EventPublisher;
use shared::settings::Settings;
use tests::{eventually, TestEnv};

use crate::consumers::webhook;

const SECRET_ARN: &str = "CICD_WEBHOOK_SECRET_ARN";

/// A secret of this test holding `value`; returns its ARN.
async fn secret(env: &TestEnv, name: &str, value: &str) -> String {
    aws_sdk_secretsmanager::Client::new(&env.aws)
        .create_secret()
        .name(format!("{}-{name}", env.prefix))
        .secret_string(value)
        .send()
        .await
        .expect("LocalStack creates the secret")
        .arn()
        .expect("a created secret has an ARN")
        .to_owned()
}

async fn delete_secret(env: &TestEnv, arn: &str) {
    aws_sdk_secretsmanager::Client::new(&env.aws)
        .delete_secret()
        .secret_id(arn)
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("the secret is deleted");
}

#[tokio::test]
async fn when_the_webhook_url_is_in_a_secret_should_post_build_requests_to_it() {
    // Given a webhook on loopback whose URL only a secret holds
    let env = TestEnv::new("secret").await;
    let hook = webhook(false).await;
    let arn = secret(&env, "HookSecret", &hook.url).await;

    // When the cicd-monitor starts from the template's variables naming that secret
    let settings = CicdSettings::from_variables(&env.variables_with([(SECRET_ARN, arn.as_str())]))
        .expect("the variables configure it");
    assert!(settings.webhook.is_none(), "nothing read before start");
    let consumer = settings
        .build(&env.aws)
        .await
        .expect("the secret is read at start");
    let mapping = EventSourceMapping::new(&env.aws, &env.queue_url("CicdMonitor"), 10, consumer)
        .await
        .expect("event source mapping");
    let poller = tokio::spawn(mapping.run());

    // And a Feature task's completion is published
    let [_, _, completed] = Run {
        task_type: TaskType::Feature,
        ..Run::default()
    }
    .events();
    env.publisher().publish(&completed).await.unwrap();

    // Then its build request reaches the webhook
    eventually(Duration::from_secs(30), "the webhook call", || async {
        (hook.accepted.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    poller.abort();
    delete_secret(&env, &arn).await;
    env.teardown().await;
}

#[tokio::test]
async fn when_the_secret_is_missing_or_no_url_should_refuse_to_start_without_repeating_it() {
    // Given a secret that holds no URL, and the ARN of one that does not exist
    let env = TestEnv::new("nosecret").await;
    let value = "not-a-url-but-a-credential-5e2a";
    let arn = secret(&env, "HookSecret", value).await;
    let missing = format!("{arn}-gone");

    for secret_arn in [arn.as_str(), missing.as_str()] {
        // When the cicd-monitor starts with it
        let settings =
            CicdSettings::from_variables(&env.variables_with([(SECRET_ARN, secret_arn)]))
                .expect("the variables configure it");
        let err = settings
            .build(&env.aws)
            .await
            .err()
            .expect("it refuses to start");

        // Then the error names the variable, never the secret's value
        let message = err.to_string();
        assert!(message.contains(SECRET_ARN), "{message}");
        assert!(!message.contains(value), "{message}");
    }
    delete_secret(&env, &arn).await;
    env.teardown().await;
}

#[tokio::test]
async fn when_the_stacks_secret_has_no_value_yet_should_record_builds_and_post_once_it_is_set() {
    // Given the stack's own webhook secret, created without a value, and a webhook
    let env = TestEnv::new("emptysecret").await;
    let hook = webhook(false).await;
    let settings =
        CicdSettings::from_variables(&env.variables_with([("CICD_WEBHOOK_SECRET_TTL_SECS", "1")]))
            .expect("the template's variables configure it");
    let secret_id = settings
        .webhook_secret
        .clone()
        .expect("the template names the stack's secret");

    // When the cicd-monitor starts and a completion arrives
    let consumer = settings
        .build(&env.aws)
        .await
        .expect("a secret without a value is no reason not to start");
    let mapping = EventSourceMapping::new(&env.aws, &env.queue_url("CicdMonitor"), 10, consumer)
        .await
        .expect("event source mapping");
    let poller = tokio::spawn(mapping.run());
    let feature = || {
        let [_, _, completed] = Run {
            task_type: TaskType::Feature,
            ..Run::default()
        }
        .events();
        completed
    };
    let first = feature();
    env.publisher().publish(&first).await.unwrap();

    // Then its build request is recorded and nothing is posted
    let requests = env.name("BuildRequestsTable");
    eventually(
        Duration::from_secs(30),
        "the first build request",
        || async {
            let item = env
                .dynamodb
                .get_item()
                .table_name(&requests)
                .key(
                    "task_id",
                    aws_sdk_dynamodb::types::AttributeValue::S(first.task_id().to_string()),
                )
                .send()
                .await
                .unwrap()
                .item;
            item.map(|_| ())
        },
    )
    .await;
    assert_eq!(hook.accepted.load(Ordering::SeqCst), 0);

    // And once an operator sets the value, the next build request is posted to it
    aws_sdk_secretsmanager::Client::new(&env.aws)
        .put_secret_value()
        .secret_id(&secret_id)
        .secret_string(&hook.url)
        .send()
        .await
        .expect("the value is set");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    env.publisher().publish(&feature()).await.unwrap();
    eventually(Duration::from_secs(30), "the webhook call", || async {
        (hook.accepted.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    poller.abort();
    env.teardown().await;
}
