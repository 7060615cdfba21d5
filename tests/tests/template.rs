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
use task_api::{ApiSettings, OpsSettings};
use tests::{
    repository, template_functions, template_functions_with, template_json, transformed_template,
};

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
            "ops-api" => configure::<OpsSettings>(&function.env),
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
    assert_eq!(queues.len(), 8, "{:?}", queues.keys());
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
    let secret = &template["Resources"]["CicdWebhookSecret"];
    let function = &template["Resources"]["CicdMonitorFunction"]["Properties"];

    // Then the URL is no parameter typed at each deploy: the secret is always there,
    // created without a value (set once, out of band), and kept when the stack goes
    let parameters = template["Parameters"].as_object().unwrap();
    assert!(
        !parameters.keys().any(|name| name.contains("Webhook")),
        "{:?}",
        parameters.keys()
    );
    assert_eq!(secret["Type"], "AWS::SecretsManager::Secret");
    assert!(secret.get("Condition").is_none(), "{secret}");
    assert_eq!(secret["DeletionPolicy"], "Retain");
    assert_eq!(secret["UpdateReplacePolicy"], "Retain");
    let properties = secret["Properties"].as_object().unwrap();
    assert!(!properties.contains_key("SecretString"), "{secret}");
    assert!(!properties.contains_key("GenerateSecretString"), "{secret}");

    // And no function's environment holds the URL: the monitor gets the secret's ARN
    let variables = &function["Environment"]["Variables"];
    assert_eq!(
        variables["CICD_WEBHOOK_SECRET_ARN"],
        reference("CicdWebhookSecret")
    );
    assert!(variables.get("CICD_WEBHOOK_URL").is_none());

    // And only the monitor may read the secret, and nothing else from Secrets Manager
    assert_eq!(
        function["Role"],
        json!({ "Fn::GetAtt": ["CicdMonitorRole", "Arn"] })
    );
    let grants: Vec<(String, Value)> = resources(&template, "AWS::IAM::Role")
        .into_iter()
        .flat_map(|(id, role)| {
            role["Properties"]["Policies"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|policy| {
                    policy["PolicyDocument"]["Statement"]
                        .as_array()
                        .into_iter()
                        .flatten()
                })
                .map(move |statement| (id.to_owned(), statement.clone()))
        })
        .filter(|(_, statement)| statement.to_string().contains("secretsmanager:"))
        .collect();
    assert_eq!(grants.len(), 1, "{grants:?}");
    let (id, grant) = &grants[0];
    assert_eq!(id, "CicdMonitorRole");
    assert_eq!(
        grant,
        &json!({
            "Sid": "WebhookSecret",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Resource": reference("CicdWebhookSecret"),
        })
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
    assert_eq!(consumers, 4);
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
        "OpsApiFunction",
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

    // And each consumer's latency objective burning fast, as the stack declares it
    for (stem, consumer) in [
        ("MlClassifier", "ml-classifier"),
        ("Dashboard", "dashboard"),
        ("CicdMonitor", "cicd-monitor"),
        ("EventArchive", "event-archive"),
    ] {
        let burn = &template["Resources"][format!("{stem}LatencyBurnAlarm")]["Properties"];
        let metrics = burn["Metrics"].as_array().expect("metric math");
        let stat = &metrics[0]["MetricStat"];
        assert_eq!(stat["Metric"]["MetricName"], "EventAge", "{stem}");
        assert_eq!(stat["Metric"]["Dimensions"][1]["Value"], consumer, "{stem}");
        assert_eq!(
            stat["Stat"],
            json!({ "Fn::Sub": format!("PR(:${{{stem}LatencyObjectiveSecs}}000)") }),
            "{stem}"
        );
        assert_eq!(
            metrics[1]["Expression"],
            json!({ "Fn::Sub": "(100 - intime) / (100 - ${LatencyObjectivePercent})" })
        );
        assert_eq!(burn["Threshold"], json!(operations::objectives::FAST_BURN));
    }

    // And stale outboxes, where a sweeper that reports nothing counts as stuck
    let stale = &template["Resources"]["OutboxStaleAlarm"]["Properties"];
    assert_eq!(stale["MetricName"], "OutboxStaleTasks");
    assert_eq!(stale["TreatMissingData"], "breaching");
}

