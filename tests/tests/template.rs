//! template.yaml and the workspace must agree: one function per function crate, and every
//! variable a function's settings read set by the template for that function. And the
//! template keeps its security promises: encryption at rest and in transit, secrets out of
//! the functions' environment, limits on callers, and alarms that reach someone.

use std::collections::{BTreeMap, BTreeSet};

use cicd_monitor::CicdSettings;
use dashboard::DashboardSettings;
use dev_server::functions::crate_name;
use event_archive::ArchiveSettings;
use ml_classifier::ClassifierSettings;
use outbox_sweeper::SweeperSettings;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::settings::{Settings, Variables};
use task_api::ApiSettings;
use tests::{repository, template_functions, template_functions_with, template_json};

#[derive(Debug, Deserialize)]
struct Function {
    code_uri: String,
    env: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Functions {
    functions: BTreeMap<String, Function>,
}

/// Reads `S` from exactly the template's variables of one function; returns what is wrong.
fn configure<S: Settings>(env: &BTreeMap<String, String>) -> Vec<String> {
    let variables = Variables::new(env.clone());
    let mut problems = Vec::new();
    if let Err(err) = S::from_variables(&variables) {
        problems.push(err.to_string());
    }
    let declared: BTreeSet<&str> = S::variables().into_iter().collect();
    let local_only: BTreeSet<&str> = S::local_only().into_iter().collect();
    for name in variables.names_read() {
        if !declared.contains(name) {
            problems.push(format!("reads {name} but does not list it"));
        }
    }
    for name in &local_only {
        if !declared.contains(name) {
            problems.push(format!("{name} is local only but not listed"));
        }
        if env.contains_key(*name) {
            problems.push(format!(
                "template.yaml sets {name}, which only a local run may set"
            ));
        }
    }
    for name in declared.difference(&local_only) {
        if !env.contains_key(*name) {
            problems.push(format!("reads {name}, which template.yaml does not set"));
        }
    }
    problems
}

#[test]
fn when_the_template_is_read_should_match_the_function_crates_and_set_every_variable_they_read() {
    // Given the template's functions and the workspace's function crates
    let json = template_functions();
    let template: Functions =
        serde_json::from_str(&json).unwrap_or_else(|err| panic!("{err}: {json}"));
    let crates: BTreeSet<String> = std::fs::read_dir(repository().join("functions"))
        .expect("functions/ is readable")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            entry
                .path()
                .join("Cargo.toml")
                .exists()
                .then(|| entry.file_name().to_string_lossy().into_owned())
        })
        .collect();

    // Then each crate has one function and each function one crate
    let built: BTreeSet<String> = template
        .functions
        .values()
        .map(|f| crate_name(&f.code_uri).to_owned())
        .collect();
    assert_eq!(
        built, crates,
        "function crates and template functions differ"
    );
    assert_eq!(
        built.len(),
        template.functions.len(),
        "two functions build the same crate"
    );

    // And each function's settings, given only its template variables, find all they read
    for (logical_id, function) in &template.functions {
        let problems = match crate_name(&function.code_uri) {
            "task-api" => configure::<ApiSettings>(&function.env),
            "outbox-sweeper" => configure::<SweeperSettings>(&function.env),
            "ml-classifier" => configure::<ClassifierSettings>(&function.env),
            "dashboard" => configure::<DashboardSettings>(&function.env),
            "cicd-monitor" => configure::<CicdSettings>(&function.env),
            "event-archive" => configure::<ArchiveSettings>(&function.env),
            other => panic!("no settings known for the function crate {other}; add them here"),
        };
        assert!(problems.is_empty(), "{logical_id}: {problems:?}");
    }
}

/// Each function's variables, by logical id, with `parameters` set.
fn function_variables(parameters: &[&str]) -> BTreeMap<String, BTreeMap<String, String>> {
    let json = template_functions_with(parameters);
    let template: Functions =
        serde_json::from_str(&json).unwrap_or_else(|err| panic!("{err}: {json}"));
    template
        .functions
        .into_iter()
        .map(|(id, function)| (id, function.env))
        .collect()
}

