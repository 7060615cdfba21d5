//! SDK clients built once per process from one shared AWS configuration, read from the
//! process environment alone: what Lambda gives a function (`AWS_REGION` and the role's
//! credentials), and the SDK's own `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`
//! variables for endpoints.
//!
//! `aws-config`'s default chain would also look for profile files, web identity tokens
//! and the container and instance metadata endpoints, none of which a function has: it
//! would make every binary about half a megabyte larger (an STS client, an IMDS client,
//! profile parsing) for sources Lambda never uses.

use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::config::BehaviorVersion;
use aws_types::region::Region;
use aws_types::sdk_config::{RetryConfig, StalledStreamProtectionConfig, TimeoutConfig};
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
pub use aws_types::SdkConfig;

use super::tls;
use crate::retry::Backoff;
use crate::settings::ConfigError;

/// Region, credentials and endpoints from the environment, bounded timeouts, the SDK's
/// standard retries, and one HTTPS client for every SDK client built from it.
pub fn load_config() -> Result<SdkConfig, ConfigError> {
    config_from(&|name| std::env::var(name).ok())
}

type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn config_from(env: Lookup<'_>) -> Result<SdkConfig, ConfigError> {
    let set = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    let region = set("AWS_REGION")
        .or_else(|| set("AWS_DEFAULT_REGION"))
        .ok_or(ConfigError::Missing("AWS_REGION"))?;
    let access_key = set("AWS_ACCESS_KEY_ID").ok_or(ConfigError::Missing("AWS_ACCESS_KEY_ID"))?;
    let secret_key =
        set("AWS_SECRET_ACCESS_KEY").ok_or(ConfigError::Missing("AWS_SECRET_ACCESS_KEY"))?;
    let credentials = Credentials::new(
        access_key,
        secret_key,
        set("AWS_SESSION_TOKEN"),
        None,
        "environment",
    );
    let endpoints = EnvironmentEndpoints {
        per_service: ["DynamoDB", "SNS", "SQS", "Secrets Manager"]
            .into_iter()
            .filter_map(|service| {
                set(&service_variable("AWS_ENDPOINT_URL", service)).map(|url| (service, url))
            })
            .collect(),
    };
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(tls::https_client())
        .retry_config(RetryConfig::standard())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(15))
                .build(),
        )
        // Every call's bodies are small JSON documents, and the attempt timeout above bounds
        // a stalled one; the SDK's stream monitor would add a timer to each body.
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .service_config(endpoints);
    if let Some(url) = set("AWS_ENDPOINT_URL") {
        builder = builder.endpoint_url(url);
    }
    Ok(builder.build())
}

/// `AWS_ENDPOINT_URL_<SERVICE>`, as the SDK names it: the service id in capitals, spaces
/// as underscores (`AWS_ENDPOINT_URL_SECRETS_MANAGER`).
fn service_variable(variable: &str, service_id: &str) -> String {
    format!(
        "{variable}_{}",
        service_id.to_ascii_uppercase().replace(' ', "_")
    )
}

/// The service-specific endpoints of the services this project calls, read once.
#[derive(Debug)]
struct EnvironmentEndpoints {
    per_service: Vec<(&'static str, String)>,
}

impl LoadServiceConfig for EnvironmentEndpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        if key.env() != "AWS_ENDPOINT_URL" {
            return None;
        }
        self.per_service
            .iter()
            .find(|(service, _)| *service == key.service_id())
            .map(|(_, url)| url.clone())
    }
}

pub fn dynamodb(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// An SNS client that retries transient failures of whole calls with `backoff`.
pub fn sns(config: &SdkConfig, backoff: &Backoff) -> aws_sdk_sns::Client {
    let sns_config = aws_sdk_sns::config::Builder::from(config)
        .retry_config(backoff.sdk_retry_config())
        .build();
    aws_sdk_sns::Client::from_conf(sns_config)
}

pub fn sqs(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

/// An SQS client for long polling: each call may wait `wait` for messages, so its
/// timeouts are that much longer than the default ones.
pub fn sqs_long_polling(config: &SdkConfig, wait: Duration) -> aws_sdk_sqs::Client {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(wait + Duration::from_secs(5))
        .operation_timeout(wait + Duration::from_secs(15))
        .build();
    let sqs_config = aws_sdk_sqs::config::Builder::from(config)
        .timeout_config(timeouts)
        .build();
    aws_sdk_sqs::Client::from_conf(sqs_config)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(variables: &[(&str, &str)]) -> Result<SdkConfig, ConfigError> {
        let variables: HashMap<String, String> = variables
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        config_from(&|name| variables.get(name).cloned())
    }

    /// The endpoint an SDK client built from `aws` takes, as it looks it up: its service's
    /// own variable first, then the global one.
    fn endpoint(aws: &SdkConfig, service_id: &str) -> Option<String> {
        let key = ServiceConfigKey::builder()
            .service_id(service_id)
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .expect("a key");
        aws.service_config()
            .and_then(|config| config.load_config(key))
            .or_else(|| aws.endpoint_url().map(str::to_owned))
    }

    const LAMBDA: [(&str, &str); 4] = [
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "token"),
    ];

    #[test]
    fn lambdas_variables_should_give_the_region_and_endpoints_of_each_service() {
        let mut variables = LAMBDA.to_vec();
        variables.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"));
        variables.push(("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"));
        let aws = config(&variables).expect("a configuration");
        assert_eq!(aws.region().map(|r| r.as_ref()), Some("eu-west-1"));

        assert_eq!(
            endpoint(&aws, "DynamoDB").as_deref(),
            Some("http://127.0.0.1:8000")
        );
        assert_eq!(
            endpoint(&aws, "SNS").as_deref(),
            Some("http://127.0.0.1:4566")
        );
    }

    #[test]
    fn without_endpoint_variables_the_sdk_should_resolve_the_regions_endpoints() {
        let aws = config(&LAMBDA).expect("a configuration");
        assert_eq!(endpoint(&aws, "DynamoDB"), None);
    }

    #[test]
    fn a_missing_region_or_key_should_be_named() {
        let without = |name: &str| -> Vec<(&str, &str)> {
            LAMBDA.iter().copied().filter(|(n, _)| *n != name).collect()
        };
        for name in ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            match config(&without(name)) {
                Err(ConfigError::Missing(missing)) => assert_eq!(missing, name),
                other => panic!("without {name}: {other:?}"),
            }
        }
        let mut legacy = without("AWS_REGION");
        legacy.push(("AWS_DEFAULT_REGION", "us-east-2"));
        let aws = config(&legacy).expect("AWS_DEFAULT_REGION stands in");
        assert_eq!(aws.region().map(|r| r.as_ref()), Some("us-east-2"));
        assert!(config(&without("AWS_SESSION_TOKEN")).is_ok());
    }

    #[test]
    fn service_variables_should_be_named_as_the_sdk_names_them() {
        assert_eq!(
            service_variable("AWS_ENDPOINT_URL", "Secrets Manager"),
            "AWS_ENDPOINT_URL_SECRETS_MANAGER"
        );
        assert_eq!(
            service_variable("AWS_ENDPOINT_URL", "DynamoDB"),
            "AWS_ENDPOINT_URL_DYNAMODB"
        );
    }
}