// --- roles after the SAM transform -----------------------------------------------------

/// The only managed policy a function's role may carry: X-Ray's write-only access, whose
/// actions cannot be scoped to resources.
const XRAY_WRITE: &str = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess";
const XRAY_WRITE_SUB: &str = "arn:${AWS::Partition}:iam::aws:policy/AWSXrayWriteOnlyAccess";

/// Both branches of every `Fn::If`, so a condition cannot hide a grant from the checks.
fn branches(value: &Value) -> Vec<&Value> {
    match value.get("Fn::If").and_then(Value::as_array) {
        Some(choice) if choice.len() == 3 => branches(&choice[1])
            .into_iter()
            .chain(branches(&choice[2]))
            .collect(),
        _ if value == &json!({ "Ref": "AWS::NoValue" }) => Vec::new(),
        _ => vec![value],
    }
}

/// A value that may be one item or a list of them, conditions opened up.
fn items(value: &Value) -> Vec<&Value> {
    branches(value)
        .into_iter()
        .flat_map(|value| match value {
            Value::Array(list) => list.iter().flat_map(branches).collect(),
            Value::Null => Vec::new(),
            one => vec![one],
        })
        .collect()
}

/// Every statement of a role's inline policies, by the role's logical id.
fn role_statements(template: &Value) -> Vec<(String, Value)> {
    let mut statements = Vec::new();
    for (id, role) in resources(template, "AWS::IAM::Role") {
        for policy in items(&role["Properties"]["Policies"]) {
            for statement in items(&policy["PolicyDocument"]["Statement"]) {
                statements.push((id.to_owned(), statement.clone()));
            }
        }
    }
    for kind in ["AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"] {
        for (id, policy) in resources(template, kind) {
            for statement in items(&policy["Properties"]["PolicyDocument"]["Statement"]) {
                statements.push((id.to_owned(), statement.clone()));
            }
        }
    }
    statements
}

fn actions(statement: &Value) -> Vec<String> {
    items(&statement["Action"])
        .into_iter()
        .filter_map(|action| action.as_str().map(str::to_lowercase))
        .collect()
}

/// The resources a statement names that no IAM check can tie to one resource: `*` itself
/// or a pattern ending in it.
fn is_wildcard(resource: &Value) -> bool {
    resource
        .as_str()
        .is_some_and(|r| r == "*" || r.ends_with(":*"))
}

/// The role of each function, by the function's logical id (the function's own role,
/// given as `Fn::GetAtt <role>.Arn`).
fn function_roles(template: &Value) -> BTreeMap<String, String> {
    resources(template, "AWS::Lambda::Function")
        .into_iter()
        .map(|(id, function)| {
            let role = target(&function["Properties"]["Role"])
                .unwrap_or_else(|| panic!("{id}'s role is not one of the template's: {function}"));
            (id.to_owned(), role.to_owned())
        })
        .collect()
}

#[test]
fn when_the_template_is_transformed_should_attach_no_managed_policy_but_xray_write() {
    // Given the template as CloudFormation receives it, after the SAM transform
    let template = transformed_template();
    let roles = resources(&template, "AWS::IAM::Role");

    // Then every function has a role of the template's
    let function_roles = function_roles(&template);
    assert_eq!(function_roles.len(), 7, "{function_roles:?}");
    for role in function_roles.values() {
        assert!(roles.contains_key(role.as_str()), "{role} is not a role");
    }

    // And no role carries an AWS managed policy but X-Ray's write access
    for (id, role) in &roles {
        for arn in items(&role["Properties"]["ManagedPolicyArns"]) {
            let named = arn
                .as_str()
                .or_else(|| arn["Fn::Sub"].as_str())
                .unwrap_or_default();
            assert!(
                named == XRAY_WRITE || named == XRAY_WRITE_SUB,
                "{id} has the managed policy {arn}"
            );
        }
    }
}