#[test]
fn when_no_local_endpoint_is_given_no_function_should_have_an_endpoint_variable() {
    // Given the template's defaults, as a deploy to AWS takes them
    let functions = function_variables(&[]);
    assert!(!functions.is_empty());

    // Then no function has any endpoint variable: the SDK calls the region's endpoints
    for (logical_id, env) in &functions {
        let endpoints: Vec<&String> = env
            .keys()
            .filter(|name| name.starts_with("AWS_ENDPOINT_URL"))
            .collect();
        assert!(endpoints.is_empty(), "{logical_id} sets {endpoints:?}");
    }

    // And given LocalEndpointUrl, as `sam local` is given it, every function has it
    let url = "http://localstack:4566";
    for (logical_id, env) in function_variables(&[&format!("LocalEndpointUrl={url}")]) {
        assert_eq!(
            env.get("AWS_ENDPOINT_URL").map(String::as_str),
            Some(url),
            "{logical_id}"
        );
    }
}

// --- security and operations -----------------------------------------------------------

/// The template's resources of `kind`, by logical id.
fn resources<'a>(template: &'a Value, kind: &str) -> BTreeMap<&'a str, &'a Value> {
    template["Resources"]
        .as_object()
        .expect("Resources")
        .iter()
        .filter(|(_, spec)| spec["Type"] == kind)
        .map(|(id, spec)| (id.as_str(), spec))
        .collect()
}

fn reference(logical_id: &str) -> Value {
    json!({ "Ref": logical_id })
}

/// The `Ref` or `Fn::GetAtt` target of a value, if it names a resource.
fn target(value: &Value) -> Option<&str> {
    value["Ref"]
        .as_str()
        .or_else(|| value["Fn::GetAtt"][0].as_str())
}

/// Whether a policy statement denies every request not made over TLS.
fn denies_plain_transport(statement: &Value) -> bool {
    statement["Effect"] == "Deny"
        && statement["Principal"] == "*"
        && statement["Condition"]["Bool"]["aws:SecureTransport"] == "false"
}

#[test]
fn when_the_template_is_read_should_encrypt_every_table_queue_and_the_events_topic() {
    // Given the template
    let template = template_json();

    // Then every table is encrypted at rest
    let tables = resources(&template, "AWS::DynamoDB::Table");
    assert!(tables.len() >= 5, "{:?}", tables.keys());
    for (id, table) in &tables {
        assert_eq!(
            table["Properties"]["SSESpecification"]["SSEEnabled"],
            json!(true),
            "{id}"
        );
    }

    // And every queue, dead-letter queues included, with SQS-managed keys, which SNS
    // can deliver to without a key policy
    let queues = resources(&template, "AWS::SQS::Queue");
    assert_eq!(queues.len(), 6, "{:?}", queues.keys());
    for (id, queue) in &queues {
        assert_eq!(
            queue["Properties"]["SqsManagedSseEnabled"],
            json!(true),
            "{id}"
        );
    }

    // And the events topic with the AWS managed SNS key, or the customer key when given
    let topic = &template["Resources"]["EventsTopic"]["Properties"];
    assert_eq!(
        topic["KmsMasterKeyId"],
        json!({ "Fn::If": ["HasEventsTopicKey", reference("EventsTopicKmsKeyArn"), "alias/aws/sns"] })
    );
    assert_eq!(
        template["Parameters"]["EventsTopicKmsKeyArn"]["Default"],
        ""
    );
    assert_eq!(
        template["Conditions"]["HasEventsTopicKey"],
        json!({ "Fn::Not": [{ "Fn::Equals": [reference("EventsTopicKmsKeyArn"), ""] }] })
    );

    // And every other topic is the alarm topic, which CloudWatch could not publish to
    // under the AWS managed key
    for (id, topic) in resources(&template, "AWS::SNS::Topic") {
        if topic["Properties"]["KmsMasterKeyId"].is_null() {
            assert_eq!(id, "AlarmTopic", "{id} is not encrypted");
        }
    }
}