#[test]
fn when_the_template_is_transformed_should_grant_no_queue_table_topic_or_log_action_on_everything()
{
    // Given every statement of every role and policy after the SAM transform
    let template = transformed_template();
    let statements = role_statements(&template);
    assert!(statements.len() >= 20, "{statements:?}");

    // Then none allows an SQS, DynamoDB, SNS or CloudWatch Logs action (or every action)
    // on every resource
    for (id, statement) in &statements {
        if statement["Effect"] != "Allow" {
            continue;
        }
        let everything = items(&statement["Resource"]).into_iter().any(is_wildcard);
        if !everything {
            continue;
        }
        for action in actions(statement) {
            let service = action.split(':').next().unwrap_or_default();
            assert!(
                action != "*" && !["sqs", "dynamodb", "sns", "logs"].contains(&service),
                "{id} allows {action} on every resource: {statement}"
            );
        }
    }
}

/// The statements of `role` whose actions belong to `service` (`sqs`, `logs`, ...).
fn grants<'a>(statements: &'a [(String, Value)], role: &str, service: &str) -> Vec<&'a Value> {
    statements
        .iter()
        .filter(|(id, statement)| {
            id == role
                && statement["Effect"] == "Allow"
                && actions(statement)
                    .iter()
                    .any(|a| a.starts_with(&format!("{service}:")))
        })
        .map(|(_, statement)| statement)
        .collect()
}

/// The logical ids a statement's resources name (`Ref`, `Fn::GetAtt`, or the first
/// reference inside a `Fn::Sub` such as `${TasksTable.Arn}/index/by_user`).
fn named_resources(statement: &Value) -> Vec<String> {
    items(&statement["Resource"])
        .into_iter()
        .map(|resource| {
            if let Some(name) = target(resource) {
                return name.to_owned();
            }
            let sub = resource["Fn::Sub"].as_str().unwrap_or_else(|| {
                panic!("a resource that names no resource of the template: {resource}")
            });
            sub.trim_start_matches("${")
                .split(['.', '}'])
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn when_the_template_is_transformed_should_let_each_function_use_only_its_own_queue_and_log_group()
{
    // Given the transformed template, and each function's queue and log group
    let template = transformed_template();
    let source = template_json();
    let statements = role_statements(&template);
    let function_roles = function_roles(&template);
    let mut queues: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, mapping) in resources(&template, "AWS::Lambda::EventSourceMapping") {
        let function = target(&mapping["Properties"]["FunctionName"]).expect("a function");
        let queue = target(&mapping["Properties"]["EventSourceArn"]).expect("a queue");
        let dead_letters = target(
            &source["Resources"][queue]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"],
        )
        .expect("a dead-letter queue");
        queues
            .entry(function.to_owned())
            .or_default()
            .extend([queue.to_owned(), dead_letters.to_owned()]);
    }
    assert_eq!(queues.len(), 4, "{queues:?}");

    for (function, role) in &function_roles {
        // Then its SQS actions name its own queue and dead-letter queue, and nothing else
        // (but the operations function's, which reads them all: its own test holds it)
        let own = queues.get(function).cloned().unwrap_or_default();
        let sqs = grants(&statements, role, "sqs");
        let sqs = if function == OPERATIONS {
            Vec::new()
        } else {
            sqs
        };
        assert_eq!(sqs.is_empty(), own.is_empty(), "{function}: {sqs:?}");
        for statement in sqs {
            for name in named_resources(statement) {
                assert!(
                    own.contains(&name),
                    "{function} may use {name}: {statement}"
                );
            }
        }

        // And it may write to its own log group only
        let log_group = target(
            &template["Resources"][function.as_str()]["Properties"]["LoggingConfig"]["LogGroup"],
        )
        .unwrap_or_else(|| panic!("{function} names no log group of its own"));
        let logs = grants(&statements, role, "logs");
        assert!(!logs.is_empty(), "{function} cannot write its logs");
        for statement in logs {
            assert_eq!(
                named_resources(statement),
                vec![log_group.to_owned()],
                "{function}: {statement}"
            );
        }
    }
}

/// The operations function, whose role alone reaches every consumer's queues.
const OPERATIONS: &str = "OpsApiFunction";

#[test]
fn when_the_template_is_transformed_should_hold_the_operations_function_to_counting_and_moving_dead_letters(
) {
    // Given the operations function's grants after the SAM transform
    let template = transformed_template();
    let statements = role_statements(&template);
    let role = &function_roles(&template)[OPERATIONS];
    let own: Vec<&Value> = statements
        .iter()
        .filter(|(id, statement)| id == role && statement["Effect"] == "Allow")
        .map(|(_, statement)| statement)
        .collect();
    let consumers = ["MlClassifier", "Dashboard", "CicdMonitor", "EventArchive"];
    let named = |suffix: &str| -> BTreeSet<String> {
        consumers.iter().map(|c| format!("{c}{suffix}")).collect()
    };

    // Then every action it may take is one of these, on these resources only: the
    // consumers' queues counted and sent to, their dead-letter queues counted, read and
    // emptied, the outbox index queried, CloudWatch's metrics read, its own logs written
    let mut seen = BTreeSet::new();
    for statement in &own {
        let resources: BTreeSet<String> = named_resources_or_wildcard(statement);
        for action in actions(statement) {
            let allowed: BTreeSet<String> = match action.as_str() {
                "sqs:getqueueattributes" => named("Queue")
                    .union(&named("DeadLetterQueue"))
                    .cloned()
                    .collect(),
                "sqs:sendmessage" => named("Queue"),
                "sqs:receivemessage" | "sqs:deletemessage" | "sqs:changemessagevisibility" => {
                    named("DeadLetterQueue")
                }
                "dynamodb:query" => ["TasksTable".to_owned()].into(),
                "cloudwatch:getmetricdata" => ["*".to_owned()].into(),
                "logs:createlogstream" | "logs:putlogevents" => {
                    ["OpsApiLogGroup".to_owned()].into()
                }
                other => panic!("the operations function may {other}: {statement}"),
            };
            assert!(
                resources.is_subset(&allowed),
                "{action} on {resources:?}, beyond {allowed:?}: {statement}"
            );
            seen.insert(action);
        }
        // The table only through its outbox index, never its items
        if actions(statement).contains(&"dynamodb:query".to_owned()) {
            assert_eq!(
                statement["Resource"],
                json!({ "Fn::Sub": "${TasksTable.Arn}/index/outbox_pending" })
            );
        }
    }
    // And it may do each (a redrive needs them all)
    for action in [
        "sqs:getqueueattributes",
        "sqs:sendmessage",
        "sqs:receivemessage",
        "sqs:deletemessage",
        "dynamodb:query",
        "cloudwatch:getmetricdata",
    ] {
        assert!(
            seen.contains(action),
            "the operations function cannot {action}"
        );
    }

    // And its routes need the operator scope at the gateway
    let events = &template_json()["Resources"][OPERATIONS]["Properties"]["Events"];
    let routes = events.as_object().expect("routes");
    assert_eq!(routes.len(), 4, "{routes:?}");
    for (name, route) in routes {
        assert!(
            route["Properties"]["Path"]
                .as_str()
                .unwrap_or_default()
                .starts_with("/ops/"),
            "{name}"
        );
        assert_eq!(
            route["Properties"]["Auth"],
            json!({ "Authorizer": "JwtAuthorizer", "AuthorizationScopes": [reference("OperatorScope")] }),
            "{name}"
        );
    }
}

/// A statement's resources by logical id, `*` as itself.
fn named_resources_or_wildcard(statement: &Value) -> BTreeSet<String> {
    if items(&statement["Resource"]).into_iter().any(|r| r == "*") {
        return ["*".to_owned()].into();
    }
    named_resources(statement).into_iter().collect()
}

#[test]
fn when_the_template_is_transformed_should_let_the_task_api_query_only_a_users_tasks() {
    // Given the task API's DynamoDB grants
    let template = transformed_template();
    let statements = role_statements(&template);
    let role = &function_roles(&template)["TaskApiFunction"];

    // Then Query on the tasks table is allowed on the by_user index alone (the outbox
    // index is the sweeper's; a timeline is queried on the archive by task id)
    let queries: Vec<&Value> = grants(&statements, role, "dynamodb")
        .into_iter()
        .filter(|s| actions(s).iter().any(|a| a == "dynamodb:query"))
        .filter(|s| named_resources(s).contains(&"TasksTable".to_owned()))
        .collect();
    assert_eq!(queries.len(), 1, "{queries:?}");
    assert_eq!(
        queries[0]["Resource"],
        json!({ "Fn::Sub": "${TasksTable.Arn}/index/by_user" })
    );
}

#[test]
fn when_the_template_is_read_should_log_every_api_request_and_alarm_on_refusals() {
    // Given the template's HTTP API
    let template = template_json();
    let api = &template["Resources"]["TasksApi"]["Properties"];

    // Then every request is logged to a log group of the stack, kept with the stack gone
    let settings = &api["AccessLogSettings"];
    assert_eq!(
        settings["DestinationArn"],
        json!({ "Fn::GetAtt": ["ApiAccessLogGroup", "Arn"] })
    );
    let group = &template["Resources"]["ApiAccessLogGroup"];
    assert_eq!(group["Type"], "AWS::Logs::LogGroup");
    assert_eq!(group["DeletionPolicy"], "Retain");
    assert_eq!(
        group["Properties"]["RetentionInDays"],
        reference("AccessLogRetentionDays")
    );

    // And each line is JSON naming the request, the caller, the route and the answer
    let format = settings["Format"].as_str().expect("a format");
    let line: Value = serde_json::from_str(
        &format
            .replace("$context.status", "401")
            .replace("$context.responseLatency", "12"),
    )
    .unwrap_or_else(|err| panic!("{err}: {format}"));
    for (field, variable) in [
        ("request_id", "$context.requestId"),
        ("source_ip", "$context.identity.sourceIp"),
        ("sub", "$context.authorizer.claims.sub"),
        ("route", "$context.routeKey"),
        ("authorizer_error", "$context.authorizer.error"),
        ("api_id", "$context.apiId"),
    ] {
        assert_eq!(line[field], variable, "{field}");
    }
    assert_eq!(
        line["status"], 401,
        "the status is a number filters can compare"
    );
    assert_eq!(line["latency_ms"], 12);

    // And 401, 403 and 429 are counted from it, each with an alarm on its share of requests
    let filters = resources(&template, "AWS::Logs::MetricFilter");
    let alarms = resources(&template, "AWS::CloudWatch::Alarm");
    let watched: BTreeSet<(String, String, String)> =
        alarms.values().flat_map(|alarm| watched(alarm)).collect();
    for status in ["401", "403", "429"] {
        let metric = format!("Api{status}");
        let filter = filters
            .values()
            .find(|f| f["Properties"]["MetricTransformations"][0]["MetricName"] == metric)
            .unwrap_or_else(|| panic!("no metric filter counts {status}"));
        assert_eq!(
            filter["Properties"]["LogGroupName"],
            reference("ApiAccessLogGroup")
        );
        assert_eq!(
            filter["Properties"]["FilterPattern"],
            format!("{{ $.status = {status} }}")
        );
        assert!(
            watched.contains(&(
                "TaskOrchestration".to_owned(),
                metric.clone(),
                reference("TasksApi").to_string()
            )),
            "no alarm on {metric}"
        );
    }
}

#[test]
fn when_the_template_is_read_should_refuse_a_stack_whose_alarms_reach_no_one() {
    // Given the template's rules
    let template = template_json();
    let rule = &template["Rules"]["AlarmsReachSomeone"];

    // Then a stack needs an alarm topic of its own choosing or an address to mail
    assert!(
        rule.get("RuleCondition").is_none(),
        "the rule holds for every stack"
    );
    let given = |name: &str| json!({ "Fn::Not": [{ "Fn::Equals": [reference(name), ""] }] });
    assert_eq!(
        rule["Assertions"][0]["Assert"],
        json!({ "Fn::Or": [given("AlarmTopicArn"), given("AlarmEmail")] })
    );

    // And samconfig.toml does not give either empty, which the rule would refuse
    let samconfig =
        std::fs::read_to_string(repository().join("samconfig.toml")).expect("samconfig.toml");
    for line in samconfig
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
    {
        assert!(
            !line.contains("AlarmTopicArn=\"\"") && !line.contains("AlarmEmail=\"\""),
            "{line}"
        );
    }
}

#[test]
fn when_the_template_is_read_should_keep_tables_of_record_and_dead_letters_from_deletion() {
    // Given the template's tables and queues
    let template = template_json();

    // Then each table of record is retained, protected from deletion and recoverable to
    // a point in time; the one whose entries expire is none of these
    for (id, table) in resources(&template, "AWS::DynamoDB::Table") {
        let expiring = id == "RequestKeysTable";
        if expiring {
            continue;
        }
        assert_eq!(table["DeletionPolicy"], "Retain", "{id}");
        assert_eq!(table["UpdateReplacePolicy"], "Retain", "{id}");
        assert_eq!(
            table["Properties"]["DeletionProtectionEnabled"],
            json!(true),
            "{id}"
        );
        assert_eq!(
            table["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
            json!(true),
            "{id}"
        );
    }

    // And each dead-letter queue is retained and takes failures from its own queue only,
    // named by the name that queue is given
    let queues = resources(&template, "AWS::SQS::Queue");
    let mut dead_letter_queues = 0;
    for (id, queue) in &queues {
        let Some(dlq) = target(&queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]) else {
            continue;
        };
        dead_letter_queues += 1;
        let dlq_spec = queues[dlq];
        assert_eq!(dlq_spec["DeletionPolicy"], "Retain", "{dlq}");
        let allow = &dlq_spec["Properties"]["RedriveAllowPolicy"];
        assert_eq!(allow["redrivePermission"], "byQueue", "{dlq}");
        let name = queue["Properties"]["QueueName"]["Fn::Sub"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} has no name to be named by"));
        assert_eq!(
            allow["sourceQueueArns"],
            json!([{ "Fn::Sub": format!("arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{name}") }]),
            "{dlq}"
        );
    }
    assert_eq!(dead_letter_queues, 4);
}

#[test]
fn when_the_template_is_read_should_hold_the_gateway_to_https_scopes_and_the_clients_headers() {
    // Given the template's API and its parameters
    let template = template_json();
    let parameters = &template["Parameters"];
    let api = &template["Resources"]["TasksApi"]["Properties"];

    // Then the issuer is https, and the origins https but for a loopback dev server
    assert_eq!(
        parameters["JwtIssuer"]["AllowedPattern"],
        "^https://[^\\s]+$"
    );
    let origins = parameters["CorsAllowOrigins"]["AllowedPattern"]
        .as_str()
        .expect("a pattern on the origins");
    assert!(origins.starts_with("^(https://"), "{origins}");
    assert!(
        !origins.contains("http://[") && !origins.contains("https?"),
        "{origins}"
    );

    // And the statistics of every user need the operator scope at the gateway too
    let route = &template["Resources"]["TaskApiFunction"]["Properties"]["Events"]["DashboardStats"];
    assert_eq!(
        route["Properties"]["Auth"],
        json!({ "Authorizer": "JwtAuthorizer", "AuthorizationScopes": [reference("OperatorScope")] })
    );

    // And browsers may send what the clients send
    let headers = &api["CorsConfiguration"]["AllowHeaders"];
    for header in [
        "authorization",
        "content-type",
        "idempotency-key",
        "traceparent",
    ] {
        assert!(
            headers.as_array().expect("a list").contains(&json!(header)),
            "{header}"
        );
    }
}

#[test]
fn when_a_task_changes_should_write_nothing_to_the_by_user_index() {
    // Given the template's TasksTable
    let template = template_json();
    let indexes = template["Resources"]["TasksTable"]["Properties"]["GlobalSecondaryIndexes"]
        .as_array()
        .expect("TasksTable has indexes");

    // When its by_user index is looked at
    let by_user = indexes
        .iter()
        .find(|index| index["IndexName"] == "by_user")
        .expect("a by_user index");

    // Then it holds only keys, which no transition changes (a listing reads the tasks)
    assert_eq!(by_user["Projection"]["ProjectionType"], "KEYS_ONLY");
}