#[test]
fn when_the_template_is_read_should_deny_every_queue_and_topic_request_without_tls() {
    // Given the template's queue and topic policies
    let template = template_json();
    let mut covered: BTreeMap<String, bool> = BTreeMap::new();
    for (kind, list, action) in [
        ("AWS::SQS::QueuePolicy", "Queues", "sqs:*"),
        ("AWS::SNS::TopicPolicy", "Topics", "sns:Publish"),
    ] {
        for (id, policy) in resources(&template, kind) {
            let properties = &policy["Properties"];
            let statements = properties["PolicyDocument"]["Statement"]
                .as_array()
                .unwrap_or_else(|| panic!("{id} has statements"));
            let denies = statements.iter().any(|statement| {
                let actions = match &statement["Action"] {
                    Value::Array(actions) => actions.clone(),
                    one => vec![one.clone()],
                };
                denies_plain_transport(statement) && actions.contains(&json!(action))
            });
            for member in properties[list].as_array().expect("a list") {
                let name = target(member).unwrap_or_else(|| panic!("{id}: {member}"));
                *covered.entry(name.to_owned()).or_default() |= denies;
            }
        }
    }

    // Then each queue and each topic has one that denies requests without TLS
    let mut all: Vec<&str> = resources(&template, "AWS::SQS::Queue")
        .into_keys()
        .collect();
    all.extend(resources(&template, "AWS::SNS::Topic").into_keys());
    for name in all {
        assert_eq!(
            covered.get(name),
            Some(&true),
            "{name} has no policy denying requests without TLS"
        );
    }
}

#[test]
fn when_the_template_is_read_should_keep_the_webhook_url_in_a_secret_only_its_consumer_reads() {
    // Given the template
    let template = template_json();
    let parameter = &template["Parameters"]["CicdWebhookUrl"];
    let secret = &template["Resources"]["CicdWebhookSecret"];
    let function = &template["Resources"]["CicdMonitorFunction"]["Properties"];

    // Then the URL is a parameter that is not echoed, stored in a secret when given
    assert_eq!(parameter["NoEcho"], json!(true));
    assert_eq!(secret["Type"], "AWS::SecretsManager::Secret");
    assert_eq!(secret["Condition"], "HasCicdWebhook");
    assert_eq!(
        secret["Properties"]["SecretString"],
        reference("CicdWebhookUrl")
    );

    // And no function's environment holds it: the monitor gets the secret's ARN
    let variables = &function["Environment"]["Variables"];
    assert_eq!(
        variables["CICD_WEBHOOK_SECRET_ARN"],
        json!({ "Fn::If": ["HasCicdWebhook", reference("CicdWebhookSecret"), ""] })
    );
    assert!(variables.get("CICD_WEBHOOK_URL").is_none());
    for (id, spec) in resources(&template, "AWS::Serverless::Function") {
        let environment = spec["Properties"]["Environment"].to_string();
        assert!(
            !environment.contains("\"CicdWebhookUrl\""),
            "{id} has the webhook URL in its environment"
        );
    }
    let globals = template["Globals"].to_string();
    assert!(!globals.contains("\"CicdWebhookUrl\""));

    // And only the monitor may read the secret, and nothing else from Secrets Manager
    let grants: Vec<(&str, &Value)> = resources(&template, "AWS::Serverless::Function")
        .into_iter()
        .flat_map(|(id, spec)| {
            spec["Properties"]["Policies"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|policy| policy["Statement"].as_array().into_iter().flatten())
                .map(move |statement| (id, statement))
        })
        .filter(|(_, statement)| statement.to_string().contains("secretsmanager:"))
        .collect();
    assert_eq!(grants.len(), 1, "{grants:?}");
    let (id, grant) = grants[0];
    assert_eq!(id, "CicdMonitorFunction");
    assert_eq!(
        grant,
        &json!({ "Fn::If": ["HasCicdWebhook", {
            "Sid": "WebhookSecret",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": reference("CicdWebhookSecret"),
        }, { "Ref": "AWS::NoValue" }] })
    );
}

#[test]
fn when_the_template_is_read_should_limit_callers_and_bound_concurrency_by_parameters() {
    // Given the template
    let template = template_json();
    let parameters = &template["Parameters"];

    // Then every route is throttled by two parameters with defaults
    for name in ["ApiThrottlingRateLimit", "ApiThrottlingBurstLimit"] {
        assert!(
            parameters[name]["Default"].as_u64().is_some_and(|d| d > 0),
            "{name} needs a positive default"
        );
    }
    assert_eq!(
        template["Resources"]["TasksApi"]["Properties"]["DefaultRouteSettings"],
        json!({
            "ThrottlingRateLimit": reference("ApiThrottlingRateLimit"),
            "ThrottlingBurstLimit": reference("ApiThrottlingBurstLimit"),
        })
    );

    // And the task API's concurrency is reserved and bounded, and each consumer's too
    assert!(parameters["ApiReservedConcurrency"]["Default"]
        .as_u64()
        .is_some_and(|d| d > 0));
    assert_eq!(
        template["Resources"]["TaskApiFunction"]["Properties"]["ReservedConcurrentExecutions"],
        reference("ApiReservedConcurrency")
    );
    let mut consumers = 0;
    for (id, spec) in resources(&template, "AWS::Serverless::Function") {
        for event in spec["Properties"]["Events"]
            .as_object()
            .into_iter()
            .flat_map(|events| events.values())
            .filter(|event| event["Type"] == "SQS")
        {
            consumers += 1;
            assert_eq!(
                event["Properties"]["ScalingConfig"]["MaximumConcurrency"],
                reference("ConsumerMaxConcurrency"),
                "{id}"
            );
        }
    }
    assert_eq!(consumers, 3);
}

#[test]
fn when_the_template_is_read_should_require_named_cors_origins() {
    // Given the template
    let template = template_json();
    let parameter = &template["Parameters"]["CorsAllowOrigins"];

    // Then the origins have no default, so each deployment names its own
    assert!(
        parameter.get("Default").is_none(),
        "CorsAllowOrigins has a default: {parameter}"
    );
    assert_eq!(
        template["Resources"]["TasksApi"]["Properties"]["CorsConfiguration"]["AllowOrigins"],
        reference("CorsAllowOrigins")
    );

    // And a rule refuses a wildcard among them
    let assertions = template["Rules"]["CorsOriginsNamed"]["Assertions"]
        .as_array()
        .expect("the rule's assertions");
    assert!(assertions.iter().any(|assertion| assertion["Assert"]
        == json!({ "Fn::Not": [{ "Fn::Contains": [reference("CorsAllowOrigins"), "*"] }] })));

    // And samconfig.toml, which names the origins of each stack, names no wildcard
    let samconfig =
        std::fs::read_to_string(repository().join("samconfig.toml")).expect("samconfig.toml");
    for line in samconfig
        .lines()
        .filter(|l| l.contains("CorsAllowOrigins="))
    {
        let origins = line.split("CorsAllowOrigins=").nth(1).unwrap_or_default();
        assert!(!origins.contains('*'), "a wildcard origin: {line}");
    }
}

#[test]
fn when_the_template_is_read_should_send_every_alarm_to_a_topic_that_exists() {
    // Given the template
    let template = template_json();
    let alarms = resources(&template, "AWS::CloudWatch::Alarm");
    let notify = json!([{ "Fn::If": ["CreateAlarmTopic", reference("AlarmTopic"), reference("AlarmTopicArn")] }]);

    // Then every alarm notifies the given topic, or else the stack's own, on alarm and
    // on recovery
    assert!(!alarms.is_empty());
    for (id, alarm) in &alarms {
        assert_eq!(alarm["Properties"]["AlarmActions"], notify, "{id}");
        assert_eq!(alarm["Properties"]["OKActions"], notify, "{id}");
    }
    assert_eq!(
        template["Conditions"]["CreateAlarmTopic"],
        json!({ "Fn::Equals": [reference("AlarmTopicArn"), ""] })
    );
    let topic = &template["Resources"]["AlarmTopic"];
    assert_eq!(topic["Type"], "AWS::SNS::Topic");
    assert_eq!(topic["Condition"], "CreateAlarmTopic");

    // And CloudWatch may publish to the stack's own topic, which e-mails when asked to
    let policy = &template["Resources"]["AlarmTopicPolicy"];
    assert_eq!(policy["Condition"], "CreateAlarmTopic");
    assert!(policy["Properties"]["PolicyDocument"]["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .any(|s| s["Effect"] == "Allow"
            && s["Principal"]["Service"] == "cloudwatch.amazonaws.com"
            && s["Action"] == "sns:Publish"));
    let email = &template["Resources"]["AlarmEmailSubscription"];
    assert_eq!(email["Condition"], "SubscribeAlarmEmail");
    assert_eq!(email["Properties"]["Protocol"], "email");
    assert_eq!(email["Properties"]["TopicArn"], reference("AlarmTopic"));
    assert_eq!(template["Parameters"]["AlarmEmail"]["Default"], "");
}

/// The metrics an alarm watches, as (namespace, name, the first dimension's value as JSON).
fn watched(alarm: &Value) -> Vec<(String, String, String)> {
    let properties = &alarm["Properties"];
    let single = properties["MetricName"].as_str().map(|name| {
        (
            properties["Namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            name.to_owned(),
            properties["Dimensions"][0]["Value"].to_string(),
        )
    });
    let math = properties["Metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|query| {
            let metric = &query["MetricStat"]["Metric"];
            Some((
                metric["Namespace"].as_str()?.to_owned(),
                metric["MetricName"].as_str()?.to_owned(),
                metric["Dimensions"][0]["Value"].to_string(),
            ))
        });
    single.into_iter().chain(math).collect()
}

#[test]
fn when_the_template_is_read_should_alarm_on_errors_throttles_and_stuck_publishing() {
    // Given every metric the alarms watch
    let template = template_json();
    let alarms = resources(&template, "AWS::CloudWatch::Alarm");
    let watched: BTreeSet<(String, String, String)> =
        alarms.values().flat_map(|alarm| watched(alarm)).collect();
    let is_watched = |namespace: &str, name: &str, dimension: Value| {
        watched.contains(&(namespace.to_owned(), name.to_owned(), dimension.to_string()))
    };

    // Then the API's 5xx, as a share of its requests
    assert!(is_watched("AWS/ApiGateway", "5xx", reference("TasksApi")));
    assert!(is_watched("AWS/ApiGateway", "Count", reference("TasksApi")));

    // And the errors and throttles of the task API and of every consumer
    for function in [
        "TaskApiFunction",
        "MlClassifierFunction",
        "DashboardFunction",
        "CicdMonitorFunction",
    ] {
        for metric in ["Errors", "Throttles"] {
            assert!(
                is_watched("AWS/Lambda", metric, reference(function)),
                "no alarm on {metric} of {function}"
            );
        }
    }

    // And the read and write throttling of every table
    for table in resources(&template, "AWS::DynamoDB::Table").into_keys() {
        for metric in ["ReadThrottleEvents", "WriteThrottleEvents"] {
            assert!(
                is_watched("AWS/DynamoDB", metric, reference(table)),
                "no alarm on {metric} of {table}"
            );
        }
    }

    // And failed publishes when they last, not at the first
    let publish = &template["Resources"]["PublishFailuresAlarm"]["Properties"];
    let periods = publish["EvaluationPeriods"].as_u64().unwrap_or(1);
    let datapoints = publish["DatapointsToAlarm"].as_u64().unwrap_or(periods);
    assert!(datapoints >= 2 && periods >= datapoints, "{publish}");

    // And stale outboxes, where a sweeper that reports nothing counts as stuck
    let stale = &template["Resources"]["OutboxStaleAlarm"]["Properties"];
    assert_eq!(stale["MetricName"], "OutboxStaleTasks");
    assert_eq!(stale["TreatMissingData"], "breaching");
}
